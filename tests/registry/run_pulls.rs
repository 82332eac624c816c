//! `run` and `create` pull what is missing, as docker's client does:
//! `--pull missing` (the default) says `Unable to find image 'NAME'
//! locally` and pulls; `--pull always` asks the registry again; `--pull
//! never` fails. Only from the loopback registry of the test: a name
//! without a registry host (Docker Hub) is refused without a request.

use dockyard_e2e::dockyard::text;

use crate::common::{creds_dir, Dy, Registry};

#[test]
fn run_pulls_a_missing_image_by_policy() {
    let reg = Registry::start();
    let creds = creds_dir();
    let src = Dy::with_base(creds.path());
    let name = format!("{}/busybox:1", reg.host());
    src.ok(&["tag", "busybox", &name]);
    src.ok(&["push", &name]);

    let dy = Dy::new(creds.path());
    // never: the image is not here, and nothing is asked of the registry.
    let manifests = || reg.requests("GET", "/manifests/1");
    let err = dy.fails(&["run", "--rm", "--pull", "never", &name, "true"]);
    assert!(err.contains(&format!("No such image: {name}")), "{err}");
    assert_eq!(manifests(), 0, "--pull never asked the registry");
    // A bad policy is refused with docker's words.
    let err = dy.fails(&["run", "--rm", "--pull", "sometimes", &name, "true"]);
    assert!(
        err.contains(
            "invalid pull option: 'sometimes': must be one of \"always\", \"missing\" or \"never\""
        ),
        "{err}"
    );

    // missing (the default): the pull's progress on stderr, then the
    // container's output, and the image is in the store afterwards.
    let out = dy.run(&["run", "--rm", &name, "cat", "/etc/hostname"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.starts_with(&format!(
            "Unable to find image '{name}' locally\n1: Pulling from busybox\n"
        )),
        "{err}"
    );
    assert!(err.contains(": Pull complete\n"), "{err}");
    assert!(
        err.contains(&format!("Status: Downloaded newer image for {name}\n")),
        "{err}"
    );
    assert_eq!(
        text(&out.stdout).trim().len(),
        12,
        "the container's hostname"
    );
    assert_eq!(manifests(), 1);
    let id = dy.ok(&["images", "-q", &name]);
    assert!(!id.trim().is_empty(), "the pulled image is listed");

    // Present: missing does not ask again; always does.
    dy.ok(&["run", "--rm", &name, "true"]);
    assert_eq!(manifests(), 1, "--pull missing asked for a present image");
    let out = dy.run(&["create", "--pull", "always", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("Status: Image is up to date for {name}")),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(manifests(), 2, "--pull always did not ask the registry");

    // A name without a registry host would go to Docker Hub: refused, and
    // said so, before any request.
    let err = dy.fails(&["run", "--rm", "nosuchimage-dy", "true"]);
    assert!(
        err.starts_with("Unable to find image 'nosuchimage-dy:latest' locally\n"),
        "{err}"
    );
    assert!(err.contains("does not pull from Docker Hub"), "{err}");
}

#[test]
fn run_quiet_pulls_without_a_word() {
    let reg = Registry::start();
    let creds = creds_dir();
    let src = Dy::with_base(creds.path());
    let name = format!("{}/busybox:q", reg.host());
    src.ok(&["tag", "busybox", &name]);
    src.ok(&["push", &name]);

    // -q: the pull happens (the image is in the store afterwards), and
    // neither "Unable to find image" nor its progress is on stderr.
    let dy = Dy::new(creds.path());
    let out = dy.run(&["run", "-q", "--rm", &name, "echo", "ran"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    assert_eq!(text(&out.stdout), "ran\n");
    assert!(!dy.ok(&["images", "-q", &name]).trim().is_empty());
    assert_eq!(reg.requests("GET", "/manifests/q"), 1);
    // create --quiet --pull always asks again, as quietly; its ID is all
    // it prints.
    let out = dy.run(&["create", "--quiet", "--pull", "always", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    assert_eq!(text(&out.stdout).trim().len(), 64);
    assert_eq!(reg.requests("GET", "/manifests/q"), 2);
}
