//! The CMAF init segment (`init.mp4`): `ftyp` and a `moov` whose tracks have no samples of
//! their own (empty `stts`/`stsc`/`stsz`/`stco`) and an `mvex` announcing that the samples come
//! in fragments. It only describes the codecs, so one is written per program and never changes.

use super::{AUDIO_TRACK_ID, AudioConfig, VIDEO_TIMESCALE, VIDEO_TRACK_ID, VideoConfig, audio_object_type};
use crate::hls::boxes::*;
use crate::hls::error::{HlsError, Result};

/// `moov`'s own timescale: the movie has no duration (it is fragmented), so any will do.
const MOVIE_TIMESCALE: u32 = 1000;
/// The ISO-639-2 code `und` (undetermined), packed as `mdhd` wants: three 5-bit letters.
const LANGUAGE_UND: u16 = 0x55c4;
/// `tkhd` flags: track enabled, and used in the presentation.
const TRACK_ENABLED_IN_MOVIE: u32 = 0x000003;

/// The init segment for the program's two tracks. Fails if a codec configuration record is
/// unusable or a size does not fit its field (width and height are 16-bit in `avc1`).
pub fn init_segment(video: &VideoConfig, audio: &AudioConfig) -> Result<Vec<u8>> {
    video.codec()?;
    audio_object_type(&audio.asc)?;
    let (width, height) = match (u16::try_from(video.width), u16::try_from(video.height)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => (w, h),
        _ => return Err(config("video size", format!("{}x{} is not within 1..=65535", video.width, video.height))),
    };
    let sample_rate = match u16::try_from(audio.sample_rate) {
        Ok(rate) if rate > 0 => rate,
        _ => return Err(config("sample_rate", format!("{} is not within 1..=65535", audio.sample_rate))),
    };
    if audio.channels == 0 {
        return Err(config("channels", "0".into()));
    }

    let mut out = Vec::with_capacity(1024 + video.avcc.len() + audio.asc.len());
    write_box(&mut out, b"ftyp", |b| {
        b.extend_from_slice(b"iso6");
        put_u32(b, 0);
        for brand in [b"iso6", b"cmfc", b"mp41"] {
            b.extend_from_slice(brand);
        }
    });
    write_box(&mut out, b"moov", |b| {
        mvhd(b);
        trak(b, VIDEO_TRACK_ID, VIDEO_TIMESCALE, Kind::Video { width, height, avcc: &video.avcc });
        trak(
            b,
            AUDIO_TRACK_ID,
            audio.sample_rate,
            Kind::Audio { sample_rate, channels: audio.channels, asc: &audio.asc },
        );
        write_box(b, b"mvex", |b| {
            for id in [VIDEO_TRACK_ID, AUDIO_TRACK_ID] {
                write_full_box(b, b"trex", 0, 0, |b| {
                    put_u32(b, id);
                    put_u32(b, 1); // default_sample_description_index: the one stsd entry
                    put_u32(b, 0); // default duration, size and flags: every trun gives its own
                    put_u32(b, 0);
                    put_u32(b, 0);
                });
            }
        });
    });
    Ok(out)
}

fn config(field: &'static str, reason: String) -> HlsError {
    HlsError::InvalidConfig { field, reason }
}

