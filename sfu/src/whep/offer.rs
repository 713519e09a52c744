//! A WHEP viewer's offer, read from its text: its media sections, which of them receive, the
//! codecs each offers, and the codec each of the program's tracks goes as (`choose_codec`).

use std::collections::HashMap;
use std::sync::Arc;

use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;

use crate::codecs::{fmtp_param, h264_target};
use crate::track::PublishedTrack;

/// One codec of an offer's media section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OfferedCodec {
    pub(crate) pt: u8,
    /// `video/H264`, `audio/opus`…
    pub(crate) mime: String,
    pub(crate) clock_rate: u32,
    pub(crate) fmtp: String,
}

impl OfferedCodec {
    pub(super) fn codec(&self) -> RTCRtpCodec {
        RTCRtpCodec {
            mime_type: self.mime.clone(),
            clock_rate: self.clock_rate,
            sdp_fmtp_line: self.fmtp.clone(),
            ..Default::default()
        }
    }
}

/// One media section of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OfferedSection {
    /// `audio` or `video` (others are kept, to keep the order).
    pub(crate) kind: String,
    /// The client receives in it (`recvonly` or `sendrecv`, port not 0 unless bundle-only).
    pub(crate) receives: bool,
    /// In the client's order of preference.
    pub(crate) codecs: Vec<OfferedCodec>,
}

/// The media sections of an SDP offer, read from its text.
pub(crate) fn offer_sections(sdp: &str) -> Vec<OfferedSection> {
    struct Raw {
        kind: String,
        port_zero: bool,
        /// `a=bundle-only`: port 0 in an offer means bundled, not rejected (RFC 9143).
        bundle_only: bool,
        direction: Option<String>,
        pts: Vec<u8>,
        rtpmap: HashMap<u8, (String, u32)>,
        fmtp: HashMap<u8, String>,
    }
    let mut session_direction: Option<String> = None;
    let mut raws: Vec<Raw> = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut f = m.split_whitespace();
            let kind = f.next().unwrap_or("").to_ascii_lowercase();
            let port_zero = f.next().is_some_and(|p| p == "0");
            let pts = f.skip(1).filter_map(|p| p.parse().ok()).collect();
            raws.push(Raw {
                kind,
                port_zero,
                bundle_only: false,
                direction: None,
                pts,
                rtpmap: HashMap::new(),
                fmtp: HashMap::new(),
            });
            continue;
        }
        let dir = ["sendrecv", "recvonly", "sendonly", "inactive"].into_iter().find(|d| line == format!("a={d}"));
        let Some(raw) = raws.last_mut() else {
            if let Some(d) = dir {
                session_direction = Some(d.to_owned());
            }
            continue;
        };
        if let Some(d) = dir {
            raw.direction = Some(d.to_owned());
        } else if line == "a=bundle-only" {
            raw.bundle_only = true;
        } else if let Some(rest) = line.strip_prefix("a=rtpmap:") {
            let Some((pt, enc)) = rest.split_once(' ') else { continue };
            let Ok(pt) = pt.trim().parse::<u8>() else { continue };
            let mut parts = enc.trim().split('/');
            let name = parts.next().unwrap_or("").to_owned();
            let Some(rate) = parts.next().and_then(|r| r.parse().ok()) else { continue };
            raw.rtpmap.insert(pt, (name, rate));
        } else if let Some(rest) = line.strip_prefix("a=fmtp:") {
            let Some((pt, params)) = rest.split_once(' ') else { continue };
            let Ok(pt) = pt.trim().parse::<u8>() else { continue };
            raw.fmtp.insert(pt, params.trim().to_owned());
        }
    }
    raws.into_iter()
        .map(|r| {
            let direction = r.direction.or_else(|| session_direction.clone()).unwrap_or_else(|| "sendrecv".into());
            let codecs = r
                .pts
                .iter()
                .filter_map(|pt| {
                    let (name, clock_rate) = r.rtpmap.get(pt)?;
                    Some(OfferedCodec {
                        pt: *pt,
                        mime: format!("{}/{name}", r.kind),
                        clock_rate: *clock_rate,
                        fmtp: r.fmtp.get(pt).cloned().unwrap_or_default(),
                    })
                })
                .collect();
            OfferedSection {
                receives: (!r.port_zero || r.bundle_only) && (direction == "recvonly" || direction == "sendrecv"),
                kind: r.kind,
                codecs,
            }
        })
        .collect()
}

