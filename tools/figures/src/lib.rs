//! The book's figures, drawn from text kept in the repository.
//!
//! Each figure is ASCII art in `book/figures/NAME.txt`, reviewed in a diff like code, and
//! rendered to `book/src/figures/NAME.svg` by [svgbob](https://github.com/ivanceras/svgbob),
//! which turns lines, boxes and arrows drawn with `-`, `|`, `+`, `.`, `'` and `>` into SVG
//! paths and keeps the words as text. The chapters show the SVG with an ordinary image link,
//! `![...](figures/NAME.svg)`, so mdBook needs no preprocessor.
//!
//! ```text
//! cargo run -p dockyard-figures            # write every SVG from its source
//! cargo run -p dockyard-figures -- --check # fail if a committed SVG is not its source's
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Where the sources are, relative to the workspace root.
pub const SOURCES: &str = "book/figures";
/// Where the SVGs go: inside `book/src`, so mdBook copies them into the HTML book.
pub const OUTPUT: &str = "book/src/figures";

/// The SVG of one figure's ASCII art. A title line, `# ...` at the top of the source, is for the
/// reader of the text and is not drawn.
pub fn render(source: &str) -> String {
    let art: Vec<String> = source
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .map(escape_text)
        .collect();
    // svgbob sizes the picture from its drawing alone, cutting off quoted text that reaches
    // further: the size is given, from the text's cells (8 by 16 units each at the default
    // scale), with a column to spare on each side.
    // 13px: a monospace font's advance at 14px (8.4 units for DejaVu Sans Mono) is wider than
    // svgbob's 8-unit cell, so a long run of text would drift over the lines to its right.
    let settings = svgbob::Settings {
        font_size: 13,
        ..svgbob::Settings::default()
    };
    let cols = art.iter().map(|l| l.chars().count()).max().unwrap_or(0) + 2;
    let (w, h) = (settings.scale, settings.scale * 2.0);
    let mut svg = svgbob::to_svg_with_override_size(
        &art.join("\n"),
        &settings,
        cols as f32 * w,
        (art.len() + 1) as f32 * h,
    );
    svg.push('\n');
    svg
}

/// Whether a space-separated token is words (kept as text) rather than drawing: it has a letter
/// or a digit, and is not a lone `v`, the arrowhead that points down; or it is `/` (the root
/// directory, never a diagonal line in these figures) or an ellipsis.
fn is_text(token: &str) -> bool {
    matches!(token, "/" | "..." | "..")
        || (token != "v" && token.chars().any(|c| c.is_alphanumeric()))
}

/// Keep the words of a line as words. svgbob draws every `/`, `(`, `_`, `-` and `.` it can
/// read as a line, also inside `/sys/fs/cgroup` or `umount2(MNT_DETACH)`; text between double
/// quotes it keeps as text, the quotes taking a cell each but drawing nothing. So each phrase
/// (words separated by one or two spaces, beginning and ending with a word) is put between quotes
/// written over the blanks around it: the line is shifted one column right so that a phrase at
/// its start has a blank before it, and nothing else moves. A `"` in the source would end a
/// phrase early: the sources have none.
pub fn escape_text(line: &str) -> String {
    let mut cells: Vec<char> = std::iter::once(' ').chain(line.chars()).collect();
    cells.push(' ');
    // Tokens: (start, end) cell ranges of the non-blank runs.
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < cells.len() {
        if cells[i] == ' ' {
            i += 1;
            continue;
        }
        let start = i;
        while i < cells.len() && cells[i] != ' ' {
            i += 1;
        }
        tokens.push((start, i));
    }
    let text = |t: &(usize, usize)| is_text(&cells[t.0..t.1].iter().collect::<String>());
    // A box's edge ends a phrase: `| text |` keeps both lines.
    let edge = |t: &(usize, usize)| matches!(cells[t.0], '|' | '+');
    let mut k = 0;
    let mut quotes = Vec::new();
    while k < tokens.len() {
        if !text(&tokens[k]) {
            k += 1;
            continue;
        }
        // Extend over one blank, or two between words (two phrases that close: svgbob reads
        // `""` as no text at all), never over a box's edge; end on the last word.
        let (first, mut last) = (k, k);
        let mut j = k;
        while j + 1 < tokens.len() && {
            let (gap, next) = (tokens[j + 1].0 - tokens[j].1, &tokens[j + 1]);
            (gap == 1 && !edge(next)) || (gap == 2 && text(next))
        } {
            j += 1;
            if text(&tokens[j]) {
                last = j;
            }
        }
        quotes.push((tokens[first].0 - 1, tokens[last].1));
        k = last + 1;
    }
    for (open, close) in quotes {
        cells[open] = '"';
        cells[close] = '"';
    }
    cells.into_iter().collect::<String>().trim_end().to_string()
}

/// Every figure source, sorted by name: `(name, path)`.
pub fn sources(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let dir = root.join(SOURCES);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "txt") {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .with_context(|| format!("{} has no UTF-8 name", path.display()))?
                .to_string();
            out.push((name, path));
        }
    }
    out.sort();
    Ok(out)
}

/// The SVG path of the figure `name`.
pub fn svg_path(root: &Path, name: &str) -> PathBuf {
    root.join(OUTPUT).join(format!("{name}.svg"))
}

/// Write every figure's SVG; with `check`, write nothing and fail on the first SVG that is
/// missing or not what its source draws.
pub fn build(root: &Path, check: bool) -> Result<Vec<String>> {
    let mut names = Vec::new();
    std::fs::create_dir_all(root.join(OUTPUT))
        .with_context(|| format!("making {}", root.join(OUTPUT).display()))?;
    for (name, path) in sources(root)? {
        let source = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let svg = render(&source);
        let out = svg_path(root, &name);
        if check {
            let committed = std::fs::read_to_string(&out).unwrap_or_default();
            if committed != svg {
                bail!(
                    "{} is not what {} draws: run `cargo run -p dockyard-figures` and commit it",
                    out.display(),
                    path.display()
                );
            }
        } else {
            std::fs::write(&out, svg).with_context(|| format!("writing {}", out.display()))?;
        }
        names.push(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::escape_text;

    #[test]
    fn words_are_quoted_over_their_blanks_and_drawing_is_left_alone() {
        assert_eq!(
            escape_text("+-- /sys/fs/cgroup (v1) |"),
            " +--\"/sys/fs/cgroup (v1)\"|"
        );
        assert_eq!(escape_text("  |   v   ---->"), "   |   v   ---->");
        assert_eq!(escape_text("a -> b"), "\"a -> b\"");
        assert_eq!(escape_text("a  b   c"), "\"a  b\" \"c\"");
        assert_eq!(escape_text("| a | b  |"), " |\"a\"|\"b\" |");
        assert_eq!(escape_text("x  --> y"), "\"x\" -->\"y\"");
    }
}
