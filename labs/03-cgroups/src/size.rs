//! Sizes as `docker run --memory` takes them (`32m`, `1.5g`) and as people
//! read them (`32MiB`).

use std::fmt;

use anyhow::{bail, Context};

// ANCHOR: parse_size
/// Parse a size the way `docker run --memory` does: a number and an optional
/// binary unit, `b`, `k`, `m`, `g`, `t` (`512k`, `32m`, `1.5g`, `32MiB`,
/// `1048576`).
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let t = s.trim();
    let digits_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    let number: f64 = number
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite())
        .with_context(|| format!("invalid size {s:?}: expected a number with an optional unit b, k, m, g or t (like 32m or 1g)"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let shift = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => {
            bail!("invalid size {s:?}: unknown unit {unit:?} (use b, k, m, g or t, like 32m or 1g)")
        }
    };
    // "32ib" or "32i" are not units.
    if shift == 0 && !unit.is_empty() && unit != "b" {
        bail!("invalid size {s:?}: unknown unit {unit:?} (use b, k, m, g or t, like 32m or 1g)");
    }
    let bytes = number * (1u64 << shift) as f64;
    if bytes >= u64::MAX as f64 {
        bail!("invalid size {s:?}: too large");
    }
    Ok(bytes as u64)
}
// ANCHOR_END: parse_size

/// A byte count for people: `32MiB`, `1.5GiB`, `512KiB`, `100B`.
#[derive(Debug, Clone, Copy)]
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut v = self.0 as f64;
        let mut i = 0;
        while v >= 1024.0 && i < UNITS.len() - 1 {
            v /= 1024.0;
            i += 1;
        }
        if v.fract() == 0.0 {
            write!(f, "{v}{}", UNITS[i])
        } else {
            write!(f, "{v:.1}{}", UNITS[i])
        }
    }
}
