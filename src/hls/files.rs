//! One HLS output's files, as players fetch them: the CMAF header, the recent segments and
//! parts (in memory, a sliding window), and the LL-HLS playlist. It is the output's
//! [`HlsSink`]: the program's streaming threads write here; HTTP handlers read, and wait on
//! [`HlsFiles::changed`] for a playlist or part that is not there yet (blocking reload).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tessera_compositor::hls::{HlsEvent, Playlist, PlaylistConfig};
use tessera_compositor::hls_output::{DEFAULT_PART_TARGET, HlsInit, HlsSink};
use tokio::sync::watch;

use super::upload::Uploader;
use crate::locks::lock;

/// Segments listed in the playlist: 20 s of the program.
pub const WINDOW: usize = 10;
/// Segments kept beyond the playlist's window, for players still fetching them.
const KEPT_BEYOND_WINDOW: u64 = 3;
/// Segments whose parts are kept: the playlist lists the parts of segments within three target
/// durations (12 s) of its end, six segments at the encoder's 2 s cadence; one more for players
/// mid-download. (A stretch of forced keyframes can make segments shorter; their parts then
/// leave the playlist with them.)
const PARTS_KEPT_FOR: u64 = 7;
/// The playlist's declared segment length: segments start on keyframes, a forced keyframe
/// can make one up to 1.5 × 2 s + a part long (see the segmenter).
pub const TARGET_DURATION: Duration = Duration::from_secs(4);

/// A file of the output, by its name in the playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileName {
    Playlist,
    Init,
    Segment(u64),
    Part(u64, u32),
}

impl FileName {
    /// `index.m3u8`, `init.mp4`, `seg{msn}.m4s` or `seg{msn}.{part}.m4s`.
    pub fn parse(name: &str) -> Option<FileName> {
        match name {
            "index.m3u8" => return Some(FileName::Playlist),
            "init.mp4" => return Some(FileName::Init),
            _ => {}
        }
        let stem = name.strip_prefix("seg")?.strip_suffix(".m4s")?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        match stem.split_once('.') {
            None if digits(stem) => Some(FileName::Segment(stem.parse().ok()?)),
            Some((msn, part)) if digits(msn) && digits(part) => {
                Some(FileName::Part(msn.parse().ok()?, part.parse().ok()?))
            }
            _ => None,
        }
    }
}

/// What a request for a file finds.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(Bytes),
    /// Not written yet, but expected soon (the next part, the current segment): worth waiting.
    Soon,
    /// Never will be (out of the window, or the output ended).
    Missing,
}

/// Figures for the API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilesSummary {
    pub codecs: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Complete segments written so far.
    pub segments: u64,
    pub duration: Duration,
    pub bytes: u64,
    pub ended: bool,
}

struct State {
    init: Option<Bytes>,
    playlist: Playlist,
    /// Complete segments, by media sequence number.
    segments: BTreeMap<u64, Bytes>,
    /// Parts, by segment and index.
    parts: BTreeMap<(u64, u32), Bytes>,
    /// The open segment's bytes so far (its parts, concatenated).
    open: Vec<u8>,
    summary: FilesSummary,
    /// When the output's media time zero (its first keyframe) was, on the wall clock
    /// (EXT-X-PROGRAM-DATE-TIME).
    started: SystemTime,
}

/// The files of one HLS output.
pub struct HlsFiles {
    state: Mutex<State>,
    /// Bumped at every new part, segment and at the end.
    version: watch::Sender<u64>,
    upload: Option<Uploader>,
}

impl HlsFiles {
    pub fn new(upload: Option<Uploader>) -> Self {
        let playlist = Playlist::new(PlaylistConfig {
            part_target: DEFAULT_PART_TARGET,
            target_duration: TARGET_DURATION,
            window: WINDOW,
        });
        HlsFiles {
            state: Mutex::new(State {
                init: None,
                playlist,
                segments: BTreeMap::new(),
                parts: BTreeMap::new(),
                open: Vec::new(),
                summary: FilesSummary::default(),
                started: SystemTime::now(),
            }),
            version: watch::channel(0).0,
            upload,
        }
    }

    /// Changes to wait on (any new part, segment, or the end).
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    pub fn summary(&self) -> FilesSummary {
        lock(&self.state).summary.clone()
    }

    /// The playlist once it holds segment `msn` (part `part`): `Ok(None)` while it does not yet,
    /// `Err` for a request beyond what can come soon (more than two segments ahead: the
    /// client must not block on it, RFC 8216bis 6.2.5.2). Without `msn`, as soon as it lists a
    /// complete segment (players start on one).
    pub fn playlist(&self, msn: Option<u64>, part: Option<u32>) -> Result<Option<String>, String> {
        let s = lock(&self.state);
        let ended = s.summary.ended;
        match msn {
            None if s.summary.segments == 0 && !ended => Ok(None),
            None => Ok(Some(s.playlist.render())),
            Some(msn) => {
                let next = s.playlist.last().map_or(0, |(m, _)| m);
                if msn > next + 2 && !ended {
                    return Err(format!("_HLS_msn {msn} is more than two segments ahead of {next}"));
                }
                Ok((ended || s.playlist.has(msn, part)).then(|| s.playlist.render()))
            }
        }
    }

