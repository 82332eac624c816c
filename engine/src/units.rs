//! Docker's units (its `go-units` package): the friendly durations of
//! `docker ps` ("Up 3 seconds", "Exited (0) 2 minutes ago") and the decimal
//! sizes of `docker images` ("1.24MB"), the binary sizes a flag such as
//! `--shm-size 128m` takes, and how big a directory is on disk.
//!
//! They are in the core, not only in the command line, because the Engine
//! API returns them too: a container's `Status` in `GET /containers/json` is
//! the same "Up 3 seconds" text that `docker ps` prints.
//!
//! ```text
//! $ du -sb /var/lib/dockyard/volumes/data/_data     # dir_size, in bytes
//! ```

use std::path::Path;
use std::time::Duration;

/// docker's `units.HumanDuration`: the coarse, friendly durations of
/// `docker ps` ("Up About a minute", "Exited (0) 3 hours ago").
pub fn human_duration(d: Duration) -> String {
    // The same steps as go-units: minutes truncate, hours round.
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    let hours = ((d.as_secs_f64() / 3600.0).round()) as u64;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", seconds / 3600 / 24 / 365)
    }
}

/// docker's `units.HumanSizeWithPrecision(size, 3)`: decimal (SI) units and
/// three significant digits, as in the SIZE column of `docker images`.
pub fn human_size(bytes: u64) -> String {
    human_size_with_precision(bytes, 3)
}

/// docker's `units.HumanSizeWithPrecision`: decimal (SI) units and
/// `precision` significant digits (`units.HumanSize`, which `{{.VirtualSize}}`
/// of `images` shows, is 4: `3.608MB`).
pub fn human_size_with_precision(bytes: u64, precision: i32) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", format_g(size, precision), UNITS[unit])
}

/// Go's `%.Ng` (N = `precision`) for the values human_size produces
/// (0 <= v < 1000).
fn format_g(v: f64, precision: i32) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = v.abs().log10().floor() as i32 + 1; // digits before the point
    let decimals = (precision - digits).max(0) as usize;
    let s = format!("{v:.decimals$}");
    // %g drops trailing zeros and a trailing point.
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// docker's `units.RAMInBytes`, which its CLI's size flags (`--shm-size`)
/// and dockerd's `default-shm-size` parse with: a number (a fraction is
/// fine), then an optional binary unit, `b`, `k`, `m`, `g`, `t` or `p`,
/// with an optional `b` or `ib` after it and in any case (`128m`, `1.5GiB`);
/// a bare number is bytes. The error is go-units' own words (`invalid
/// size: '-1'`, `invalid suffix: 'x'`), or Go's `strconv.ParseFloat`'s.
pub fn ram_in_bytes(text: &str) -> Result<i64, String> {
    // The number ends at the last digit, point or space (a space between
    // number and unit is allowed, and not part of either).
    let Some(sep) = text.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(format!("invalid size: '{text}'"));
    };
    let (num, suffix) = match text.as_bytes()[sep] {
        b' ' => (&text[..sep], &text[sep + 1..]),
        _ => (&text[..=sep], &text[sep + 1..]),
    };
    let size: f64 = match num.parse::<f64>() {
        Ok(n) if n.is_finite() => n,
        Ok(_)
            if num
                .bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            return Err(format!(
                "strconv.ParseFloat: parsing {num:?}: value out of range"
            ))
        }
        _ => {
            return Err(format!(
                "strconv.ParseFloat: parsing {num:?}: invalid syntax"
            ))
        }
    };
    // "Backward compatibility: reject negative sizes."
    if size < 0.0 {
        return Err(format!("invalid size: '{text}'"));
    }
    if suffix.is_empty() {
        return Ok(size as i64);
    }
    if suffix.len() > 3 {
        return Err(format!("invalid suffix: '{suffix}'"));
    }
    let sfx = suffix.to_lowercase();
    let bad_suffix = || Err(format!("invalid suffix: '{sfx}'"));
    if sfx == "b" {
        return Ok(size as i64);
    }
    let shift = match sfx.as_bytes()[0] {
        b'k' => 10,
        b'm' => 20,
        b'g' => 30,
        b't' => 40,
        b'p' => 50,
        _ => return bad_suffix(),
    };
    if !matches!(&sfx[1..], "" | "b" | "ib") {
        return bad_suffix();
    }
    Ok((size * (1u64 << shift) as f64) as i64)
}

