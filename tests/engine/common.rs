//! Helpers that more than one subject uses: how the host sees a file's
//! owner and a process's id map (`stat -c %u:%g`, `cat /proc/PID/uid_map`).

use std::path::Path;

/// A map file's lines as numbers: `0 3100000 65536` for each line.
pub(crate) fn id_map(text: &str) -> Vec<Vec<u64>> {
    text.lines()
        .map(|l| l.split_whitespace().map(|n| n.parse().unwrap()).collect())
        .collect()
}

/// The owner and group of `path` itself (not of what a symlink points at),
/// as the host sees them: `stat -c %u:%g PATH`.
pub(crate) fn owner(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.uid(), m.gid())
}

/// The host's cgroup layout, as lab 03 detects it: tests ask it which files
/// to read rather than assume v1 or v2.
pub(crate) fn cgroup_host() -> lab03_cgroups::Host {
    lab03_cgroups::detect().expect("detecting the cgroup layout")
}

/// A file's text, trimmed (a cgroup file, a /proc entry).
pub(crate) fn read_trimmed(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// Shell lines, run in a scratch directory, that make a test CA
/// (`ca.pem`), a server certificate for `server_ip` (`server.pem`,
/// `server-key.pem`) and a client certificate (`cert.pem`, `key.pem`) with
/// openssl: the files `--tlsverify` and docker's `DOCKER_CERT_PATH` expect.
pub fn tls_certs_script(server_ip: &str) -> String {
    let ssl = r#"openssl "$@" 2>/dev/null"#;
    format!(
        "ssl() {{ {ssl}; }}
        ssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 1 -subj /CN=test-ca
        ssl req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr -subj /CN=server
        printf 'subjectAltName=IP:{server_ip}\\nextendedKeyUsage=serverAuth\\n' > server.ext
        ssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server.pem -days 1 -extfile server.ext
        ssl req -newkey rsa:2048 -nodes -keyout key.pem -out client.csr -subj /CN=client
        printf 'extendedKeyUsage=clientAuth\\n' > client.ext
        ssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -days 1 -extfile client.ext"
    )
}
