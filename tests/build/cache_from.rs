//! `--cache-from IMAGE`: an image this store did not build (here: saved from another data
//! root and loaded) stands for the steps its history records, as moby's `ImageCache`
//! lets it: each step whose `created_by` is the source's next history entry, on the same
//! history and layers so far, takes the source's entry and layer without running.

use super::Dy;
use dockyard_e2e::dockyard::text;

const DOCKERFILE: &str = "FROM busybox\nENV A=1\n\
                          RUN head -c 8 /dev/urandom | od -An -tx1 > /stamp\n\
                          COPY data /data\nWORKDIR /w\n";

#[test]
fn build_cache_from_reuses_a_loaded_images_history() {
    let built = Dy::new();
    built.file("data", "data\n");
    built.file(
        "Dockerfile",
        &format!("{DOCKERFILE}CMD [\"cat\", \"/stamp\"]\n"),
    );
    built.build_ok("src", &[]);
    let stamp = built.ok(&["run", "--rm", "src"]);
    let tar = built.root.path().join("src.tar");
    built.ok(&["save", "-o", tar.to_str().unwrap(), "src"]);

    let dy = Dy::new();
    dy.ok(&["load", "-i", tar.to_str().unwrap()]);
    dy.file("data", "data\n");
    dy.file(
        "Dockerfile",
        &format!("{DOCKERFILE}CMD [\"cat\", \"/stamp\"]\n"),
    );
    // Every step from the source: nothing runs, and the image is the source itself.
    let out = dy.build_ok("again", &["--cache-from", "src"]);
    assert_eq!(out.matches(" ---> Using cache\n").count(), 5, "{out}");
    assert!(!out.contains("Running in"), "{out}");
    assert_eq!(dy.config("again:latest"), dy.config("src:latest"));
    assert_eq!(dy.ok(&["run", "--rm", "again"]), stamp);

    // A changed last step: the steps before it still come from the source (the RUN's
    // layer is the source's: the same stamp), the changed one is built.
    dy.file(
        "Dockerfile",
        &format!("{DOCKERFILE}CMD [\"cat\", \"/data\"]\n"),
    );
    let out = dy.build_ok("changed", &["--cache-from", "src"]);
    assert_eq!(out.matches(" ---> Using cache\n").count(), 4, "{out}");
    assert_eq!(dy.ok(&["run", "--rm", "changed", "cat", "/stamp"]), stamp);
    let history = |name: &str| {
        dy.config(&format!("{name}:latest"))["history"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(history("changed"), history("src"));

    // Without --cache-from, the loaded image stands for nothing: the RUN runs. Naming only
    // an image the store does not have (moby skips it with no word to the client), it runs
    // again: with --cache-from only the sources' chains are trusted, the local cache too.
    for extra in [&[][..], &["--cache-from", "nosuch:tag"][..]] {
        let out = dy.build("fresh", extra);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.contains("Running in"), "{stdout}");
        assert_ne!(dy.ok(&["run", "--rm", "fresh", "cat", "/stamp"]), stamp);
    }
}
