//! The five capability sets of `process.capabilities`, each applied as
//! given (lab 02's `CapSets`), observed in `/proc/PID/status` of the
//! container's process after its `execve`.
//!
//! The kernel recomputes the sets at exec (capabilities(7)): bounding,
//! inheritable and ambient pass through unchanged; root's new permitted set
//! would be bounding | inheritable | ambient, but with no_new_privs (on in
//! `spec`'s config, as in runc's) exec may not gain anything, so it stays
//! the permitted set given; root's effective set is then all of it. A
//! runtime that gave one set to all five shows inheritable and ambient
//! empty and permitted equal to bounding.

use crate::support::{text, Env};

/// One `CapXxx:` line of /proc/PID/status, as the kernel's hex mask.
fn cap_field(pid: i64, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

// capabilities(7) numbers.
const CHOWN: u64 = 1 << 0;
const DAC_OVERRIDE: u64 = 1 << 1;
const KILL: u64 = 1 << 5;
const NET_BIND_SERVICE: u64 = 1 << 10;
const NET_RAW: u64 = 1 << 13;

#[test]
fn five_capability_sets_each_as_the_config_gives_them() {
    let env = Env::new("caps5");
    env.edit(|c| {
        c["process"]["args"] = serde_json::json!(["sleep", "300"]);
        c["process"]["capabilities"] = serde_json::json!({
            "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
            "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
            // SYS_ADMIN is outside the bounding set, DAC_OVERRIDE neither
            // permitted nor inheritable: the kernel cannot hold them there,
            // and they are left out, not an error.
            "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"],
            "ambient": ["CAP_NET_BIND_SERVICE", "CAP_DAC_OVERRIDE"]
        });
    });
    let bundle = env.bundle.to_str().unwrap();
    let out = env.rt(&["run", "--detach", "--bundle", bundle, "caps5"]);
    assert!(out.status.success(), "run -d: {}", text(&out.stderr));
    let pid = env.state("caps5")["pid"].as_i64().unwrap();
    let bounding = CHOWN | DAC_OVERRIDE | KILL | NET_BIND_SERVICE | NET_RAW;
    assert_eq!(cap_field(pid, "CapBnd:"), bounding);
    assert_eq!(cap_field(pid, "CapInh:"), KILL | NET_BIND_SERVICE);
    assert_eq!(cap_field(pid, "CapAmb:"), NET_BIND_SERVICE);
    // Root after exec with no_new_privs: the permitted set given, all
    // effective.
    let permitted = CHOWN | KILL | NET_BIND_SERVICE;
    assert_eq!(env.config()["process"]["noNewPrivileges"], true);
    assert_eq!(cap_field(pid, "CapPrm:"), permitted);
    assert_eq!(cap_field(pid, "CapEff:"), permitted);

    // exec applies its process.json's sets the same way.
    let process = env.bundle.join("process.json");
    let mut p = env.config()["process"].clone();
    p["args"] = serde_json::json!(["sh", "-c", "grep ^Cap /proc/self/status"]);
    p["capabilities"] = serde_json::json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL"],
        "permitted": ["CAP_CHOWN"],
        "effective": ["CAP_CHOWN"],
        "inheritable": ["CAP_KILL"],
        "ambient": []
    });
    std::fs::write(&process, serde_json::to_vec(&p).unwrap()).unwrap();
    let out = env.rt(&["exec", "--process", process.to_str().unwrap(), "caps5"]);
    let got = text(&out.stdout);
    assert!(out.status.success(), "exec: {got}{}", text(&out.stderr));
    let field = |name: &str| {
        got.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
            .unwrap_or_else(|| panic!("no {name} in {got}"))
    };
    assert_eq!(field("CapBnd:"), CHOWN | KILL);
    assert_eq!(field("CapInh:"), KILL);
    assert_eq!(field("CapAmb:"), 0);
    assert_eq!(field("CapPrm:"), CHOWN);

    assert!(env.rt(&["delete", "--force", "caps5"]).status.success());
    env.assert_gone("caps5");
}

