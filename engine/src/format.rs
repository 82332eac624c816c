//! Output that matches docker's, byte for byte where a script might parse it:
//! human durations ("Up 3 seconds", "2 minutes ago"), human sizes ("1.24MB"),
//! short IDs, the quoted and truncated COMMAND column, and tables padded the
//! way docker's tabwriter pads them.

use std::time::Duration;

/// Docker's short ID: the first 12 hex digits of the full 64.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

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
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", format_g3(size), UNITS[unit])
}

/// Go's `%.3g` for the values human_size produces (0 <= v < 1000).
fn format_g3(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = v.abs().log10().floor() as i32 + 1; // digits before the point
    let decimals = (3 - digits).max(0) as usize;
    let s = format!("{v:.decimals$}");
    // %g drops trailing zeros and a trailing point.
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The COMMAND column of `docker ps`: the command line, cut to 20 characters
/// with an ellipsis unless `--no-trunc`, then quoted.
pub fn command_column(argv: &[String], truncate: bool) -> String {
    let mut cmd = argv.join(" ");
    if truncate && cmd.chars().count() > 20 {
        cmd = cmd.chars().take(19).collect::<String>() + "…";
    }
    format!("\"{cmd}\"")
}

/// A table laid out as docker's `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`
/// lays it out: every column but the last is as wide as its widest cell plus
/// three spaces, and at least 10.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut widths = vec![0usize; cols];
    let all = std::iter::once(header.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .chain(rows.iter().cloned());
    let all: Vec<Vec<String>> = all.collect();
    for row in &all {
        for (i, cell) in row.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &all {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(cols) {
            if i + 1 == cols {
                line.push_str(cell);
            } else {
                let w = (widths[i] + 3).max(10);
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
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
    fn command_is_quoted_and_truncated_to_20() {
        let argv = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(command_column(&argv("echo hello"), true), "\"echo hello\"");
        assert_eq!(
            command_column(&argv("sh -c while true; do sleep 1; done"), true),
            "\"sh -c while true; d…\""
        );
        assert_eq!(
            command_column(&argv("sh -c while true; do sleep 1; done"), false),
            "\"sh -c while true; do sleep 1; done\""
        );
    }

    #[test]
    fn tables_are_padded_like_dockers() {
        let t = table(
            &["CONTAINER ID", "IMAGE", "NAMES"],
            &[vec!["0123456789ab".into(), "busybox".into(), "web".into()]],
        );
        assert_eq!(
            t,
            "CONTAINER ID   IMAGE     NAMES\n0123456789ab   busybox   web\n"
        );
    }

    #[test]
    fn short_ids_have_12_digits() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(short_id(id), "0123456789ab");
    }
}
