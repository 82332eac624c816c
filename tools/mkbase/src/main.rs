//! `dockyard-mkbase`: the command-line front end of [`dockyard_mkbase`].
//!
//! ```text
//! dockyard-mkbase --busybox /bin/busybox \
//!     --probe target/x86_64-unknown-linux-gnu/release/probe --out images/busybox
//! ```
//!
//! Everything happens in the library; this file parses flags and prints the
//! two digests that identify the result.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Build Dockyard's busybox base image (OCI layout + unpacked rootfs).
#[derive(Parser, Debug)]
#[command(name = "dockyard-mkbase", version)]
struct Cli {
    /// A statically linked busybox (Debian package busybox-static).
    #[arg(long, default_value = "/bin/busybox")]
    busybox: PathBuf,
    /// The statically linked probe binary (see probe/src/main.rs for the build command).
    #[arg(long)]
    probe: PathBuf,
    /// Output directory; gets oci/ and rootfs/ and is replaced as a whole.
    #[arg(long, default_value = "images/busybox")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = dockyard_mkbase::Options {
        busybox: cli.busybox,
        probe: cli.probe,
        out: cli.out,
    };
    match dockyard_mkbase::build(&opts) {
        Ok(built) => {
            println!(
                "built {} in {} ({} busybox applets)",
                dockyard_mkbase::IMAGE_NAME,
                opts.out.display(),
                built.applets
            );
            println!("image digest (manifest): {}", built.manifest_digest);
            println!("config digest (image ID): {}", built.config_digest);
            println!("layer digest (gzip):      {}", built.layer_digest);
            println!("layer diff_id (tar):      {}", built.diff_id);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dockyard-mkbase: {e:#}");
            ExitCode::FAILURE
        }
    }
}