    pub fn file(&self, name: FileName) -> Lookup {
        let s = lock(&self.state);
        let found = match name {
            FileName::Playlist => return Lookup::Missing,
            FileName::Init => s.init.clone(),
            FileName::Segment(msn) => s.segments.get(&msn).cloned(),
            FileName::Part(msn, index) => s.parts.get(&(msn, index)).cloned(),
        };
        if let Some(bytes) = found {
            return Lookup::Found(bytes);
        }
        if s.summary.ended {
            return Lookup::Missing;
        }
        // Only what the playlist announces next (or the header before the first part) is
        // worth a wait: a player asks for the hinted part ahead of time.
        let (next_msn, next_part) = match s.playlist.last() {
            None => (0, 0),
            Some((msn, index)) => (msn, index + 1),
        };
        let soon = match name {
            FileName::Init => true,
            FileName::Segment(msn) => msn >= next_msn && msn <= next_msn + 1,
            FileName::Part(msn, index) => {
                (msn == next_msn && index >= next_part) || (msn == next_msn + 1 && index == 0)
            }
            FileName::Playlist => false,
        };
        if soon { Lookup::Soon } else { Lookup::Missing }
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }
}

impl HlsSink for HlsFiles {
    fn init(&self, init: HlsInit) {
        let bytes = Bytes::from(init.bytes);
        {
            let mut s = lock(&self.state);
            s.summary.codecs = Some(init.codecs);
            s.summary.width = Some(init.width);
            s.summary.height = Some(init.height);
            s.summary.bytes += bytes.len() as u64;
            s.init = Some(bytes.clone());
            // The header comes with the output's first keyframe: media time zero is now.
            s.started = SystemTime::now();
        }
        if let Some(up) = &self.upload {
            up.file("init.mp4", bytes, "video/mp4");
        }
        self.bump();
    }

    fn event(&self, event: HlsEvent) {
        let mut uploads = Vec::new();
        {
            let mut s = lock(&self.state);
            let started = s.started;
            s.playlist.apply(&event, Some(started));
            match event {
                HlsEvent::Part { msn, index, bytes, .. } => {
                    s.summary.bytes += bytes.len() as u64;
                    s.open.extend_from_slice(&bytes);
                    s.parts.insert((msn, index), Bytes::from(bytes));
                }
                HlsEvent::SegmentEnd { msn, duration, .. } => {
                    let segment = Bytes::from(std::mem::take(&mut s.open));
                    s.segments.insert(msn, segment.clone());
                    s.summary.segments += 1;
                    s.summary.duration += duration;
                    // The window, and a little more for players mid-download.
                    let keep_from = msn.saturating_sub(WINDOW as u64 + KEPT_BEYOND_WINDOW);
                    s.segments.retain(|m, _| *m >= keep_from);
                    // Parts are listed for the last three target durations (up to six
                    // segments of 2 s); one more for players mid-download.
                    let parts_from = msn.saturating_sub(PARTS_KEPT_FOR);
                    s.parts.retain(|(m, _), _| *m >= parts_from);
                    if self.upload.is_some() {
                        uploads.push((tessera_compositor::hls::segment_name(msn), segment));
                        uploads.push(("index.m3u8".to_owned(), Bytes::from(s.playlist.render_without_parts())));
                    }
                }
            }
        }
        if let Some(up) = &self.upload {
            for (name, bytes) in uploads {
                let kind = if name.ends_with(".m3u8") { "application/vnd.apple.mpegurl" } else { "video/mp4" };
                up.file(&name, bytes, kind);
            }
        }
        self.bump();
    }

    fn end(&self) {
        let final_playlist = {
            let mut s = lock(&self.state);
            s.playlist.finish();
            s.summary.ended = true;
            s.playlist.render_without_parts()
        };
        if let Some(up) = &self.upload {
            up.file("index.m3u8", Bytes::from(final_playlist), "application/vnd.apple.mpegurl");
            up.close();
        }
        self.bump();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(FileName::parse("index.m3u8"), Some(FileName::Playlist));
        assert_eq!(FileName::parse("init.mp4"), Some(FileName::Init));
        assert_eq!(FileName::parse("seg12.m4s"), Some(FileName::Segment(12)));
        assert_eq!(FileName::parse("seg12.3.m4s"), Some(FileName::Part(12, 3)));
        for bad in
            ["seg.m4s", "seg-1.m4s", "seg1..m4s", "seg1.2.3.m4s", "x.m4s", "seg1.mp4", "../seg1.m4s", "seg+1.m4s"]
        {
            assert_eq!(FileName::parse(bad), None, "{bad}");
        }
    }
}
