//! Pulls that are cut short: an interrupted pull leaves no partial blob in
//! the store, and a download whose connection drops half way resumes with
//! an HTTP `Range: bytes=N-` request (served by a tiny fake registry, since
//! distribution cannot be made to drop a connection).

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use dockyard_e2e::fixtures::{require_root, workspace_root};
use sha2::Digest as _;

use crate::common::{base_digests, creds_dir, skopeo, Dy, Registry};

/// An OCI layout with one uncompressed layer holding `size` bytes: big
/// enough for a pull to be caught in the middle.
fn big_image(dir: &Path, size: usize) {
    let mut layer = Vec::with_capacity(size + 2048);
    {
        let mut tar = tar::Builder::new(&mut layer);
        let mut h = tar::Header::new_gnu();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let data: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        tar.append_data(&mut h, "big", &data[..]).unwrap();
        tar.finish().unwrap();
    }
    let sha = |b: &[u8]| format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)));
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = sha(b);
        fs::write(blobs.join(&d[7..]), b).unwrap();
        d
    };
    let layer_digest = put(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": []
    }))
    .unwrap();
    let config_digest = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}]
    }))
    .unwrap();
    let manifest_digest = put(&manifest);
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": manifest_digest, "size": manifest.len(),
                           "annotations": {"org.opencontainers.image.ref.name": "big"}}]
        }))
        .unwrap(),
    )
    .unwrap();
}

#[test]
fn an_interrupted_pull_leaves_no_partial_blob() {
    let reg = Registry::start();
    let creds = creds_dir();
    let layout = tempfile::tempdir().unwrap();
    big_image(layout.path(), 64 << 20);
    let name = format!("{}/big:1", reg.host());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:big", layout.path().display()),
        &format!("docker://{name}"),
    ]);

    let dy = Dy::new(creds.path());
    let mut child = dy
        .command(&["pull", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it while the layer is half-written in downloads/.
    let tmp = dy.path().join("tmp");
    let downloads = dy.path().join("downloads");
    let deadline = Instant::now() + Duration::from_secs(60);
    let caught = loop {
        let partial = fs::read_dir(&downloads).ok().and_then(|rd| {
            rd.flatten()
                .find(|e| e.metadata().map(|m| m.len() > 1 << 20).unwrap_or(false))
        });
        if partial.is_some() {
            child.kill().unwrap();
            break true;
        }
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let status = child.wait().unwrap();
    assert!(
        caught,
        "the pull ended ({status:?}) before it could be interrupted"
    );
    assert!(!status.success());

    // Only whole blobs are visible, each matching its name; no image name.
    let blobs = dy.verified_blobs();
    assert!(blobs.len() <= 1, "at most the config: {blobs:?}");
    assert_eq!(dy.manifest_of(&name), None);

    // The next pull resumes the download, verifies it whole, and completes.
    let out = dy.ok(&["pull", &name]);
    assert!(out.contains("Status: Downloaded newer image"), "{out}");
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    assert_eq!(fs::read_dir(&downloads).unwrap().count(), 0);
    assert_eq!(dy.verified_blobs().len(), 3);
    // The image has no shell to run: look at the unpacked layer instead.
    let layers: Vec<_> = fs::read_dir(dy.path().join("layers"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(layers.len(), 1);
    let big = fs::metadata(layers[0].path().join("diff/big")).unwrap();
    assert_eq!(big.len(), 64 << 20);
}

/// One request as the fake registry saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    range: Option<String>,
}

/// A fake registry on 127.0.0.1 serving one image, `fake:1`, from `blobs`
/// (digest -> bytes): the first GET of `layer` sends its headers and half
/// of it, then drops the connection. With `ranges`, later GETs honour
/// `Range: bytes=N-` with 206; without, they send the whole blob (200), as
/// a registry without range support does. Every request is logged.
fn fake_registry(
    manifest: (String, Vec<u8>),
    blobs: std::collections::HashMap<String, Vec<u8>>,
    layer: String,
    ranges: bool,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<Seen>>>) {
    use std::io::{BufRead, BufReader};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Seen>::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let mut words = line.split_whitespace();
            let method = words.next().unwrap_or("").to_string();
            let path = words.next().unwrap_or("").to_string();
            let mut range = None;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("range") {
                        range = Some(v.trim().to_string());
                    }
                }
            }
            let first_layer_get = {
                let mut log = log.lock().unwrap();
                let first = !log
                    .iter()
                    .any(|s| s.method == "GET" && s.path.ends_with(&layer));
                log.push(Seen {
                    method: method.clone(),
                    path: path.clone(),
                    range: range.clone(),
                });
                first && path.ends_with(&layer)
            };
            let (status, mut headers, body): (&str, Vec<String>, Vec<u8>) = if path == "/v2/" {
                ("200 OK", vec![], b"{}".to_vec())
            } else if path == "/v2/fake/manifests/1" || path.ends_with(&manifest.0) {
                (
                    "200 OK",
                    vec![
                        "Content-Type: application/vnd.oci.image.manifest.v1+json".into(),
                        format!("Docker-Content-Digest: {}", manifest.0),
                    ],
                    manifest.1.clone(),
                )
            } else if let Some(blob) = path
                .strip_prefix("/v2/fake/blobs/")
                .and_then(|d| blobs.get(d))
            {
                let from = range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|_| ranges);
                match from {
                    Some(n) if n < blob.len() => (
                        "206 Partial Content",
                        vec![format!(
                            "Content-Range: bytes {n}-{}/{}",
                            blob.len() - 1,
                            blob.len()
                        )],
                        blob[n..].to_vec(),
                    ),
                    _ => ("200 OK", vec![], blob.clone()),
                }
            } else {
                ("404 Not Found", vec![], b"{\"errors\":[]}".to_vec())
            };
            headers.push(format!("Content-Length: {}", body.len()));
            headers.push("Connection: close".into());
            let head = format!("HTTP/1.1 {status}\r\n{}\r\n\r\n", headers.join("\r\n"));
            let _ = conn.write_all(head.as_bytes());
            if method == "HEAD" {
                continue;
            }
            if first_layer_get {
                // Half of it, then the connection drops.
                let _ = conn.write_all(&body[..body.len() / 2]);
                let _ = conn.flush();
                let _ = conn.shutdown(std::net::Shutdown::Both);
                continue;
            }
            let _ = conn.write_all(&body);
        }
    });
    (port, seen)
}

