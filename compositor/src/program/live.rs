//! RTMP(S) destinations on the program. Each destination is an FLV output of its own (own
//! queues, own connection) that is rebuilt on its own backoff schedule when its connection
//! fails or drops, so a refused, slow or dead ingest never touches the program, the other
//! destinations or the recording. A supervisor thread drives the state machines in
//! `destination::state` with the program's elapsed time.

use super::elements::make;
use super::{Inner, OutputId, OutputSpec, ProgramEvent};
use crate::destination::{DestinationId, DestinationInfo, DestinationSpec, DestinationState, DestinationStatus};
use crate::error::{CompositorError, Result};
use crate::locks::lock;
use gst::prelude::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How long a retired connection's late errors are recognised.
const RETIRED_FOR: Duration = Duration::from_secs(30);
/// How often the supervisor looks at connections and due reconnects.
const TICK: Duration = Duration::from_millis(100);
/// How long a removed destination may take to send its last bytes and unpublish.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);
/// rtmp2sink gives up on a connection that accepts nothing for this long (it is how a stalled
/// ingest is noticed).
const RTMP_TIMEOUT_S: u32 = 5;

/// One connection attempt: an FLV output with an rtmp2sink.
struct Connection {
    output: OutputId,
    sink: gst::Element,
    /// Buffers that reached the sink: the second one means the first was written, i.e. the
    /// connection is up and publishing (rtmp2sink renders only once connected).
    sink_buffers: Arc<AtomicU64>,
}

pub(crate) struct Destination {
    spec: DestinationSpec,
    state: DestinationState,
    connection: Option<Connection>,
    /// Totals of earlier connections.
    frames_before: u64,
    bytes_before: u64,
    live_since: Option<Duration>,
}

#[derive(Default)]
pub(crate) struct Destinations {
    map: BTreeMap<DestinationId, Destination>,
    /// Connections that failed or were removed, and when: a failing output posts more than
    /// one error (the sink's, then its queues'), and the later ones belong to nobody.
    retired: BTreeMap<OutputId, Duration>,
    supervisor: Option<std::thread::JoinHandle<()>>,
}

