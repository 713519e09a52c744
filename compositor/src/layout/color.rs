//! Canvas colours.

use std::fmt;
use std::str::FromStr;

/// An 8-bit RGBA colour (`a` = 255 is opaque).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rgba {
    pub r: u8,
    pub g: u8,
    pub b: u8,
    pub a: u8,
}

impl Rgba {
    pub const BLACK: Rgba = Rgba { r: 0, g: 0, b: 0, a: 255 };

    /// `0xAARRGGBB`, the packing GStreamer uses (videotestsrc `foreground-color`,
    /// compositor `background` colour properties).
    pub fn argb_u32(&self) -> u32 {
        u32::from_be_bytes([self.a, self.r, self.g, self.b])
    }
}

/// Accepts `#rrggbb` and `#rrggbbaa` (hex digits in either case).
impl FromStr for Rgba {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid colour {s:?}: expected \"#rrggbb\" or \"#rrggbbaa\"");
        let hex = s.strip_prefix('#').ok_or_else(bad)?;
        if !(hex.len() == 6 || hex.len() == 8) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        // All bytes are ASCII hex digits, so slicing by byte index is safe.
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad());
        Ok(Rgba { r: byte(0)?, g: byte(2)?, b: byte(4)?, a: if hex.len() == 8 { byte(6)? } else { 255 } })
    }
}

/// `#rrggbb` when opaque, else `#rrggbbaa` (lowercase); parses back with `FromStr`.
impl fmt::Display for Rgba {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.r, self.g, self.b)?;
        if self.a != 255 {
            write!(f, "{:02x}", self.a)?;
        }
        Ok(())
    }
}

impl serde::Serialize for Rgba {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
