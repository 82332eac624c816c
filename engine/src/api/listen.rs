//! Where the service listens: a unix socket it makes, a TCP port, or a
//! socket systemd made and handed over (socket activation).
//!
//! ```text
//! -H unix:///run/dockyard.sock   bind it, 0660, group dockyard (see `bind`)
//! -H tcp://127.0.0.1:2375        plain TCP, loopback only (see below)
//! -H fd://                       the socket systemd passed: LISTEN_FDS=1,
//!                                LISTEN_PID=our pid, the socket is fd 3
//! ```
//!
//! **Socket activation.** systemd (`dockyard.socket`, in contrib/systemd)
//! creates and listens on the socket itself, with the owner, group and mode
//! the unit says, and starts the service at the first connection, passing
//! the listening socket as fd 3 and saying so in two variables: `LISTEN_FDS`
//! (how many, from 3 on) and `LISTEN_PID` (for which process: a variable
//! inherited by some child is not an invitation to it). Clients that
//! connect before the service is up simply wait in the socket's backlog.
//! This is how docker.socket starts dockerd, and `sd_listen_fds(3)` is
//! the whole protocol.
//!
//! **TCP.** Whoever can reach the API can run a privileged container and
//! so is root on this host: dockerd warns that TCP without `--tlsverify`
//! "gives root access on this machine to everyone who has access to your
//! network". Dockyard goes one step further: on any address but loopback
//! it listens only with `--tlsverify` (mutual TLS, see the tls module);
//! plain TCP is served on a loopback address only, with the warning (it is
//! still root for every local user who can connect).
//!
//! The rest of the service speaks to `UnixStream`s (the hijacked streams,
//! the half-closes, `client_gone`'s POLLHUP). A TCP connection is given to
//! it as one end of a socket pair, and two threads copy bytes between the
//! TCP socket and the other end, passing half-closes on (`shutdown`), so
//! every handler works unchanged over either.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};

use super::TlsFiles;

/// A listening socket of one of the kinds above.
pub enum Listener {
    /// A socket this process bound (removed when it stops).
    Unix(UnixListener, PathBuf),
    /// Plain TCP (loopback only).
    Tcp(TcpListener),
    /// TCP with mutual TLS (see the tls module).
    Tls(TcpListener, Arc<rustls::ServerConfig>),
    /// A unix socket systemd bound (never removed by us).
    Activated(UnixListener),
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Unix(l, _) | Listener::Activated(l) => l.as_fd(),
            Listener::Tcp(l) | Listener::Tls(l, _) => l.as_fd(),
        }
    }
}

impl Listener {
    /// Accept one connection, as a unix stream (see the module docs).
    pub fn accept(&self) -> std::io::Result<UnixStream> {
        match self {
            Listener::Unix(l, _) | Listener::Activated(l) => l.accept().map(|(c, _)| c),
            Listener::Tcp(l) => {
                let (tcp, _) = l.accept()?;
                let _ = tcp.set_nodelay(true);
                bridge(tcp)
            }
            Listener::Tls(l, config) => {
                let (tcp, _) = l.accept()?;
                let _ = tcp.set_nodelay(true);
                super::tls::bridge(tcp, Arc::clone(config))
            }
        }
    }

    /// What to say in the "listening on" line.
    pub fn describe(&self) -> String {
        match self {
            Listener::Unix(_, p) => format!("unix://{}", p.display()),
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp://{a}"),
                Err(_) => "tcp".into(),
            },
            Listener::Tls(l, _) => match l.local_addr() {
                Ok(a) => format!("tcp://{a} (TLS, client certificates required)"),
                Err(_) => "tcp (TLS)".into(),
            },
            Listener::Activated(l) => match l.local_addr() {
                Ok(a) => match a.as_pathname() {
                    Some(p) => format!("fd:// (unix://{}, from systemd)", p.display()),
                    None => "fd:// (from systemd)".into(),
                },
                Err(_) => "fd://".into(),
            },
        }
    }
}

/// The listener `-H host` asks for.
pub fn listen(host: &str, tls: &TlsFiles) -> Result<Listener> {
    if !tls.verify && (tls.ca.is_some() || tls.cert.is_some() || tls.key.is_some()) {
        // dockerd's --tls without --tlsverify encrypts but lets anyone in:
        // not offered.
        bail!("--tlscacert, --tlscert and --tlskey go with --tlsverify (client certificates)");
    }
    if tls.verify && !host.starts_with("tcp://") && !host.starts_with("fd://") {
        bail!("--tlsverify is for TCP: {host} is not a TCP address");
    }
    if let Some(p) = host.strip_prefix("unix://") {
        if p.is_empty() {
            bail!("invalid --host {host:?}: no socket path");
        }
        let path = PathBuf::from(p);
        return Ok(Listener::Unix(super::bind(&path)?, path));
    }
    if let Some(addr) = host.strip_prefix("tcp://") {
        return tcp(host, addr, tls);
    }
    if let Some(which) = host.strip_prefix("fd://") {
        return activated(which, tls);
    }
    bail!("invalid --host {host:?}: expected unix:///path/to.sock, tcp://127.0.0.1:PORT or fd://")
}

