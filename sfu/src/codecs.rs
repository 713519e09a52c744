//! The codecs the SFU negotiates: Opus, VP8 and H.264 (with RTX for video). Every published
//! track is then one the room's program can decode and every browser can receive; a client
//! that offers video only in VP9 or AV1 gets that section refused, and its audio still flows.

use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8, MediaEngine,
};
use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};

use crate::error::{Error, Result};

fn codec(
    mime: &str,
    clock_rate: u32,
    channels: u16,
    fmtp: &str,
    feedback: &[RTCPFeedback],
    payload_type: u8,
) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: feedback.to_vec(),
        },
        payload_type,
    }
}

/// H.264 profiles browsers and OBS send (baseline, constrained baseline, high, main), packetization
/// modes 1 and 0, as `(fmtp, payload type, RTX payload type)`.
const H264: &[(&str, u8, u8)] = &[
    ("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", 102, 103),
    ("level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f", 127, 104),
    ("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", 125, 105),
    ("level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f", 108, 109),
    ("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032", 123, 124),
    // Main: what Chromium offers to receive where it does not offer High (Debian's build);
    // the room's program (High, no B-frames) goes to such a viewer as Main (its FFmpeg
    // decoder takes High too; see docs/sfu.md, WHEP).
    ("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f", 116, 117),
];