enum Kind<'a> {
    Video { width: u16, height: u16, avcc: &'a [u8] },
    Audio { sample_rate: u16, channels: u16, asc: &'a [u8] },
}

fn mvhd(b: &mut Vec<u8>) {
    write_full_box(b, b"mvhd", 0, 0, |b| {
        put_u32(b, 0); // creation time
        put_u32(b, 0); // modification time
        put_u32(b, MOVIE_TIMESCALE);
        put_u32(b, 0); // duration: unknown, fragmented
        put_u32(b, 0x0001_0000); // rate 1.0
        put_u16(b, 0x0100); // volume 1.0
        put_zeros(b, 2 + 8);
        put_unity_matrix(b);
        put_zeros(b, 6 * 4); // pre_defined
        put_u32(b, AUDIO_TRACK_ID + 1); // next_track_ID
    });
}

fn trak(b: &mut Vec<u8>, id: u32, timescale: u32, kind: Kind<'_>) {
    write_box(b, b"trak", |b| {
        write_full_box(b, b"tkhd", 0, TRACK_ENABLED_IN_MOVIE, |b| {
            put_u32(b, 0); // creation time
            put_u32(b, 0); // modification time
            put_u32(b, id);
            put_u32(b, 0); // reserved
            put_u32(b, 0); // duration
            put_zeros(b, 8);
            put_u16(b, 0); // layer
            put_u16(b, 0); // alternate_group
            put_u16(b, if matches!(kind, Kind::Audio { .. }) { 0x0100 } else { 0 }); // volume
            put_u16(b, 0);
            put_unity_matrix(b);
            let (w, h) = match kind {
                Kind::Video { width, height, .. } => (u32::from(width) << 16, u32::from(height) << 16),
                Kind::Audio { .. } => (0, 0),
            };
            put_u32(b, w); // 16.16 fixed point
            put_u32(b, h);
        });
        write_box(b, b"mdia", |b| {
            write_full_box(b, b"mdhd", 0, 0, |b| {
                put_u32(b, 0);
                put_u32(b, 0);
                put_u32(b, timescale);
                put_u32(b, 0);
                put_u16(b, LANGUAGE_UND);
                put_u16(b, 0);
            });
            let (handler, name): (&[u8; 4], &[u8]) = match kind {
                Kind::Video { .. } => (b"vide", b"VideoHandler\0"),
                Kind::Audio { .. } => (b"soun", b"SoundHandler\0"),
            };
            write_full_box(b, b"hdlr", 0, 0, |b| {
                put_u32(b, 0);
                b.extend_from_slice(handler);
                put_zeros(b, 12);
                b.extend_from_slice(name);
            });
            write_box(b, b"minf", |b| {
                match kind {
                    Kind::Video { .. } => write_full_box(b, b"vmhd", 0, 1, |b| put_zeros(b, 8)),
                    Kind::Audio { .. } => write_full_box(b, b"smhd", 0, 0, |b| put_zeros(b, 4)),
                }
                write_box(b, b"dinf", |b| {
                    write_full_box(b, b"dref", 0, 0, |b| {
                        put_u32(b, 1);
                        // Flag 1: the media is in this file (here: in the fragments).
                        write_full_box(b, b"url ", 0, 1, |_| {});
                    });
                });
                stbl(b, &kind);
            });
        });
    });
}

/// The sample table: only the sample description; the sample tables are empty, the samples
/// are all in fragments.
fn stbl(b: &mut Vec<u8>, kind: &Kind<'_>) {
    write_box(b, b"stbl", |b| {
        write_full_box(b, b"stsd", 0, 0, |b| {
            put_u32(b, 1);
            match *kind {
                Kind::Video { width, height, avcc } => avc1(b, width, height, avcc),
                Kind::Audio { sample_rate, channels, asc } => mp4a(b, sample_rate, channels, asc),
            }
        });
        write_full_box(b, b"stts", 0, 0, |b| put_u32(b, 0));
        write_full_box(b, b"stsc", 0, 0, |b| put_u32(b, 0));
        write_full_box(b, b"stsz", 0, 0, |b| put_zeros(b, 8)); // sample_size, sample_count
        write_full_box(b, b"stco", 0, 0, |b| put_u32(b, 0));
    });
}

fn avc1(b: &mut Vec<u8>, width: u16, height: u16, avcc: &[u8]) {
    write_box(b, b"avc1", |b| {
        put_zeros(b, 6);
        put_u16(b, 1); // data_reference_index
        put_zeros(b, 2 + 2 + 12); // pre_defined, reserved, pre_defined
        put_u16(b, width);
        put_u16(b, height);
        put_u32(b, 0x0048_0000); // 72 dpi
        put_u32(b, 0x0048_0000);
        put_u32(b, 0);
        put_u16(b, 1); // frame_count
        put_zeros(b, 32); // compressorname: empty Pascal string
        put_u16(b, 0x0018); // depth: colour, no alpha
        put_u16(b, 0xffff); // pre_defined = -1
        write_box(b, b"avcC", |b| b.extend_from_slice(avcc));
    });
}

fn mp4a(b: &mut Vec<u8>, sample_rate: u16, channels: u16, asc: &[u8]) {
    write_box(b, b"mp4a", |b| {
        put_zeros(b, 6);
        put_u16(b, 1); // data_reference_index
        put_zeros(b, 8);
        put_u16(b, channels);
        put_u16(b, 16); // samplesize
        put_zeros(b, 4);
        put_u32(b, u32::from(sample_rate) << 16); // 16.16
        esds(b, asc);
    });
}

/// The MPEG-4 elementary stream descriptor (ISO/IEC 14496-1): an ES_Descriptor holding the
/// decoder configuration (MPEG-4 audio, with the AudioSpecificConfig) and the SL config MP4
/// files always have.
fn esds(b: &mut Vec<u8>, asc: &[u8]) {
    write_full_box(b, b"esds", 0, 0, |b| {
        descriptor(b, 0x03, |d| {
            put_u16(d, AUDIO_TRACK_ID as u16); // ES_ID
            put_u8(d, 0); // no stream dependence, URL or OCR stream
            descriptor(d, 0x04, |d| {
                put_u8(d, 0x40); // objectTypeIndication: MPEG-4 audio
                put_u8(d, (0x05 << 2) | 1); // streamType audio, upStream 0, reserved 1
                put_u24(d, 0); // bufferSizeDB: unknown
                put_u32(d, 0); // maxBitrate: unknown
                put_u32(d, 0); // avgBitrate: variable
                descriptor(d, 0x05, |d| d.extend_from_slice(asc));
            });
            descriptor(d, 0x06, |d| put_u8(d, 0x02)); // SLConfigDescriptor: predefined MP4
        });
    });
}

/// One descriptor: tag, its size in the expandable 7-bits-a-byte form, then the body.
fn descriptor(out: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
    let mut content = Vec::new();
    body(&mut content);
    put_u8(out, tag);
    let len = content.len();
    let mut groups = vec![(len & 0x7f) as u8];
    let mut rest = len >> 7;
    while rest > 0 {
        groups.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.extend(groups.iter().rev());
    out.extend_from_slice(&content);
}
