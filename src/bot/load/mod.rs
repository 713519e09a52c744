//! `tessera bot --subscribers N`: a load generator for big rooms. One process runs N
//! receive-only subscribers in one room, as LiveKit's `lk load-test` does: each is a
//! participant of its own (its own token, minted with the API key with `subscribe` and without
//! `publish`; its own signalling WebSocket; its own subscribe peer connection), named
//! `NAME-sub-001`…, and publishes nothing. They join in a ramp (`--ramp-per-second`) on one
//! tokio runtime and share one HTTP client and one TLS configuration.
//!
//! A subscriber decodes nothing: each received track's packets are counted from their RTP
//! headers (`track::TrackCounters`): packets, payload bytes, loss from sequence-number gaps
//! (wrap-around, reordering and repairs handled, duplicates left out), and for video the frames
//! (distinct RTP timestamps, complete at the marker bit) and freezes (a gap between frames of
//! at least max(3 × the average frame interval, the average + 150 ms), the WebRTC statistics'
//! definition, once five intervals were seen; a stream that stopped while its track goes on is
//! an ongoing freeze up to the report).
//!
//! Every `--report-every` seconds a line goes to stderr (subscribers joined and connected,
//! packets and their rate, loss, freezes); at the end (`--duration` elapsed, or SIGINT/SIGTERM) the report
//! goes to stdout as JSON, or to `--report FILE`:
//!
//! ```json
//! {
//!   "room": "big",
//!   "duration_s": 60.0,
//!   "subscribers": [
//!     {
//!       "id": "load-sub-001",
//!       "identity": "load-3fa2c1-sub-001",
//!       "participant_id": "…",
//!       "connected": true,
//!       "joined_ms": 31,
//!       "connected_ms": 112,
//!       "time_to_first_packet_ms": 140,
//!       "error": null,
//!       "tracks": [
//!         { "track_id": "camera-…", "kind": "video", "packets": 5210, "bytes": 5893412,
//!           "lost": 0, "discarded": 0, "frames": 1790, "freezes": 0, "freeze_ms": 0 },
//!         { "track_id": "audio-…", "kind": "audio", "packets": 2995, "bytes": 239600,
//!           "lost": 0, "discarded": 0, "frames": 0, "freezes": 0, "freeze_ms": 0 }
//!       ]
//!     }
//!   ],
//!   "totals": {
//!     "subscribers": 1, "joined": 1, "connected": 1, "failed": 0, "tracks": 2, "packets": 8205,
//!     "bytes": 6133012, "lost": 0, "loss_pct": 0.0, "freezes": 0, "freeze_ms": 0,
//!     "time_to_first_packet_ms": { "p50": 140, "p95": 140, "max": 140 }
//!   }
//! }
//! ```
//!
//! Times are in milliseconds from the subscriber's turn in the ramp (`null`: never). `connected`
//! is whether its subscribe connection was up at the end; `error` says why a subscriber failed
//! (it does not stop the others) and its figures up to then are kept. `packets` are distinct
//! packets received, `lost` those skipped and never repaired, `discarded` duplicates and packets
//! too late to count; `loss_pct` is lost / (packets + lost); `joined` counts the subscribers
//! in the room without an error. The process exits 1 only when every
//! subscriber failed or the report cannot be written.

mod freezes;
mod report;
mod sequence;
mod subscriber;
mod track;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

pub use report::{LoadReport, SubscriberReport, Totals, TrackReport};
use subscriber::{Shared, Subscriber, until_leave};

use crate::bot::token::{identity_base, random_suffix};
use crate::bot::{BotError, ServerUrl};
use crate::cli::BotArgs;

/// How long the subscribers have at the end to say goodbye (`leave`, the sockets closed).
const LEAVE_GRACE: Duration = Duration::from_secs(5);