impl Destinations {
    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Inner {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    pub(super) fn add_destination(inner: &Arc<Inner>, spec: DestinationSpec) -> Result<DestinationId> {
        if !inner.running.load(Ordering::SeqCst) {
            return Err(CompositorError::NotRunning);
        }
        let config = match &spec.rendition {
            Some(r) => r.format.applied_to(&inner.config),
            None => inner.config.clone(),
        };
        spec.preset.check(&config).map_err(|e| CompositorError::InvalidDestination {
            field: format!("program.{}", e.field),
            reason: format!("preset {}: {}", spec.preset.name(), e.reason),
        })?;
        let id = DestinationId(inner.next_id.fetch_add(1, Ordering::Relaxed));
        // Connected under the destinations lock: a connection refused at once reports its
        // failure on the bus thread, which must find the output already owned by this
        // destination (it waits for the lock).
        let mut d = lock(&inner.destinations);
        let connection = inner.connect(&spec)?;
        tracing::info!(destination = %id, url = %spec.url, preset = %spec.preset.name(), "destination added");
        let state = DestinationState::new(spec.reconnect);
        let dest = Destination {
            spec,
            state,
            connection: Some(connection),
            frames_before: 0,
            bytes_before: 0,
            live_since: None,
        };
        d.map.insert(id, dest);
        if d.supervisor.is_none() {
            let weak = Arc::downgrade(inner);
            let handle = std::thread::Builder::new()
                .name("room-destinations".into())
                .spawn(move || supervise(weak))
                .map_err(|source| CompositorError::Thread { what: "destination supervisor", source })?;
            d.supervisor = Some(handle);
        }
        Ok(id)
    }

    /// Stops streaming to a destination: its connection is finished (EOS, unpublish) without
    /// waiting more than a few seconds for a stuck ingest.
    pub(super) fn remove_destination(&self, id: DestinationId) -> Result<DestinationInfo> {
        let dest = {
            let mut d = lock(&self.destinations);
            let dest = d.map.remove(&id).ok_or(CompositorError::UnknownDestination(id.0))?;
            if let Some(c) = &dest.connection {
                d.retired.insert(c.output, self.now());
            }
            dest
        };
        let mut info = self.describe(id, &dest);
        if let Some(c) = &dest.connection {
            // A connection that is down or stuck cannot finish; it is torn down regardless.
            match self.detach_output(c.output, FINISH_TIMEOUT) {
                // The totals once finished: frames still in flight above were sent too.
                Ok(stats) => {
                    info.video_frames = dest.frames_before + stats.video_frames;
                    info.bytes_sent = dest.bytes_before + bytes_sent(&c.sink);
                }
                Err(e) => tracing::info!(destination = %id, error = %e, "destination did not finish cleanly"),
            }
        }
        tracing::info!(destination = %id, url = %dest.spec.url, frames = info.video_frames, "destination removed");
        Ok(info)
    }

    pub(super) fn destination_info(&self, id: DestinationId) -> Option<DestinationInfo> {
        let d = lock(&self.destinations);
        d.map.get(&id).map(|dest| self.describe(id, dest))
    }

    pub(super) fn destination_infos(&self) -> Vec<DestinationInfo> {
        let d = lock(&self.destinations);
        d.map.iter().map(|(id, dest)| self.describe(*id, dest)).collect()
    }

    /// An output failed: if it carried a destination, the destination schedules its reconnect.
    /// Returns whether the output was a destination's connection (now or recently).
    pub(super) fn destination_output_failed(&self, output: OutputId, error: &str) -> bool {
        let now = self.now();
        let mut d = lock(&self.destinations);
        if d.retired.contains_key(&output) {
            tracing::debug!(output = %output, "late error from a retired destination connection");
            return true;
        }
        let Some((id, dest)) =
            d.map.iter_mut().find(|(_, dest)| dest.connection.as_ref().is_some_and(|c| c.output == output))
        else {
            return false;
        };
        let id = *id;
        let text = dest.spec.url.scrub(error);
        if let Some(c) = dest.connection.take() {
            let (frames, bytes) = self.connection_totals(&c);
            dest.frames_before += frames;
            dest.bytes_before += bytes;
        }
        dest.live_since = None;
        let retry = dest.state.on_error(now, &text);
        let status = dest.state.status();
        d.retired.insert(output, now);
        drop(d);
        match retry {
            Some(delay) => {
                tracing::warn!(destination = %id, error = %text, retry_in = ?delay, "destination connection failed; reconnecting")
            }
            None => tracing::warn!(destination = %id, error = %text, "destination failed; giving up"),
        }
        self.emit(ProgramEvent::DestinationChanged { destination: id, status, error: Some(text) });
        true
    }

    fn connect(&self, spec: &DestinationSpec) -> Result<Connection> {
        let sink = make("rtmp2sink", None)?;
        sink.set_property("location", spec.url.expose_secret());
        sink.set_property("timeout", RTMP_TIMEOUT_S);
        let sink_buffers = Arc::new(AtomicU64::new(0));
        if let Some(pad) = sink.static_pad("sink") {
            let n = sink_buffers.clone();
            pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, _| {
                n.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        }
        let flv = OutputSpec::Flv { sink: sink.clone() };
        let output = match &spec.rendition {
            Some(rendition) => self.attach_output_in(rendition, flv)?,
            None => self.attach_output(flv)?,
        };
        Ok(Connection { output, sink, sink_buffers })
    }

    /// Frames and bytes one connection carried.
    fn connection_totals(&self, c: &Connection) -> (u64, u64) {
        let frames = lock(&self.outputs).get(&c.output).map(|o| o.stats().video_frames).unwrap_or(0);
        (frames, bytes_sent(&c.sink))
    }

    fn describe(&self, id: DestinationId, dest: &Destination) -> DestinationInfo {
        let (frames, bytes) = dest.connection.as_ref().map(|c| self.connection_totals(c)).unwrap_or((0, 0));
        DestinationInfo {
            id,
            url: dest.spec.url.redacted(),
            preset: dest.spec.preset.name(),
            status: dest.state.status(),
            reconnects: dest.state.reconnects(),
            last_error: dest.state.last_error().map(str::to_string),
            video_frames: dest.frames_before + frames,
            bytes_sent: dest.bytes_before + bytes,
            live_for: dest.live_since.map(|since| self.now().saturating_sub(since)),
        }
    }

    /// One round of the supervisor: connections that came up, reconnects that are due.
    fn supervise_once(&self) {
        let now = self.now();
        let mut changes = Vec::new();
        let mut due = Vec::new();
        {
            let mut d = lock(&self.destinations);
            d.retired.retain(|_, at| now.saturating_sub(*at) < RETIRED_FOR);
            for (id, dest) in d.map.iter_mut() {
                match (dest.state.status(), &dest.connection) {
                    (DestinationStatus::Connecting, Some(c)) if c.sink_buffers.load(Ordering::Relaxed) >= 2 => {
                        dest.state.on_live(now);
                        dest.live_since = Some(now);
                        changes.push((*id, DestinationStatus::Live));
                    }
                    (DestinationStatus::Reconnecting, None) if dest.state.poll_retry(now) => {
                        changes.push((*id, DestinationStatus::Connecting));
                        due.push((*id, dest.spec.clone()));
                    }
                    _ => {}
                }
            }
        }
        for (id, status) in changes {
            tracing::info!(destination = %id, status = ?status, "destination status");
            self.emit(ProgramEvent::DestinationChanged { destination: id, status, error: None });
        }
        for (id, spec) in due {
            // As in `add_destination`: the connection is owned before it can fail.
            let mut d = lock(&self.destinations);
            if !d.map.contains_key(&id) {
                continue; // removed meanwhile
            }
            let attempt = self.connect(&spec);
            let Some(dest) = d.map.get_mut(&id) else { continue };
            match attempt {
                Ok(c) => dest.connection = Some(c),
                Err(e) => {
                    let text = dest.spec.url.scrub(&e.to_string());
                    dest.state.on_error(now, &text);
                    tracing::warn!(destination = %id, error = %text, "cannot build the destination's output");
                }
            }
        }
    }

    pub(super) fn stop_destinations(&self) {
        let (ids, supervisor) = {
            let mut d = lock(&self.destinations);
            (d.map.keys().copied().collect::<Vec<_>>(), d.supervisor.take())
        };
        for id in ids {
            let _ = self.remove_destination(id);
        }
        if let Some(t) = supervisor
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

fn supervise(weak: Weak<Inner>) {
    loop {
        std::thread::sleep(TICK);
        let Some(inner) = weak.upgrade() else { return };
        if !inner.running.load(Ordering::SeqCst) {
            return;
        }
        inner.supervise_once();
    }
}

/// Bytes rtmp2sink has written on its connection.
fn bytes_sent(sink: &gst::Element) -> u64 {
    let stats = sink.property::<gst::Structure>("stats");
    stats.get::<u64>("out-bytes-total").unwrap_or(0)
}

use super::Program;

impl Program {
    /// Starts streaming the program to an RTMP(S) destination. Refused before anything
    /// connects when the destination's preset cannot take the program (the error names the
    /// program setting). The destination then connects, goes live and reconnects on its own.
    pub fn add_destination(&self, spec: DestinationSpec) -> Result<DestinationId> {
        Inner::add_destination(&self.inner, spec)
    }

    /// Stops streaming to a destination and returns its final figures.
    pub fn remove_destination(&self, id: DestinationId) -> Result<DestinationInfo> {
        self.inner.remove_destination(id)
    }

    pub fn destination(&self, id: DestinationId) -> Option<DestinationInfo> {
        self.inner.destination_info(id)
    }

    pub fn destinations(&self) -> Vec<DestinationInfo> {
        self.inner.destination_infos()
    }
}