/// The base image's manifest, config and layer, as (digest, bytes).
fn base_blobs() -> [(String, Vec<u8>); 3] {
    let (manifest, config, layer) = base_digests();
    let read = |d: &str| {
        fs::read(
            workspace_root()
                .join("images/busybox/oci/blobs/sha256")
                .join(&d[7..]),
        )
        .unwrap()
    };
    [
        (manifest.clone(), read(&manifest)),
        (config.clone(), read(&config)),
        (layer.clone(), read(&layer)),
    ]
}

#[test]
fn a_dropped_download_resumes_with_a_range_request() {
    require_root();
    let [manifest, config, layer] = base_blobs();
    let blobs: std::collections::HashMap<String, Vec<u8>> =
        [config.clone(), layer.clone()].into_iter().collect();
    let half = layer.1.len() / 2;
    let creds = creds_dir();

    for ranges in [true, false] {
        let (port, seen) = fake_registry(manifest.clone(), blobs.clone(), layer.0.clone(), ranges);
        let name = format!("127.0.0.1:{port}/fake:1");
        let dy = Dy::new(creds.path());

        let err = dy.fails(&["pull", &name]);
        assert!(
            err.contains(&format!("downloading layer {}", layer.0))
                && err.contains(&format!(
                    "interrupted after {half} of {} bytes",
                    layer.1.len()
                )),
            "{err}"
        );
        // The store is as it was, plus the config (a whole, verified blob):
        // no name, no layer, nothing in tmp/, and the half layer is not a
        // blob: it waits in downloads/, under the digest it must hash to.
        assert_eq!(dy.manifest_of(&name), None);
        assert_eq!(dy.verified_blobs(), vec![config.0.clone()]);
        assert_eq!(fs::read_dir(dy.path().join("layers")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(dy.path().join("tmp")).unwrap().count(), 0);
        let partial = dy.path().join("downloads").join(&layer.0[7..]);
        assert_eq!(fs::metadata(&partial).unwrap().len(), half as u64);
        assert!(dy.ok(&["images", "-q"]).is_empty());

        let out = dy.ok(&["pull", &name]);
        assert!(out.contains("Status: Downloaded newer image"), "{out}");
        let gets: Vec<Seen> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == "GET" && s.path.ends_with(&layer.0))
            .cloned()
            .collect();
        assert_eq!(gets.len(), 2, "{gets:?}");
        assert_eq!(gets[0].range, None, "the first try asks for all of it");
        // The second asks for the rest only; the fake server answers 206
        // with ranges, else 200 and the whole blob, which is taken whole.
        assert_eq!(gets[1].range.as_deref(), Some(&*format!("bytes={half}-")));
        let mut all = vec![manifest.0.clone(), config.0.clone(), layer.0.clone()];
        all.sort();
        assert_eq!(dy.verified_blobs(), all);
        assert_eq!(
            fs::read_dir(dy.path().join("downloads")).unwrap().count(),
            0
        );
        assert_eq!(
            dy.ok(&["run", "--rm", &name, "echo", "resumed"]),
            "resumed\n",
            "ranges: {ranges}"
        );
    }
}