/// Runs `args.subscribers` subscribers until `stop`, or `--duration`, and writes the report.
pub async fn run(args: &BotArgs, stop: impl Future<Output = ()>) -> Result<LoadReport, BotError> {
    let server = ServerUrl::parse(&args.url)?;
    let api_key = args.api_key.clone().ok_or_else(|| {
        BotError::Config("--subscribers mints a token for each subscriber: give --api-key (or TESSERA_API_KEY)".into())
    })?;
    raise_open_file_limit();
    let tls =
        if server.ws.starts_with("wss:") { Some(Arc::new(crate::http_client::tls_client_config()?)) } else { None };
    let shared = Arc::new(Shared {
        server,
        http: crate::http_client::https_client()?,
        tls,
        api_key,
        room: args.room.clone(),
        relay_only: args.relay_only,
        program_only: args.program,
    });
    let subscribers = name_subscribers(args);
    let start = Instant::now();
    let (leave_tx, leave) = watch::channel(false);
    let mut tasks = Vec::with_capacity(subscribers.len());
    for (i, sub) in subscribers.iter().enumerate() {
        // The ramp: the i-th subscriber starts i / rate seconds in.
        let turn = start + Duration::from_secs_f64(i as f64 / args.ramp_per_second);
        tasks.push(tokio::spawn(in_turn(Arc::clone(sub), Arc::clone(&shared), turn, leave.clone())));
    }

    let deadline = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop, deadline);
    let mut ticker = tokio::time::interval_at(start + args.report_every, args.report_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The last line's totals and when, for the packet rate.
    let mut previous: Option<(Totals, Instant)> = None;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = &mut deadline => break,
            _ = ticker.tick() => {
                let totals = Totals::of(&reports(&subscribers));
                let now = Instant::now();
                let since = previous.as_ref().map(|(t, at)| (t, now - *at));
                eprintln!("tessera bot: {}", totals.summary(now - start, since));
                previous = Some((totals, now));
            }
        }
    }

    // The figures are taken before anyone leaves: leaving is no freeze.
    for sub in &subscribers {
        sub.never_started();
    }
    let entries = reports(&subscribers);
    let elapsed = start.elapsed();
    let totals = Totals::of(&entries);
    eprintln!("tessera bot: {} (end)", totals.summary(elapsed, None));
    let report = LoadReport {
        room: args.room.clone(),
        duration_s: elapsed.as_millis() as f64 / 1000.0,
        subscribers: entries,
        totals,
    };
    let _ = leave_tx.send(true);
    let _ = tokio::time::timeout(LEAVE_GRACE, async {
        for task in tasks {
            let _ = task.await;
        }
    })
    .await;
    write_report(&report, args.report.as_deref())?;
    if report.totals.failed == report.totals.subscribers
        && let Some(first) = report.subscribers.iter().find_map(|s| s.error.as_ref())
    {
        return Err(BotError::Load(format!("every subscriber failed; the first: {first}")));
    }
    Ok(report)
}

/// The subscribers: `NAME-sub-001`… (as wide as N needs, at least 3 digits), with identities
/// from `--identity` or the name and one random suffix for the run.
fn name_subscribers(args: &BotArgs) -> Vec<Arc<Subscriber>> {
    let n = args.subscribers as usize;
    let width = n.to_string().len().max(3);
    let identity = match &args.identity {
        Some(id) => id.clone(),
        None => format!("{}-{}", identity_base(&args.name), random_suffix()),
    };
    (1..=n)
        .map(|i| {
            let id = format!("{}-sub-{i:0width$}", args.name);
            Arc::new(Subscriber::new(id, format!("{identity}-sub-{i:0width$}")))
        })
        .collect()
}

/// Waits for the subscriber's turn in the ramp, then runs it until `leave`.
async fn in_turn(sub: Arc<Subscriber>, shared: Arc<Shared>, turn: Instant, mut leave: watch::Receiver<bool>) {
    let its_turn = tokio::select! {
        _ = tokio::time::sleep_until(turn) => true,
        _ = until_leave(&mut leave) => false,
    };
    if its_turn {
        sub.run(shared, leave).await;
    }
}

fn reports(subscribers: &[Arc<Subscriber>]) -> Vec<SubscriberReport> {
    let now = std::time::Instant::now();
    subscribers.iter().map(|s| s.report(now)).collect()
}

/// The report as JSON to `path`, or to stdout.
fn write_report(report: &LoadReport, path: Option<&std::path::Path>) -> Result<(), BotError> {
    let json =
        serde_json::to_string_pretty(report).map_err(|e| BotError::Load(format!("cannot encode the report: {e}")))?;
    match path {
        Some(path) => std::fs::write(path, json + "\n")
            .map_err(|e| BotError::Load(format!("cannot write the report to {}: {e}", path.display()))),
        None => {
            println!("{json}");
            Ok(())
        }
    }
}

/// Each subscriber holds a few sockets (its WebSocket, its peer connection's UDP socket, a
/// token request): hundreds of them outgrow the usual soft limit of 1,024 open files, so it is
/// raised to the hard limit.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::warn!("cannot raise the open files limit; many subscribers may fail");
            }
        }
    }
}
