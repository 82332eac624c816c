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
        // Not trimmed: a cell before an empty last one keeps its padding,
        // as Go's tabwriter leaves it (`history` of a step without comment).
        out.push_str(&line);
        out.push('\n');
    }
    out
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
    fn short_ids_have_12_digits() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(short_id(id), "0123456789ab");
    }
}
