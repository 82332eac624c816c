//! bollard, the Rust Docker client from crates.io, drives `dockyard system
//! service`: a third client nobody here wrote, with its own request
//! builder and response models (generated from the Engine API's spec, so
//! a field of the wrong type fails to decode).
//!
//! Each test starts its own service, on its own socket and data root,
//! inside a throwaway network namespace (`unshare --net`, only its loopback
//! up): the bridges a network test makes live and die there. The socket
//! file is reachable from the test's own namespace, so bollard connects to
//! it as to any dockerd. What bollard reports is checked against the other
//! front (`dockyard ps`, `inspect`) and against the kernel (/proc, the
//! volume's files).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig};
use bollard::query_parameters as q;
use bollard::Docker;
use dockyard_e2e::dockyard::Dockyard as Dy;
use futures_util::StreamExt;

/// A service in its own network namespace, killed on drop.
struct Service {
    child: Child,
    dir: tempfile::TempDir,
}

impl Service {
    fn start(dy: &Dy) -> Service {
        let dir = tempfile::Builder::new()
            .prefix("dockyard-bollard-")
            .tempdir()
            .unwrap();
        let sock = dir.path().join("api.sock");
        let script = format!(
            "ip link set lo up; exec {bin} --root {root} system service --host unix://{sock} --time 0",
            bin = dockyard_e2e::fixtures::bin("dockyard").display(),
            root = dy.root.path().display(),
            sock = sock.display(),
        );
        let child = Command::new("unshare")
            .args(["--net", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unshare");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(Instant::now() < deadline, "the service never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Service { child, dir }
    }

    fn docker(&self) -> Docker {
        let sock = self.dir.path().join("api.sock");
        Docker::connect_with_unix(
            &sock.display().to_string(),
            60,
            bollard::API_DEFAULT_VERSION,
        )
        .unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The container config every test uses: busybox under the test's cgroup
/// parent.
fn busybox(dy: &Dy, cmd: &[&str]) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some("busybox".into()),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        host_config: Some(HostConfig {
            cgroup_parent: Some(dy.parent.clone()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Ping, version and the image list decode into bollard's models, and the
/// list is the store's (`dockyard images`).
#[test]
fn api_bollard_ping_version_and_images() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    block_on(async {
        let docker = svc.docker();
        assert_eq!(docker.ping().await.unwrap(), "OK");
        let v = docker.version().await.unwrap();
        assert_eq!(v.api_version.as_deref(), Some("1.50"));
        assert_eq!(v.min_api_version.as_deref(), Some("1.24"));
        assert_eq!(v.os.as_deref(), Some("linux"));
        let images = docker
            .list_images(Some(
                q::ListImagesOptionsBuilder::default().all(false).build(),
            ))
            .await
            .unwrap();
        let mut ids: Vec<String> = images.iter().map(|i| i.id.clone()).collect();
        ids.sort();
        let mut ours: Vec<String> = dy
            .ok(&["images", "-q", "--no-trunc"])
            .lines()
            .map(str::to_string)
            .collect();
        ours.sort();
        ours.dedup();
        assert_eq!(ids, ours);
        let busybox = images
            .iter()
            .find(|i| i.repo_tags.iter().any(|t| t == "busybox:latest"))
            .expect("busybox:latest in the list");
        assert!(busybox.size > 0, "{busybox:?}");
    });
}

/// create, start, exec (its output and exit code), wait, logs by stream,
/// remove: what bollard sees is what the kernel and the other front see.
#[test]
fn api_bollard_container_lifecycle_exec_and_logs() {
    let dy = Dy::new();
    let svc = Service::start(&dy);
    block_on(async {
        let docker = svc.docker();
        let config = busybox(
            &dy,
            &["sh", "-c", "echo out; echo err >&2; sleep 1; exit 3"],
        );
        let opts = q::CreateContainerOptionsBuilder::default()
            .name("bolly")
            .build();
        let id = docker
            .create_container(Some(opts), config)
            .await
            .unwrap()
            .id;
        assert_eq!(dy.inspect("bolly", "{{.Id}}"), id);
        docker
            .start_container(&id, None::<q::StartContainerOptions>)
            .await
            .unwrap();
        let inspected = docker
            .inspect_container(&id, None::<q::InspectContainerOptions>)
            .await
            .unwrap();
        let state = inspected.state.unwrap();
        let pid = state.pid.unwrap();
        assert!(pid > 0, "{state:?}");
        // The kernel's side: that process, in the test's cgroup.
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(cgroup.contains(&dy.parent), "{cgroup}");

        // exec: its output, demultiplexed, and its exit code.
        let exec = docker
            .create_exec(
                &id,
                ExecConfig {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(vec!["sh".into(), "-c".into(), "hostname; exit 5".into()]),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .id;
        let mut out = String::new();
        match docker.start_exec(&exec, None).await.unwrap() {
            bollard::exec::StartExecResults::Attached { mut output, .. } => {
                while let Some(msg) = output.next().await {
                    out.push_str(&msg.unwrap().to_string());
                }
            }
            other => panic!("not attached: {other:?}"),
        }
        assert_eq!(out, format!("{}\n", &id[..12]));
        let ins = docker.inspect_exec(&exec).await.unwrap();
        assert_eq!(ins.exit_code, Some(5));
        assert_eq!(ins.running, Some(false));

        // wait: the container's own exit code.
        let mut wait = docker.wait_container(&id, None::<q::WaitContainerOptions>);
        match wait.next().await.unwrap() {
            Ok(r) => assert_eq!(r.status_code, 3),
            // bollard turns a non-zero exit into this error.
            Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => {
                assert_eq!(code, 3)
            }
            Err(e) => panic!("wait: {e}"),
        }
        assert_eq!(dy.inspect("bolly", "{{.State.ExitCode}}"), "3");

        let logs: Vec<_> = docker
            .logs(
                &id,
                Some(
                    q::LogsOptionsBuilder::default()
                        .stdout(true)
                        .stderr(true)
                        .build(),
                ),
            )
            .collect()
            .await;
        let logs: Vec<String> = logs
            .into_iter()
            .map(|l| match l.unwrap() {
                bollard::container::LogOutput::StdOut { message } => {
                    format!("out:{}", String::from_utf8_lossy(&message))
                }
                bollard::container::LogOutput::StdErr { message } => {
                    format!("err:{}", String::from_utf8_lossy(&message))
                }
                other => format!("?:{other}"),
            })
            .collect();
        assert_eq!(logs, ["out:out\n", "err:err\n"]);

        let listed = docker
            .list_containers(Some(
                q::ListContainersOptionsBuilder::default().all(true).build(),
            ))
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            listed[0].names.as_deref(),
            Some(&["/bolly".to_string()][..])
        );
        docker
            .remove_container(&id, None::<q::RemoveContainerOptions>)
            .await
            .unwrap();
        assert_eq!(dy.ok(&["ps", "-aq"]), "");
        // And a missing one is bollard's 404.
        match docker
            .inspect_container("bolly", None::<q::InspectContainerOptions>)
            .await
        {
            Err(bollard::errors::Error::DockerResponseServerError { status_code, .. }) => {
                assert_eq!(status_code, 404)
            }
            other => panic!("inspect of a removed container: {other:?}"),
        }
    });
}

/// A volume and a bridge network made through bollard, a container on both:
/// its address on the network is the one the kernel gave its eth0, the
/// file it wrote is in the volume's directory on the host, and everything
/// goes away again.
#[test]
fn api_bollard_networks_and_volumes() {
    use bollard::models::{NetworkCreateRequest, VolumeCreateOptions};
    let dy = Dy::new();
    let svc = Service::start(&dy);
    block_on(async {
        let docker = svc.docker();
        let vol = docker
            .create_volume(VolumeCreateOptions {
                name: Some("bvol".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(vol.name, "bvol");
        let net = docker
            .create_network(NetworkCreateRequest {
                name: "bnet".into(),
                driver: Some("bridge".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let names: Vec<String> = docker
            .list_networks(None::<q::ListNetworksOptions>)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|n| n.name)
            .collect();
        assert!(names.contains(&"bnet".to_string()), "{names:?}");
        let vols = docker
            .list_volumes(None::<q::ListVolumesOptions>)
            .await
            .unwrap();
        let vnames: Vec<String> = vols
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
        assert_eq!(vnames, ["bvol"]);

        let mut config = busybox(&dy, &["sh", "-c", "echo from-bollard > /data/f; sleep 30"]);
        if let Some(h) = config.host_config.as_mut() {
            h.binds = Some(vec!["bvol:/data".into()]);
            h.network_mode = Some("bnet".into());
        }
        let opts = q::CreateContainerOptionsBuilder::default()
            .name("bnetc")
            .build();
        let id = docker
            .create_container(Some(opts), config)
            .await
            .unwrap()
            .id;
        docker
            .start_container(&id, None::<q::StartContainerOptions>)
            .await
            .unwrap();
        let ins = docker
            .inspect_container(&id, None::<q::InspectContainerOptions>)
            .await
            .unwrap();
        let pid = ins.state.unwrap().pid.unwrap();
        let ep = ins.network_settings.unwrap().networks.unwrap()["bnet"].clone();
        assert_eq!(ep.network_id.as_deref(), net.id.as_str().into());
        let ip = ep.ip_address.unwrap();
        // The kernel's address on eth0 inside the container.
        let shown = Command::new("nsenter")
            .args([
                "-t",
                &pid.to_string(),
                "-n",
                "ip",
                "-4",
                "-o",
                "addr",
                "show",
                "dev",
                "eth0",
            ])
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
        assert!(shown.contains(&format!(" {ip}/")), "{ip} not in {shown}");
        // The file, from the host, in the volume's directory.
        let mountpoint = docker.inspect_volume("bvol").await.unwrap().mountpoint;
        let path = std::path::Path::new(&mountpoint).join("f");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !path.exists() {
            assert!(
                Instant::now() < deadline,
                "{} never appeared",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "from-bollard\n");

        docker
            .remove_container(
                &id,
                Some(
                    q::RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .build(),
                ),
            )
            .await
            .unwrap();
        docker.remove_network("bnet").await.unwrap();
        docker
            .remove_volume("bvol", None::<q::RemoveVolumeOptions>)
            .await
            .unwrap();
        assert_eq!(dy.ok(&["ps", "-aq"]), "");
        assert_eq!(dy.ok(&["volume", "ls", "-q"]), "");
    });
}
