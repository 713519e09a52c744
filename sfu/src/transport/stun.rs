//! Just enough STUN (RFC 8489) to route a connectivity check to its connection: the local
//! username fragment of a Binding request's USERNAME attribute.

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const HEADER_LEN: usize = 20;
const ATTR_USERNAME: u16 = 0x0006;

/// Whether `b` looks like a STUN message (RFC 7983: first byte 0–3, and the magic cookie).
pub(crate) fn is_stun(b: &[u8]) -> bool {
    b.len() >= HEADER_LEN && b[0] < 4 && b[4..8] == MAGIC_COOKIE
}

/// The recipient's username fragment of a STUN message: the part of USERNAME before the
/// colon (`<recipient ufrag>:<sender ufrag>`, RFC 8445 §7.2.2).
pub(crate) fn local_ufrag(b: &[u8]) -> Option<&str> {
    if !is_stun(b) {
        return None;
    }
    let body_len = u16::from_be_bytes([b[2], b[3]]) as usize;
    let end = (HEADER_LEN + body_len).min(b.len());
    let mut at = HEADER_LEN;
    while at + 4 <= end {
        let kind = u16::from_be_bytes([b[at], b[at + 1]]);
        let len = u16::from_be_bytes([b[at + 2], b[at + 3]]) as usize;
        let value = b.get(at + 4..at + 4 + len)?;
        if kind == ATTR_USERNAME {
            let name = std::str::from_utf8(value).ok()?;
            return name.split(':').next().filter(|u| !u.is_empty());
        }
        // Attributes are padded to four bytes.
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in attrs {
            body.extend_from_slice(&kind.to_be_bytes());
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn finds_the_recipient_ufrag_after_other_attributes() {
        let m = binding(&[(0x0024, &[0, 0, 0, 1]), (0x8029, &[1; 5]), (ATTR_USERNAME, b"serverUfrag:clientUfrag")]);
        assert!(is_stun(&m));
        assert_eq!(local_ufrag(&m), Some("serverUfrag"));
    }

    #[test]
    fn rejects_what_is_not_a_usable_binding() {
        assert_eq!(local_ufrag(&binding(&[(0x0024, &[0, 0, 0, 1])])), None);
        assert_eq!(local_ufrag(&binding(&[(ATTR_USERNAME, b":x")])), None);
        // RTP, DTLS, truncated, and a length running past the end.
        assert!(!is_stun(&[0x80; 40]));
        assert!(!is_stun(&[22; 40]));
        assert!(!is_stun(&[0, 1, 0, 0]));
        let mut m = binding(&[(ATTR_USERNAME, b"abc:def")]);
        m[22..24].copy_from_slice(&200u16.to_be_bytes());
        assert_eq!(local_ufrag(&m), None);
    }
}
