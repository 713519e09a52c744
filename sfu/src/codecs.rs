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

/// H.264 profiles browsers and OBS send (baseline, constrained baseline, high), packetization
/// modes 1 and 0, as `(fmtp, payload type, RTX payload type)`.
const H264: &[(&str, u8, u8)] = &[
    ("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", 102, 103),
    ("level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f", 127, 104),
    ("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", 125, 105),
    ("level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f", 108, 109),
    ("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032", 123, 124),
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

/// Registers [`codec_list`] with a peer connection's media engine.
pub(crate) fn register_codecs(me: &mut MediaEngine) -> Result<()> {
    for (codec, kind) in codec_list() {
        me.register_codec(codec, kind).map_err(Error::rtc("cannot register a codec"))?;
    }
    Ok(())
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
}
