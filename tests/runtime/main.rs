//! dockyard-runtime under its callers. `direct` replays the exact argv of
//! containerd's shim and conmon and checks what the kernel shows;
//! `containerd` starts a containerd of its own (own socket, root, state
//! directory and config) and drives it with `ctr --runc-binary`; `podman`
//! runs podman and conmon with a containers.conf that names the runtime;
//! `cri` is a kubelet's CRI sequence (gRPC from `cri_client.py`) to
//! containerd's CRI plugin with a `dockyard` runtime handler.
//! Everything runs as root; each test has its own bundle, `--root` and
//! cgroup parent, and removes them, passed or failed.

mod caps;
mod containerd;
mod cri;
mod direct;
mod locking;
mod podman;
mod propagation;
mod support;