/// Opus, VP8 and the H.264 profiles, each video codec followed by its RTX codec.
pub(crate) fn codec_list() -> Vec<(RTCRtpCodecParameters, RtpCodecKind)> {
    let feedback: Vec<RTCPFeedback> = [("goog-remb", ""), ("ccm", "fir"), ("nack", ""), ("nack", "pli")]
        .iter()
        .map(|(typ, parameter)| RTCPFeedback { typ: (*typ).to_owned(), parameter: (*parameter).to_owned() })
        .collect();
    let rtx = |pt: u8, apt: u8| (codec(MIME_TYPE_RTX, 90_000, 0, &format!("apt={apt}"), &[], pt), RtpCodecKind::Video);
    let mut list = vec![
        (codec(MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1", &[], 111), RtpCodecKind::Audio),
        (codec(MIME_TYPE_VP8, 90_000, 0, "", &feedback, 96), RtpCodecKind::Video),
        rtx(97, 96),
    ];
    for &(fmtp, pt, rtx_pt) in H264 {
        list.push((codec(MIME_TYPE_H264, 90_000, 0, fmtp, &feedback, pt), RtpCodecKind::Video));
        list.push(rtx(rtx_pt, pt));
    }
    list
}

/// Whether `a` and `b` are one format: the same MIME type and, for H.264, the same
/// packetization mode and profile, the level aside (RFC 6184 8.2.2, as `rtc` matches them).
/// Which of a subscriber's negotiated codecs a track goes out as, when the fmtp lines differ
/// as text (a browser's parameter order).
pub(crate) fn same_format(a: &RTCRtpCodec, b: &RTCRtpCodec) -> bool {
    if !a.mime_type.eq_ignore_ascii_case(&b.mime_type) {
        return false;
    }
    if !a.mime_type.eq_ignore_ascii_case(MIME_TYPE_H264) {
        return true;
    }
    let mode = |c: &RTCRtpCodec| fmtp_param(&c.sdp_fmtp_line, "packetization-mode").unwrap_or("0").to_owned();
    let profile = |c: &RTCRtpCodec| {
        let id = fmtp_param(&c.sdp_fmtp_line, "profile-level-id").unwrap_or("42000a");
        id.get(..4).map(str::to_ascii_lowercase)
    };
    mode(a) == mode(b) && profile(a) == profile(b)
}

/// Every video codec the SFU forwards (without RTX, which follows its codec), `first` (a
/// track's codec) first: what a subscribe connection's first video section offers (see
/// `Participant::subscribe_to`).
pub(crate) fn video_codecs_first(first: &RTCRtpCodec) -> Vec<RTCRtpCodecParameters> {
    let mut list: Vec<RTCRtpCodecParameters> = codec_list()
        .into_iter()
        .filter(|(c, kind)| *kind == RtpCodecKind::Video && c.rtp_codec.mime_type != MIME_TYPE_RTX)
        .map(|(c, _)| c)
        .collect();
    let at = list
        .iter()
        .position(|c| same_format(&c.rtp_codec, first))
        .or_else(|| list.iter().position(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(&first.mime_type)));
    if let Some(i) = at {
        let c = list.remove(i);
        list.insert(0, c);
    }
    list
}

/// Registers [`codec_list`] with a peer connection's media engine.
pub(crate) fn register_codecs(me: &mut MediaEngine) -> Result<()> {
    for (codec, kind) in codec_list() {
        me.register_codec(codec, kind).map_err(Error::rtc("cannot register a codec"))?;
    }
    Ok(())
}

/// The registered codec a track made in this process goes to subscribers as (see
/// `local_publisher.rs`), so that its subscribers negotiate exactly what it carries: the codec
/// of the same MIME type and clock rate; for H.264, the registered profile that decodes the
/// stream's (constrained baseline as `42e01f`, baseline as `42001f`, main and high as
/// `640032`: a high decoder decodes main) in its packetization mode, or in mode 1 for a mode-0
/// stream (single NAL units are valid in mode 1; the reverse is not). The level is not
/// matched: the registered levels are the ones browsers offer (3.1 for the baseline
/// profiles, 5.0 for high), and a stream above 3.1 (1080p) should be high.
pub(crate) fn registered_codec(mime: &str, clock_rate: u32, fmtp: &str) -> Result<RTCRtpCodecParameters> {
    let unsupported = |why: &str| Error::BadRequest(format!("cannot forward {mime} ({fmtp}): {why}"));
    let list: Vec<RTCRtpCodecParameters> = codec_list()
        .into_iter()
        .map(|(c, _)| c)
        .filter(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime) && !mime.eq_ignore_ascii_case(MIME_TYPE_RTX))
        .collect();
    let codec = if mime.eq_ignore_ascii_case(MIME_TYPE_H264) {
        let (mode, profile) = h264_target(fmtp).map_err(&unsupported)?;
        let registered = |mode: &str| {
            list.iter().find(|c| {
                let f = &c.rtp_codec.sdp_fmtp_line;
                fmtp_param(f, "packetization-mode") == Some(mode)
                    && fmtp_param(f, "profile-level-id")
                        .and_then(|p| p.get(..4))
                        .is_some_and(|p| p.eq_ignore_ascii_case(profile))
            })
        };
        registered(mode).or_else(|| if mode == "0" { registered("1") } else { None })
    } else {
        list.first()
    };
    let codec = codec.cloned().ok_or_else(|| unsupported("not a codec the SFU negotiates"))?;
    if codec.rtp_codec.clock_rate != clock_rate {
        return Err(unsupported(&format!("its clock rate is {} Hz", codec.rtp_codec.clock_rate)));
    }
    Ok(codec)
}

/// An H.264 stream's packetization mode and the profile (the first four hex digits of a
/// registered `profile-level-id`) it is forwarded as (RFC 6184 8.1, table 5).
pub(crate) fn h264_target(fmtp: &str) -> Result<(&'static str, &'static str), &'static str> {
    let mode = match fmtp_param(fmtp, "packetization-mode").unwrap_or("0") {
        "0" => "0",
        "1" => "1",
        _ => return Err("packetization mode 2 (interleaved) is not forwarded"),
    };
    // Absent, the profile is baseline (RFC 6184 8.1).
    let id = fmtp_param(fmtp, "profile-level-id").unwrap_or("42000a");
    let id = (id.len() == 6).then(|| u32::from_str_radix(id, 16).ok()).flatten().ok_or("bad profile-level-id")?;
    let (profile_idc, iop) = ((id >> 16) as u8, (id >> 8) as u8);
    let profile = match profile_idc {
        0x42 if iop & 0x40 != 0 => "42e0",
        0x4d if iop & 0x80 != 0 => "42e0",
        0x58 if iop & 0xc0 == 0xc0 => "42e0",
        0x42 => "4200",
        0x58 if iop & 0x80 != 0 => "4200",
        0x4d | 0x64 => "6400",
        _ => return Err("browsers decode the constrained baseline, baseline, main and high profiles only"),
    };
    Ok((mode, profile))
}