/// `tcp://ADDR:PORT`: with `--tlsverify` on any address, else loopback
/// only (see the module docs).
fn tcp(host: &str, addr: &str, tls: &TlsFiles) -> Result<Listener> {
    use std::net::ToSocketAddrs;
    let addr = addr.trim_end_matches('/');
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .with_context(|| format!("invalid --host {host:?}"))?
        .collect();
    let Some(first) = addrs.first() else {
        bail!("invalid --host {host:?}: no address");
    };
    if tls.verify {
        let config = super::tls::server_config(tls)?;
        let l = TcpListener::bind(first).with_context(|| format!("binding {host}"))?;
        return Ok(Listener::Tls(l, config));
    }
    if !addrs.iter().all(|a| a.ip().is_loopback()) {
        bail!(
            "--host {host}: dockyard serves plain TCP only on a loopback address \
             (127.0.0.1, ::1): anyone who can reach the API is root on this host; \
             elsewhere use --tlsverify --tlscacert --tlscert --tlskey (client certificates)"
        );
    }
    eprintln!(
        "dockyard: WARNING: API listening on {host} without TLS: it is unauthenticated, and \
         gives root access on this machine to every local user who can connect to it"
    );
    let l = TcpListener::bind(first).with_context(|| format!("binding {host}"))?;
    Ok(Listener::Tcp(l))
}

/// `fd://` or `fd://N`: the socket systemd passed (sd_listen_fds).
fn activated(which: &str, tls: &TlsFiles) -> Result<Listener> {
    const FIRST: RawFd = 3; // SD_LISTEN_FDS_START
    let pid: i32 = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| anyhow!("-H fd://: no LISTEN_PID: not started by socket activation"))?;
    if pid != std::process::id() as i32 {
        bail!("-H fd://: LISTEN_PID is {pid}, not this process: the sockets are not ours");
    }
    let n: RawFd = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|p| p.parse().ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| anyhow!("-H fd://: LISTEN_FDS says no socket was passed"))?;
    // Not for our children (the starter, `dockyard exec`).
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    let fd = match which.trim_end_matches('/') {
        "" => FIRST,
        s => s
            .parse::<RawFd>()
            .ok()
            .filter(|f| (FIRST..FIRST + n).contains(f))
            .ok_or_else(|| anyhow!("-H fd://{s}: not one of the {n} sockets passed"))?,
    };
    // SAFETY: systemd gave us this descriptor, a listening socket, and
    // nothing else in this process owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // systemd passes them inheritable; keep them from the programs we exec.
    nix::fcntl::fcntl(
        &owned,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .with_context(|| format!("fd {fd}"))?;
    use nix::sys::socket::{getsockname, AddressFamily, SockaddrLike, SockaddrStorage};
    let addr: SockaddrStorage =
        getsockname(owned.as_raw_fd()).with_context(|| format!("fd {fd}: not a socket"))?;
    Ok(match addr.family() {
        Some(AddressFamily::Unix) => Listener::Activated(UnixListener::from(owned)),
        Some(AddressFamily::Inet | AddressFamily::Inet6) if tls.verify => {
            let config = super::tls::server_config(tls)?;
            Listener::Tls(TcpListener::from(owned), config)
        }
        Some(AddressFamily::Inet | AddressFamily::Inet6) => {
            let l = TcpListener::from(owned);
            let ip = l.local_addr()?.ip();
            if !ip.is_loopback() {
                bail!("fd {fd}: a TCP socket on {ip}: plain TCP is served on loopback only");
            }
            Listener::Tcp(l)
        }
        other => bail!("fd {fd}: a socket of family {other:?}, not unix or TCP"),
    })
}

/// A TCP connection as a unix stream: the pair's other end and the TCP
/// socket joined by two copying threads; each passes the end of its
/// direction on as a half-close.
fn bridge(tcp: TcpStream) -> std::io::Result<UnixStream> {
    let (ours, theirs) = UnixStream::pair()?;
    let (tcp_in, mut tcp_out) = (tcp.try_clone()?, tcp);
    let (mut unix_out, unix_in) = (ours.try_clone()?, ours);
    std::thread::spawn(move || {
        let mut tcp_in = tcp_in;
        copy(&mut tcp_in, &mut unix_out);
        // The client sent all it will (or vanished): end what the
        // service reads, and if the client is gone altogether, its replies
        // have nowhere to go, so the pair closes (POLLHUP, `client_gone`).
        let _ = unix_out.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        let mut unix_in = unix_in;
        copy(&mut unix_in, &mut tcp_out);
        let _ = tcp_out.shutdown(Shutdown::Write);
        // The service is done with the connection: close it whole.
        let _ = unix_in.shutdown(Shutdown::Both);
    });
    Ok(theirs)
}

/// Copy until end of input or an error on either side.
fn copy(from: &mut impl Read, to: &mut impl Write) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
