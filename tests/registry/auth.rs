//! Who may talk to which registry: `login` with Basic auth (an htpasswd
//! file), the Bearer token flow (`WWW-Authenticate: Bearer realm=...`), and
//! daemon.json's registry mirrors and insecure (plain HTTP) registries.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use dockyard_e2e::dockyard::text;
use serde_json::Value;

use crate::common::{creds_dir, Dy, Registry, TokenServer, TOKEN_SERVICE};

#[test]
fn basic_auth_login_push_pull_logout() {
    let reg = Registry::start_with(Some(("alice", "s3cret")));
    let creds = creds_dir();
    let src = Dy::with_base(creds.path());
    let host = reg.host();
    let name = format!("{host}/private:1");
    src.ok(&["tag", "busybox", &name]);

    let err = src.fails(&["push", &name]);
    assert!(
        err.contains(&format!("registry {host} requires authentication"))
            && err.contains("401")
            && err.contains(&format!("dockyard login {host}")),
        "{err}"
    );
    let config = creds.path().join("config.json");

    let err = src.fails(&["login", "-u", "alice", "-p", "wrong", &host]);
    assert!(err.contains("incorrect username or password"), "{err}");
    assert!(!config.exists(), "a failed login stores nothing");

    let mut login = src.command(&["login", "-u", "alice", "--password-stdin", &host]);
    let mut child = login
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).ends_with("Login Succeeded\n"));
    assert_eq!(
        fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let doc: Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    assert_eq!(
        doc["auths"][host.as_str()]["auth"],
        "YWxpY2U6czNjcmV0",
        "base64(alice:s3cret)"
    );

    let out = src.ok(&["push", &name]);
    assert!(out.contains(": Pushed\n"), "{out}");
    let dst = Dy::new(creds.path());
    dst.ok(&["pull", &name]);

    assert_eq!(
        src.ok(&["logout", &host]),
        format!("Removing login credentials for {host}\n")
    );
    let doc: Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    assert!(doc["auths"].get(host.as_str()).is_none());
    let fresh = Dy::new(creds.path());
    let err = fresh.fails(&["pull", &name]);
    assert!(err.contains("requires authentication"), "{err}");
    assert_eq!(
        src.ok(&["logout", &host]),
        format!("Not logged in to {host}\n")
    );
}

#[test]
fn registry_mirrors_and_insecure_registries_come_from_daemon_json() {
    // A mirror of Docker Hub on loopback: `busybox` is pulled from it, and
    // never from Docker Hub (which this machine cannot reach).
    let mirror = Registry::start();
    let creds = creds_dir();
    let src = Dy::with_base(creds.path());
    let on_mirror = format!("{}/library/busybox:latest", mirror.host());
    src.ok(&["tag", "busybox", &on_mirror]);
    src.ok(&["push", &on_mirror]);
    let cfg = tempfile::NamedTempFile::new().unwrap();
    fs::write(
        cfg.path(),
        format!(
            r#"{{"registry-mirrors": ["http://{}"], "insecure-registries": ["10.0.0.0/8"]}}"#,
            mirror.host()
        ),
    )
    .unwrap();
    let dy = Dy::new(creds.path());
    let out = dy.ok(&["--config", cfg.path().to_str().unwrap(), "pull", "busybox"]);
    assert!(
        out.starts_with("Using default tag: latest\nlatest: Pulling from library/busybox\n"),
        "{out}"
    );
    assert!(
        out.ends_with(
            "Status: Downloaded newer image for busybox:latest\ndocker.io/library/busybox:latest\n"
        ),
        "{out}"
    );
    assert_eq!(
        mirror.requests("GET", "/v2/library/busybox/manifests/latest"),
        1
    );
    assert_eq!(dy.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi\n");
    // docker.io/library/busybox names the same image.
    assert_eq!(
        dy.identity("docker.io/library/busybox").0,
        dy.identity("busybox").0
    );
}

#[test]
fn the_token_flow_against_a_real_registry() {
    let tokens = TokenServer::start("alice", "s3cret");
    let reg = Registry::start_with_token(&tokens);
    let creds = creds_dir();
    let src = Dy::with_base(creds.path());
    let host = reg.host();
    let name = format!("{host}/team/busybox:1");
    src.ok(&["tag", "busybox", &name]);

    // Anonymous: the token server hands out a token that grants nothing,
    // the registry refuses it, and the client says to log in.
    let err = src.fails(&["push", &name]);
    assert!(
        err.contains(&format!("registry {host} requires authentication"))
            && err.contains(&format!("dockyard login {host}")),
        "{err}"
    );
    let anonymous = tokens.requests();
    assert!(!anonymous.is_empty());
    assert!(
        anonymous.iter().all(|r| r["user"].is_null()),
        "{anonymous:?}"
    );

    // A wrong password: the token server itself refuses it.
    let err = src.fails(&["login", "-u", "alice", "-p", "wrong", &host]);
    assert!(
        err.contains("token server") && err.contains("incorrect username or password"),
        "{err}"
    );
    assert!(!creds.path().join("config.json").exists());

    let out = src.ok(&["login", "-u", "alice", "-p", "s3cret", &host]);
    assert!(out.ends_with("Login Succeeded\n"), "{out}");
    let out = src.ok(&["push", &name]);
    assert!(out.contains(": Pushed\n"), "{out}");
    // The registry verified alice's JWTs: its log names her, per request.
    assert!(reg.log().contains("auth.user.name=alice"), "{}", reg.log());
    let asked: Vec<Value> = tokens
        .requests()
        .into_iter()
        .filter(|r| r["user"] == "alice")
        .collect();
    assert!(
        asked.iter().all(|r| r["service"] == TOKEN_SERVICE),
        "{asked:?}"
    );
    // Push and pull on the repository, in whichever order the challenge
    // that led to it listed them (a HEAD, a POST and a PUT may each get
    // their own, and the uploads run in parallel).
    let pushes = |r: &Value| {
        r["scope"].as_array().into_iter().flatten().any(|s| {
            let s = s.as_str().unwrap_or_default();
            s.strip_prefix("repository:team/busybox:")
                .is_some_and(|actions| {
                    let actions: Vec<&str> = actions.split(',').collect();
                    actions.contains(&"pull") && actions.contains(&"push")
                })
        })
    };
    assert!(
        asked.iter().any(pushes),
        "the challenge's scope is what was asked for: {asked:?}"
    );

    let dst = Dy::new(creds.path());
    dst.ok(&["pull", &name]);
    assert_eq!(dst.identity(&name), src.identity("busybox"));
    assert_eq!(dst.ok(&["run", "--rm", &name, "echo", "token"]), "token\n");

    // Logged out, the pull is refused again, with the same clear message.
    src.ok(&["logout", &host]);
    let fresh = Dy::new(creds.path());
    let err = fresh.fails(&["pull", &name]);
    assert!(err.contains("requires authentication"), "{err}");
    assert_eq!(fresh.manifest_of(&name), None);
}
