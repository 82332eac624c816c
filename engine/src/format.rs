//! Output that matches docker's, byte for byte where a script might parse it:
//! short IDs, the quoted and truncated COMMAND column, and tables padded the
//! way docker's tabwriter pads them. Human durations ("Up 3 seconds") and
//! sizes ("1.24MB") are the core's (`dockyard::units`): the Engine API
//! returns them too.

pub use dockyard::units::{human_duration, human_size};

/// Docker's short ID: the first 12 hex digits of the full 64.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
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
/// three spaces, and at least 10 (the padding stays, even where the last
/// cell is empty).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    table_min(header, rows, 10)
}

/// `table` with another minimum column width: `docker top` lays its
/// table out with `tabwriter.NewWriter(out, 20, 1, 3, ' ', 0)`.
pub fn table_min(header: &[&str], rows: &[Vec<String>], min: usize) -> String {
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
                let w = (widths[i] + 3).max(min);
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
            }
        }
        // Not trimmed: a cell before an empty last one keeps its padding,
        // as Go's tabwriter leaves it (`history` of a step without comment).
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Go's `time.Time.String()` of an RFC 3339 time (`2026-12-07
/// 07:31:39.083494775 +0000 UTC`); the zero time for none, as docker/cli
/// prints a network's `CreatedAt` that the daemon did not record.
pub fn go_time(rfc3339: &str) -> String {
    match rfc3339.strip_suffix('Z') {
        Some(t) if !t.is_empty() => {
            // Go prints the fraction without its trailing zeros.
            let t = match t.split_once('.') {
                Some((whole, frac)) if frac.trim_end_matches('0').is_empty() => whole.to_string(),
                Some((whole, frac)) => format!("{whole}.{}", frac.trim_end_matches('0')),
                None => t.to_string(),
            };
            format!("{} +0000 UTC", t.replacen('T', " ", 1))
        }
        _ if rfc3339.is_empty() => "0001-01-01 00:00:00 +0000 UTC".into(),
        _ => rfc3339.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn sizes_and_times_read_like_gos() {
        assert_eq!(
            dockyard::units::human_size_with_precision(3_608_123, 4),
            "3.608MB"
        );
        assert_eq!(
            dockyard::units::human_size_with_precision(4_260_000, 4),
            "4.26MB"
        );
        assert_eq!(dockyard::units::human_size_with_precision(0, 4), "0B");
        assert_eq!(
            go_time("2026-12-07T07:31:39.083494775Z"),
            "2026-12-07 07:31:39.083494775 +0000 UTC"
        );
        assert_eq!(go_time(""), "0001-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            go_time("2026-12-07T08:04:23.769325890Z"),
            "2026-12-07 08:04:23.76932589 +0000 UTC"
        );
        assert_eq!(
            go_time("2026-12-07T08:04:23.000Z"),
            "2026-12-07 08:04:23 +0000 UTC"
        );
    }

    #[test]
    fn short_ids_have_12_digits() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(short_id(id), "0123456789ab");
    }
}