/// The bytes of the regular files under `p` (as `du -sb` counts them, less
/// the directories themselves), never following a symlink: what `images`,
/// `history` and `system df` show as sizes. Unreadable entries count 0.
pub fn dir_size(p: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
            .unwrap_or(0)
    } else if meta.is_file() {
        meta.len()
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_dockers() {
        let s = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(3)), "3 seconds");
        assert_eq!(human_duration(s(59)), "59 seconds");
        assert_eq!(human_duration(s(60)), "About a minute");
        assert_eq!(human_duration(s(89)), "About a minute");
        assert_eq!(human_duration(s(90)), "About a minute");
        assert_eq!(human_duration(s(120)), "2 minutes");
        assert_eq!(human_duration(s(45 * 60)), "45 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5 * 3600)), "5 hours");
        assert_eq!(human_duration(s(3 * 24 * 3600)), "3 days");
        assert_eq!(human_duration(s(20 * 24 * 3600)), "2 weeks");
        assert_eq!(human_duration(s(90 * 24 * 3600)), "3 months");
        assert_eq!(human_duration(s(3 * 365 * 24 * 3600)), "3 years");
    }

    #[test]
    fn sizes_read_like_dockers() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(1_240_000), "1.24MB");
        assert_eq!(human_size(4_860_000), "4.86MB");
        assert_eq!(human_size(12_345_678), "12.3MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(1_500_000_000), "1.5GB");
    }

    #[test]
    fn ram_sizes_parse_as_go_units_parses_them() {
        assert_eq!(ram_in_bytes("128m"), Ok(128 << 20));
        assert_eq!(ram_in_bytes("134217728"), Ok(134_217_728));
        assert_eq!(ram_in_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(ram_in_bytes("64 MB"), Ok(64 << 20));
        assert_eq!(ram_in_bytes("10b"), Ok(10));
        assert_eq!(ram_in_bytes("2K"), Ok(2048));
        assert_eq!(ram_in_bytes("0"), Ok(0));
        // docker run --shm-size X's words, as its CLI (28.2.2) prints them.
        assert_eq!(ram_in_bytes("abc"), Err("invalid size: 'abc'".into()));
        assert_eq!(ram_in_bytes("-1"), Err("invalid size: '-1'".into()));
        assert_eq!(ram_in_bytes("12x"), Err("invalid suffix: 'x'".into()));
        assert_eq!(ram_in_bytes("1mbb"), Err("invalid suffix: 'mbb'".into()));
        assert_eq!(ram_in_bytes("1KiBB"), Err("invalid suffix: 'KiBB'".into()));
        assert_eq!(ram_in_bytes("1Mx"), Err("invalid suffix: 'mx'".into()));
        assert_eq!(
            ram_in_bytes("1.2.3"),
            Err("strconv.ParseFloat: parsing \"1.2.3\": invalid syntax".into())
        );
        assert_eq!(ram_in_bytes(""), Err("invalid size: ''".into()));
        assert_eq!(
            ram_in_bytes("1e+999k"),
            Err("strconv.ParseFloat: parsing \"1e+999\": value out of range".into())
        );
    }

    #[test]
    fn dir_size_counts_files_and_not_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 100]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), [0u8; 20]).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        assert_eq!(dir_size(dir.path()), 120);
        assert_eq!(dir_size(&dir.path().join("missing")), 0);
    }
}