/// The value of `key` in an fmtp line (`a=1;b=2`).
pub(crate) fn fmtp_param<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(key))
        .map(|(_, v)| v.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_codecs_the_program_decodes_each_video_one_with_rtx() {
        let list = codec_list();
        let mimes: Vec<&str> = list.iter().map(|(c, _)| c.rtp_codec.mime_type.as_str()).collect();
        assert!(
            mimes.iter().all(|m| [MIME_TYPE_OPUS, MIME_TYPE_VP8, MIME_TYPE_H264, MIME_TYPE_RTX].contains(m)),
            "{mimes:?}"
        );
        let primaries: Vec<u8> = list
            .iter()
            .filter(|(c, k)| *k == RtpCodecKind::Video && c.rtp_codec.mime_type != MIME_TYPE_RTX)
            .map(|(c, _)| c.payload_type)
            .collect();
        for pt in &primaries {
            let apt = format!("apt={pt}");
            assert!(list.iter().any(|(c, _)| c.rtp_codec.sdp_fmtp_line == apt), "RTX for {pt}");
        }
        let mut pts: Vec<u8> = list.iter().map(|(c, _)| c.payload_type).collect();
        pts.sort_unstable();
        pts.dedup();
        assert_eq!(pts.len(), list.len(), "payload types are unique");
        let mut me = MediaEngine::default();
        register_codecs(&mut me).unwrap();
    }

    #[test]
    fn a_local_track_goes_out_as_the_registered_codec_closest_to_it() {
        let pt = |mime: &str, rate: u32, fmtp: &str| registered_codec(mime, rate, fmtp).map(|c| c.payload_type);
        let h264 = |fmtp: &str| pt("video/H264", 90_000, fmtp);
        // x264's constrained baseline (either constraint flag pattern) and browsers'.
        assert_eq!(h264("packetization-mode=1;profile-level-id=42c01f").ok(), Some(125));
        assert_eq!(h264("profile-level-id=42e01f;packetization-mode=1").ok(), Some(125));
        assert_eq!(h264("packetization-mode=1;profile-level-id=4d801f").ok(), Some(125));
        assert_eq!(h264("packetization-mode=1;profile-level-id=42001f").ok(), Some(102));
        // High and main at any level: the registered high (level 5.0).
        assert_eq!(h264("packetization-mode=1;profile-level-id=640028").ok(), Some(123));
        assert_eq!(h264("packetization-mode=1;profile-level-id=640032").ok(), Some(123));
        assert_eq!(h264("packetization-mode=1;profile-level-id=4D0028").ok(), Some(123));
        // Mode 0: its own registered codec, else mode 1 (which takes single NAL units too).
        assert_eq!(h264("packetization-mode=0;profile-level-id=42e01f").ok(), Some(108));
        assert_eq!(h264("profile-level-id=640028").ok(), Some(123));
        assert_eq!(h264("").ok(), Some(127), "no fmtp: baseline, mode 0");
        let c = registered_codec("video/h264", 90_000, "packetization-mode=1;profile-level-id=640028").unwrap();
        assert_eq!(c.rtp_codec.sdp_fmtp_line, H264[4].0, "the registered fmtp, as subscribers negotiate it");
        assert!(!c.rtp_codec.rtcp_feedback.is_empty(), "with PLI and NACK feedback");
        for refused in ["packetization-mode=1;profile-level-id=6e0028", "packetization-mode=2", "profile-level-id=zz"] {
            assert!(h264(refused).is_err(), "{refused}");
        }
        assert!(pt("video/H264", 48_000, "packetization-mode=1;profile-level-id=42e01f").is_err());
        assert_eq!(pt("audio/opus", 48_000, "").ok(), Some(111));
        assert_eq!(pt("audio/OPUS", 48_000, "stereo=1;sprop-stereo=1").ok(), Some(111));
        assert!(pt("audio/opus", 44_100, "").is_err());
        assert_eq!(pt("video/VP8", 90_000, "").ok(), Some(96));
        assert!(pt("video/VP9", 90_000, "").is_err());
        assert!(pt("video/rtx", 90_000, "apt=96").is_err());
    }

    #[test]
    fn a_browsers_h264_is_the_registered_format_whatever_its_parameter_order() {
        let h264 = |fmtp: &str| RTCRtpCodec {
            mime_type: "video/H264".into(),
            sdp_fmtp_line: fmtp.into(),
            ..Default::default()
        };
        let chrome = h264("profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1");
        assert!(same_format(&chrome, &h264(H264[2].0)));
        assert!(!same_format(&chrome, &h264(H264[0].0)), "baseline is another profile");
        assert!(!same_format(&chrome, &h264(H264[3].0)), "packetization mode 0 is another format");
        assert!(same_format(&h264("packetization-mode=1;profile-level-id=640028"), &h264(H264[4].0)), "levels aside");
        let first = video_codecs_first(&chrome);
        assert_eq!(first[0].payload_type, 125, "the track's codec first");
        assert_eq!(first.len(), 1 + H264.len(), "VP8 and every H.264 profile");
    }
}
