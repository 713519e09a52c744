//! A tiny ISO-BMFF (ISO/IEC 14496-12) box writer: the box header is written first with a
//! placeholder size, the body appended by a closure, then the size patched in. Nesting is
//! closures inside closures, so the code reads like the box tree it writes.
//!
//! Big-endian throughout, as the format requires.

/// Writes one box: 32-bit size, `fourcc`, then what `body` appends. A body too large for a
/// 32-bit size (only an `mdat` could be) gets the 64-bit `largesize` header instead.
pub fn write_box(out: &mut Vec<u8>, fourcc: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    put_u32(out, 0);
    out.extend_from_slice(fourcc);
    body(out);
    let size = (out.len() - start) as u64;
    match u32::try_from(size) {
        Ok(size) => out[start..start + 4].copy_from_slice(&size.to_be_bytes()),
        Err(_) => {
            // size = 1 means "the real size follows the type", 8 bytes more of header.
            let mut large = Vec::with_capacity(8);
            put_u64(&mut large, size + 8);
            out[start..start + 4].copy_from_slice(&1u32.to_be_bytes());
            out.splice(start + 8..start + 8, large);
        }
    }
}

/// Writes a full box: a box whose body starts with a version byte and 24 bits of flags.
pub fn write_full_box(out: &mut Vec<u8>, fourcc: &[u8; 4], version: u8, flags: u32, body: impl FnOnce(&mut Vec<u8>)) {
    write_box(out, fourcc, |out| {
        put_u32(out, (u32::from(version) << 24) | (flags & 0x00ff_ffff));
        body(out);
    });
}

pub fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// The low 24 bits of `v` (buffer sizes in `esds`).
pub fn put_u24(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes()[1..]);
}

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_zeros(out: &mut Vec<u8>, n: usize) {
    out.resize(out.len() + n, 0);
}

/// Overwrites 4 bytes at `at` (a field whose value is only known later, e.g. a `trun`
/// data offset). `at` is a position this module's caller wrote itself.
pub fn patch_i32(out: &mut [u8], at: usize, v: i32) {
    out[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// The unity transformation matrix of `mvhd` and `tkhd` (16.16 and 2.30 fixed point).
pub fn put_unity_matrix(out: &mut Vec<u8>) {
    for v in [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000u32] {
        put_u32(out, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_is_its_size_its_type_and_its_body() {
        let mut out = vec![0xaa];
        write_box(&mut out, b"free", |b| b.extend_from_slice(b"xyz"));
        assert_eq!(out, [0xaa, 0, 0, 0, 11, b'f', b'r', b'e', b'e', b'x', b'y', b'z']);
    }

    #[test]
    fn nested_and_full_boxes_count_their_children_and_version_flags() {
        let mut out = Vec::new();
        write_box(&mut out, b"moov", |b| write_full_box(b, b"mvhd", 1, 0x020001, |b| put_u16(b, 7)));
        assert_eq!(&out[..8], &[0, 0, 0, 22, b'm', b'o', b'o', b'v']);
        assert_eq!(&out[8..16], &[0, 0, 0, 14, b'm', b'v', b'h', b'd']);
        assert_eq!(&out[16..], &[1, 0x02, 0x00, 0x01, 0, 7]);
    }
}
