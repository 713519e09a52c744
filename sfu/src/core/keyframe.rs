//! Keyframe detection from the RTP payload, per codec. Only the start of a keyframe is
//! recognised (the packet a layer switch may begin at).

/// Video codecs the forwarder understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// VP8 (RFC 7741).
    Vp8,
    /// VP9 (RFC 9628).
    Vp9,
    /// H.264 (RFC 6184).
    H264,
    /// AV1 (AOM RTP payload format).
    Av1,
}

impl VideoCodec {
    /// From a MIME type such as `video/VP8` (case-insensitive).
    pub fn from_mime(mime: &str) -> Option<Self> {
        let m = mime.to_ascii_lowercase();
        match m.as_str() {
            "video/vp8" => Some(Self::Vp8),
            "video/vp9" => Some(Self::Vp9),
            "video/h264" => Some(Self::H264),
            "video/av1" => Some(Self::Av1),
            _ => None,
        }
    }
}

/// Whether this RTP payload starts a keyframe. Malformed payloads are "not a keyframe".
pub fn is_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_keyframe(payload),
        VideoCodec::Vp9 => vp9_keyframe(payload),
        VideoCodec::H264 => h264_keyframe(payload),
        VideoCodec::Av1 => av1_keyframe(payload),
    }
}

fn vp8_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let x = b0 & 0x80 != 0;
    let s = b0 & 0x10 != 0;
    let pid = b0 & 0x07;
    if !s || pid != 0 {
        return false;
    }
    let mut i = 1;
    if x {
        let Some(&b1) = p.get(i) else { return false };
        i += 1;
        if b1 & 0x80 != 0 {
            // PictureID, 7 or 15 bits.
            let Some(&pic) = p.get(i) else { return false };
            i += if pic & 0x80 != 0 { 2 } else { 1 };
        }
        if b1 & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if b1 & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    // VP8 payload header: P bit (inverse key frame flag) is bit 0 of the first byte.
    p.get(i).is_some_and(|&h| h & 0x01 == 0)
}

fn vp9_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    // I P L F B E V Z: P=0 (not inter-predicted) and B=1 (start of frame).
    let inter = b0 & 0x40 != 0;
    let begin = b0 & 0x08 != 0;
    if inter || !begin {
        return false;
    }
    // With layer indices present, require spatial layer 0 (the base of a keyframe).
    if b0 & 0x20 != 0 {
        let mut i = 1;
        if b0 & 0x80 != 0 {
            let Some(&pic) = p.get(i) else { return false };
            i += if pic & 0x80 != 0 { 2 } else { 1 };
        }
        let Some(&l) = p.get(i) else { return false };
        return (l >> 1) & 0x07 == 0;
    }
    true
}

fn h264_nal_is_key(nal_type: u8) -> bool {
    // IDR slice, or SPS (sent right before an IDR by every encoder we meet).
    nal_type == 5 || nal_type == 7
}

fn h264_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    match b0 & 0x1f {
        1..=23 => h264_nal_is_key(b0 & 0x1f),
        24 => {
            // STAP-A: 16-bit size, then a NAL unit, repeated.
            let mut i = 1;
            while i + 2 < p.len() {
                let size = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
                i += 2;
                let Some(&nal) = p.get(i) else { return false };
                if h264_nal_is_key(nal & 0x1f) {
                    return true;
                }
                i += size;
            }
            false
        }
        28 => {
            // FU-A: start bit and the original NAL type.
            let Some(&fu) = p.get(1) else { return false };
            fu & 0x80 != 0 && h264_nal_is_key(fu & 0x1f)
        }
        _ => false,
    }
}

fn av1_keyframe(p: &[u8]) -> bool {
    // Aggregation header Z Y W W N - - -: N=1 starts a new coded video sequence.
    p.first().is_some_and(|&b| b & 0x08 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8() {
        // S=1 PID=0, no extension, payload header P=0: keyframe.
        assert!(is_keyframe(VideoCodec::Vp8, &[0x10, 0x00, 0x9d]));
        // P=1: interframe.
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x10, 0x01]));
        // Not the start of a partition.
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x00, 0x00]));
        // X=1 with I=1 (15-bit picture id), T/K: 4 bytes of descriptor.
        assert!(is_keyframe(VideoCodec::Vp8, &[0x90, 0xa0, 0x80, 0x01, 0x00, 0x00]));
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x90, 0xa0, 0x80, 0x01, 0x00, 0x01]));
        // Truncated input is never a keyframe and never panics.
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x90, 0xa0]));
        assert!(!is_keyframe(VideoCodec::Vp8, &[]));
    }

    #[test]
    fn h264() {
        assert!(is_keyframe(VideoCodec::H264, &[0x65, 0x88]));
        assert!(is_keyframe(VideoCodec::H264, &[0x67, 0x42]));
        assert!(!is_keyframe(VideoCodec::H264, &[0x41, 0x9a]));
        // STAP-A with SPS inside.
        assert!(is_keyframe(VideoCodec::H264, &[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68]));
        // FU-A start of an IDR, and a continuation.
        assert!(is_keyframe(VideoCodec::H264, &[0x7c, 0x85, 0x00]));
        assert!(!is_keyframe(VideoCodec::H264, &[0x7c, 0x05, 0x00]));
        assert!(!is_keyframe(VideoCodec::H264, &[0x78, 0xff]));
    }

    #[test]
    fn vp9_and_av1() {
        assert!(is_keyframe(VideoCodec::Vp9, &[0x08]));
        assert!(!is_keyframe(VideoCodec::Vp9, &[0x48]));
        assert!(is_keyframe(VideoCodec::Av1, &[0x18]));
        assert!(!is_keyframe(VideoCodec::Av1, &[0x10]));
        assert_eq!(VideoCodec::from_mime("video/vp8"), Some(VideoCodec::Vp8));
        assert_eq!(VideoCodec::from_mime("audio/opus"), None);
    }
}

/// Frame size from the start of a VP8 keyframe (RFC 6386 §9.1), if this packet carries one.
pub fn vp8_keyframe_size(p: &[u8]) -> Option<(u32, u32)> {
    if !vp8_keyframe(p) {
        return None;
    }
    let b0 = *p.first()?;
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let b1 = *p.get(i)?;
        i += 1;
        if b1 & 0x80 != 0 {
            i += if *p.get(i)? & 0x80 != 0 { 2 } else { 1 };
        }
        if b1 & 0x40 != 0 {
            i += 1;
        }
        if b1 & 0x30 != 0 {
            i += 1;
        }
    }
    let h = p.get(i..i + 10)?;
    if h[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([h[6], h[7]]) & 0x3fff;
    let ht = u16::from_le_bytes([h[8], h[9]]) & 0x3fff;
    Some((w as u32, ht as u32))
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn vp8_size() {
        let p = [0x10, 0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01];
        assert_eq!(super::vp8_keyframe_size(&p), Some((640, 360)));
        assert_eq!(super::vp8_keyframe_size(&p[..8]), None);
    }
}
