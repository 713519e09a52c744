//! The hand-off consumer of the WHIP tests: it records every track, packet and sender report
//! the SFU hands over; and reading RTP headers and sequence gaps.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use tessera_sfu::{KeyframeRequester, MediaHandoff, SenderReportInfo, TrackInfo};

/// The hand-off consumer: remembers everything it is given.
#[derive(Default)]
pub struct Recorder {
    pub published: Mutex<Vec<TrackInfo>>,
    pub unpublished: Mutex<Vec<TrackInfo>>,
    /// Every RTP packet, by track id.
    pub packets: Mutex<BTreeMap<String, Vec<Vec<u8>>>>,
    /// Every sender report with the number of packets of its track handed over before it.
    pub reports: Mutex<BTreeMap<String, Vec<(SenderReportInfo, usize)>>>,
    pub keyframes: Mutex<Vec<KeyframeRequester>>,
}

impl MediaHandoff for Recorder {
    fn track_published(&self, track: &TrackInfo, keyframes: KeyframeRequester) {
        self.published.lock().unwrap().push(track.clone());
        self.keyframes.lock().unwrap().push(keyframes);
    }
    fn track_unpublished(&self, track: &TrackInfo) {
        self.unpublished.lock().unwrap().push(track.clone());
    }
    fn rtp(&self, track_id: &str, packet: &[u8]) {
        self.packets.lock().unwrap().entry(track_id.to_owned()).or_default().push(packet.to_vec());
    }
    fn sender_report(&self, track_id: &str, report: &SenderReportInfo) {
        let before = self.count(track_id);
        self.reports.lock().unwrap().entry(track_id.to_owned()).or_default().push((*report, before));
    }
}

impl Recorder {
    pub fn track(&self, mime: &str) -> Option<TrackInfo> {
        self.published.lock().unwrap().iter().find(|t| t.mime_type.eq_ignore_ascii_case(mime)).cloned()
    }
    pub fn packets_of(&self, track_id: &str) -> Vec<Vec<u8>> {
        self.packets.lock().unwrap().get(track_id).cloned().unwrap_or_default()
    }
    pub fn count(&self, track_id: &str) -> usize {
        self.packets.lock().unwrap().get(track_id).map_or(0, Vec::len)
    }
    pub fn reports_of(&self, track_id: &str) -> Vec<(SenderReportInfo, usize)> {
        self.reports.lock().unwrap().get(track_id).cloned().unwrap_or_default()
    }
}

/// RTP header fields of a serialized packet: (payload type, sequence number, timestamp, SSRC).
pub fn rtp_header(p: &[u8]) -> (u8, u16, u32, u32) {
    assert!(p.len() >= 12 && p[0] >> 6 == 2, "not an RTP packet: {p:02x?}");
    (
        p[1] & 0x7f,
        u16::from_be_bytes([p[2], p[3]]),
        u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
    )
}

/// Sequence numbers missing between the first and the highest one received (retransmissions
/// may arrive out of order), and that span.
pub fn sequence_gaps(packets: &[Vec<u8>]) -> (usize, usize) {
    let seqs: Vec<u16> = packets.iter().map(|p| rtp_header(p).1).collect();
    let Some(&first) = seqs.first() else { return (0, 0) };
    let span = seqs.iter().map(|s| s.wrapping_sub(first)).filter(|d| *d < 0x8000).max().unwrap_or(0) as usize + 1;
    let distinct: HashSet<u16> = seqs.iter().copied().collect();
    (span.saturating_sub(distinct.len()), span)
}