/// The offered codec a track is best sent as, if any: the same MIME type and clock rate; for
/// H.264, packetization mode 1 only, the track's profile (the first four hex digits of
/// `profile-level-id`) exactly if offered, else one decoding it (main or high for a high
/// track; see `codecs::h264_target`), levels aside. In the client's order of preference.
pub(crate) fn choose_codec<'a>(offered: &'a [OfferedCodec], track: &RTCRtpCodec) -> Option<&'a OfferedCodec> {
    let mut same =
        offered.iter().filter(|c| c.mime.eq_ignore_ascii_case(&track.mime_type) && c.clock_rate == track.clock_rate);
    if !track.mime_type.eq_ignore_ascii_case("video/H264") {
        return same.next();
    }
    let profile =
        |fmtp: &str| fmtp_param(fmtp, "profile-level-id").unwrap_or("42000a").get(..4).map(str::to_ascii_lowercase);
    let class = |fmtp: &str| h264_target(fmtp).ok().map(|(_, class)| class);
    let mode1: Vec<&OfferedCodec> = same.filter(|c| fmtp_param(&c.fmtp, "packetization-mode") == Some("1")).collect();
    let (want_profile, want_class) = (profile(&track.sdp_fmtp_line), class(&track.sdp_fmtp_line));
    mode1
        .iter()
        .find(|c| want_profile.is_some() && profile(&c.fmtp) == want_profile)
        .or_else(|| mode1.iter().find(|c| want_class.is_some() && class(&c.fmtp) == want_class))
        .copied()
}

/// Pairs each published track with the first receiving section of its kind not yet taken
/// (the transceiver `rtc` gives it), and the codec it goes as there. A track whose kind the
/// offer has no section for is not sent; a section that has none of its codec refuses the
/// viewer (the message names the codec), as does an offer that would receive nothing.
pub(super) fn plan_tracks(
    sections: &[OfferedSection],
    tracks: &[Arc<PublishedTrack>],
) -> std::result::Result<Vec<(Arc<PublishedTrack>, OfferedCodec)>, String> {
    let mut taken = vec![false; sections.len()];
    let mut plan = Vec::new();
    for track in tracks {
        let kind = if track.forwarder_is_video() { "video" } else { "audio" };
        let Some(i) = (0..sections.len()).find(|&i| !taken[i] && sections[i].receives && sections[i].kind == kind)
        else {
            continue;
        };
        taken[i] = true;
        let codec = choose_codec(&sections[i].codecs, &track.codec).ok_or_else(|| describe_refusal(&track.codec))?;
        plan.push((Arc::clone(track), codec.clone()));
    }
    if plan.is_empty() {
        return Err("the offer receives no audio or video section (send recvonly audio and video)".into());
    }
    Ok(plan)
}

