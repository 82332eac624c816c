//! `dockyard-figures [--check]`: book/figures/*.txt to book/src/figures/*.svg (see the library).

use std::path::Path;

fn main() -> anyhow::Result<()> {
    let check = std::env::args().any(|a| a == "--check");
    // The workspace root: this crate is tools/figures.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let names = dockyard_figures::build(&root, check)?;
    println!(
        "{} {} figure(s): {}",
        if check { "checked" } else { "drew" },
        names.len(),
        names.join(", ")
    );
    Ok(())
}