/// A non-root `process.user` with capabilities (a web server as uid 1000
/// that binds port 80): runc switches the user between the capability
/// steps, with `PR_SET_KEEPCAPS`, and raises the ambient set after it. At
/// exec a non-root program without file capabilities gets permitted =
/// effective = ambient; a runtime that switched after `capset(2)` without
/// keepcaps shows all three empty.
#[test]
fn non_root_user_keeps_the_sets_through_the_user_switch() {
    let env = Env::new("capsuser");
    let sets = serde_json::json!({
        "bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "permitted": ["CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"]
    });
    env.edit(|c| {
        c["process"]["args"] = serde_json::json!(["sleep", "300"]);
        c["process"]["user"] =
            serde_json::json!({"uid": 1000, "gid": 1000, "additionalGids": [1001]});
        c["process"]["capabilities"] = sets.clone();
    });
    let bundle = env.bundle.to_str().unwrap();
    let out = env.rt(&["run", "--detach", "--bundle", bundle, "capsuser"]);
    assert!(out.status.success(), "run -d: {}", text(&out.stderr));
    let pid = env.state("capsuser")["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["1000"; 4],
        "{status}"
    );
    let groups = status.lines().find(|l| l.starts_with("Groups:")).unwrap();
    assert_eq!(groups.split_whitespace().nth(1), Some("1001"), "{status}");
    assert_eq!(cap_field(pid, "CapBnd:"), NET_BIND_SERVICE | KILL);
    assert_eq!(cap_field(pid, "CapInh:"), NET_BIND_SERVICE);
    assert_eq!(cap_field(pid, "CapAmb:"), NET_BIND_SERVICE);
    assert_eq!(cap_field(pid, "CapPrm:"), NET_BIND_SERVICE);
    assert_eq!(cap_field(pid, "CapEff:"), NET_BIND_SERVICE);

    // exec as the same user, from inside: its own /proc/self/status; and
    // the capability at work: uid 1000 binds port 80 (nc listens in the
    // container's own network namespace).
    let process = env.bundle.join("process.json");
    let mut p = env.config()["process"].clone();
    p["args"] = serde_json::json!([
        "sh",
        "-c",
        "grep ^Cap /proc/self/status; id -u; nc -l -p 80 & sleep 0.3; \
         cat /proc/net/tcp /proc/net/tcp6 | grep -q ':0050 [0:]* 0A ' && echo bound; kill $!"
    ]);
    std::fs::write(&process, serde_json::to_vec(&p).unwrap()).unwrap();
    let out = env.rt(&["exec", "--process", process.to_str().unwrap(), "capsuser"]);
    let got = text(&out.stdout);
    assert!(out.status.success(), "exec: {got}{}", text(&out.stderr));
    let field = |name: &str| {
        got.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
            .unwrap_or_else(|| panic!("no {name} in {got}"))
    };
    for name in ["CapPrm:", "CapEff:", "CapAmb:"] {
        assert_eq!(field(name), NET_BIND_SERVICE, "{name} in {got}");
    }
    assert!(got.lines().any(|l| l == "1000"), "{got}");
    assert!(
        got.lines().any(|l| l == "bound"),
        "uid 1000 could not bind port 80: {got}{}",
        text(&out.stderr)
    );

    // Without ambient, runc's semantics: nothing survives the exec of a
    // non-root program.
    p["args"] = serde_json::json!(["sh", "-c", "grep ^Cap /proc/self/status"]);
    p["capabilities"]["ambient"] = serde_json::json!([]);
    std::fs::write(&process, serde_json::to_vec(&p).unwrap()).unwrap();
    let out = env.rt(&["exec", "--process", process.to_str().unwrap(), "capsuser"]);
    let got = text(&out.stdout);
    assert!(out.status.success(), "exec: {got}{}", text(&out.stderr));
    assert!(got.contains("CapPrm:\t0000000000000000"), "{got}");
    assert!(got.contains("CapInh:\t0000000000000400"), "{got}");

    assert!(env.rt(&["delete", "--force", "capsuser"]).status.success());
    env.assert_gone("capsuser");
}