fn describe_refusal(codec: &RTCRtpCodec) -> String {
    if codec.mime_type.eq_ignore_ascii_case("video/H264") {
        format!(
            "the offer does not receive {} in a profile decoding {} with packetization-mode=1 \
             (offer H.264 high or main, packetization-mode=1)",
            codec.mime_type,
            fmtp_param(&codec.sdp_fmtp_line, "profile-level-id").unwrap_or("42000a")
        )
    } else {
        format!("the offer does not receive {} at {} Hz", codec.mime_type, codec.clock_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HIGH: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032";

    fn h264(fmtp: &str) -> RTCRtpCodec {
        RTCRtpCodec {
            mime_type: "video/H264".into(),
            clock_rate: 90_000,
            sdp_fmtp_line: fmtp.into(),
            ..Default::default()
        }
    }

    fn offered(pt: u8, fmtp: &str) -> OfferedCodec {
        OfferedCodec { pt, mime: "video/H264".into(), clock_rate: 90_000, fmtp: fmtp.into() }
    }

    /// Chrome's H.264 list, abridged: constrained baseline and baseline in both modes, main,
    /// high, in its order.
    const CHROME: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=mid:0\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\n\
        a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:63 red/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 102 103 104 106 108 112 127 39\r\na=mid:1\r\na=recvonly\r\n\
        a=rtpmap:96 VP8/90000\r\n\
        a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
        a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n\
        a=rtpmap:104 H264/90000\r\na=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
        a=rtpmap:106 H264/90000\r\na=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
        a=rtpmap:108 H264/90000\r\na=fmtp:108 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n\
        a=rtpmap:112 H264/90000\r\na=fmtp:112 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r\n\
        a=rtpmap:127 H264/90000\r\na=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n\
        a=rtpmap:39 H264/90000\r\na=fmtp:39 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=4d001f\r\n";

    #[test]
    fn an_offers_sections_and_codecs_are_read_in_order() {
        let s = offer_sections(CHROME);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].kind.as_str(), s[0].receives), ("audio", true));
        assert_eq!(
            s[0].codecs[0],
            OfferedCodec {
                pt: 111,
                mime: "audio/opus".into(),
                clock_rate: 48_000,
                fmtp: "minptime=10;useinbandfec=1".into()
            }
        );
        assert_eq!((s[1].kind.as_str(), s[1].receives), ("video", true));
        let pts: Vec<u8> = s[1].codecs.iter().map(|c| c.pt).collect();
        assert_eq!(pts, [96, 102, 103, 104, 106, 108, 112, 127, 39]);
        let sendonly = CHROME.replace("a=recvonly", "a=sendonly");
        assert!(offer_sections(&sendonly).iter().all(|s| !s.receives), "a section the client only sends in");
        let rejected = CHROME.replace("m=audio 9", "m=audio 0");
        assert!(!offer_sections(&rejected)[0].receives, "a rejected (port 0) section");
        // webrtcbin's max-bundle: later sections are port 0 and bundle-only.
        let bundled = rejected.replace("a=mid:0\r\n", "a=mid:0\r\na=bundle-only\r\n");
        assert!(offer_sections(&bundled)[0].receives, "a bundle-only section");
        assert!(offer_sections("garbage\r\nm=\r\na=rtpmap:x\r\n").iter().all(|s| s.codecs.is_empty()));
    }

    #[test]
    fn a_high_profile_track_goes_as_the_offered_high_else_main_in_mode_1() {
        let s = offer_sections(CHROME);
        // Chrome: its high (64001f, level aside) at 112, not the baselines before it.
        assert_eq!(choose_codec(&s[1].codecs, &h264(HIGH)).map(|c| c.pt), Some(112));
        // An exact profile match comes before another decoding it, whatever the order.
        let both = [offered(100, "packetization-mode=1;profile-level-id=4d0032"), offered(101, HIGH)];
        assert_eq!(choose_codec(&both, &h264(HIGH)).map(|c| c.pt), Some(101));
        // Main only: it decodes the program (browsers do).
        let main = [offered(100, "packetization-mode=1;profile-level-id=4d001f")];
        assert_eq!(choose_codec(&main, &h264(HIGH)).map(|c| c.pt), Some(100));
        // Mode 0 or baseline profiles only: refused.
        let mode0 =
            [offered(100, "packetization-mode=0;profile-level-id=640032"), offered(101, "profile-level-id=640032")];
        assert_eq!(choose_codec(&mode0, &h264(HIGH)), None);
        let baseline = [
            offered(100, "packetization-mode=1;profile-level-id=42e01f"),
            offered(101, "packetization-mode=1;profile-level-id=42001f"),
        ];
        assert_eq!(choose_codec(&baseline, &h264(HIGH)), None);
        // webrtcbin's (upper-case, no level-asymmetry).
        let gst = [offered(96, "packetization-mode=1;profile-level-id=640032")];
        assert_eq!(choose_codec(&gst, &h264(HIGH)).map(|c| c.pt), Some(96));
        // Opus by MIME type and clock rate, whatever its case.
        let opus =
            RTCRtpCodec { mime_type: "audio/opus".into(), clock_rate: 48_000, channels: 2, ..Default::default() };
        assert_eq!(choose_codec(&s[0].codecs, &opus).map(|c| c.pt), Some(111));
        let gst_opus = [OfferedCodec { pt: 97, mime: "audio/OPUS".into(), clock_rate: 48_000, fmtp: String::new() }];
        assert_eq!(choose_codec(&gst_opus, &opus).map(|c| c.pt), Some(97));
        assert_eq!(choose_codec(&s[1].codecs, &opus), None, "not from a video section");
        assert!(describe_refusal(&h264(HIGH)).contains("640032"));
    }
}
