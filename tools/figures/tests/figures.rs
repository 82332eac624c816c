//! The figures are what their sources draw, and every chapter shows at least one.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn committed_svgs_are_what_their_sources_draw() {
    let names = dockyard_figures::build(&root(), true).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(!names.is_empty(), "no figure sources in book/figures");
    // No SVG without a source: a figure edited by hand would drift from its text.
    for entry in std::fs::read_dir(root().join(dockyard_figures::OUTPUT)).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        assert!(
            names.contains(&name),
            "{} has no source in book/figures",
            path.display()
        );
    }
}

#[test]
fn every_chapter_shows_a_figure_that_exists() {
    let src = root().join("book/src");
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).unwrap();
    let mut chapters = 0;
    for line in summary
        .lines()
        .filter(|l| l.trim_start().starts_with("- ["))
    {
        let file = line.rsplit_once("](").unwrap().1.trim_end_matches(')');
        let text = std::fs::read_to_string(src.join(file)).unwrap();
        let figures: Vec<&str> = text
            .match_indices("](figures/")
            .map(|(i, _)| {
                let rest = &text[i + 2..];
                &rest[..rest.find(')').unwrap()]
            })
            .collect();
        assert!(!figures.is_empty(), "{file} shows no figure");
        for f in figures {
            assert!(
                src.join(f).is_file(),
                "{file} shows {f}, which does not exist"
            );
        }
        chapters += 1;
    }
    assert!(chapters >= 9, "only {chapters} chapters in SUMMARY.md");
}
