//! # Capabilities: root's powers, one by one
//!
//! Since Linux 2.2 the power of root is not one bit but about forty, each a
//! *capability* (capabilities(7)): `CAP_SYS_ADMIN` allows mount(2),
//! `CAP_NET_ADMIN` configuring interfaces, `CAP_SYS_TIME` setting the
//! clock. The kernel checks the one a call needs, deep in the code path of
//! that call. A process carries five masks of them (see
//! `apply_capabilities`), and a container engine shrinks them to the few
//! that ordinary programs run as root expect to work on their own files
//! and processes: Docker's fourteen.
//!
//! ```text
//! capsh --drop=cap_sys_admin,cap_net_admin,... --    # the bounding set, from a shell
//! grep Cap /proc/self/status                          # the five masks, in hex
//! capsh --decode=00000000a80425fb                     # Docker's default, by name
//! ```

use std::fs;

use anyhow::Context;
use nix::errno::Errno;

/// One capability of capabilities(7): its number, whether Docker keeps it for
/// a default container, and why.
#[derive(Debug, Clone, Copy)]
pub struct Capability {
    pub name: &'static str,
    pub number: u32,
    pub docker_default: bool,
    pub why: &'static str,
}

const fn cap(
    name: &'static str,
    number: u32,
    docker_default: bool,
    why: &'static str,
) -> Capability {
    Capability {
        name,
        number,
        docker_default,
        why,
    }
}

// ANCHOR: capabilities
/// Every capability the kernel knows (as of Linux 6.x), with Docker's choice
/// for each. Kept: what ordinary programs run as root expect to work on their
/// own files and processes. Dropped: whatever reaches past the container.
#[rustfmt::skip]
pub const CAPABILITIES: [Capability; 41] = [
    cap("CHOWN", 0, true, "keep: chown files in the image (package managers do)"),
    cap("DAC_OVERRIDE", 1, true, "keep: root ignores file permissions on its own files"),
    cap("DAC_READ_SEARCH", 2, false, "drop: open_by_handle_at(2) opens host files by handle (the 'shocker' escape)"),
    cap("FOWNER", 3, true, "keep: chmod and utime on files root does not own"),
    cap("FSETID", 4, true, "keep: keep set-uid bits when root edits a file"),
    cap("KILL", 5, true, "keep: signal any process, and the pid namespace hides the host's"),
    cap("SETGID", 6, true, "keep: su, sudo and daemons switch groups"),
    cap("SETUID", 7, true, "keep: su, sudo and daemons switch users"),
    cap("SETPCAP", 8, true, "keep: drop capabilities further (only within the bounding set)"),
    cap("LINUX_IMMUTABLE", 9, false, "drop: chattr +i could pin files the host must change"),
    cap("NET_BIND_SERVICE", 10, true, "keep: listen on ports below 1024 in its own netns"),
    cap("NET_BROADCAST", 11, false, "drop: unused by the kernel, dropped by habit"),
    cap("NET_ADMIN", 12, false, "drop: create interfaces, change routes and firewall rules"),
    cap("NET_RAW", 13, true, "keep: ping needs raw sockets (the netns confines them)"),
    cap("IPC_LOCK", 14, false, "drop: lock memory and starve the host of RAM"),
    cap("IPC_OWNER", 15, false, "drop: bypass permission checks on System V IPC"),
    cap("SYS_MODULE", 16, false, "drop: load a kernel module: code in the host's kernel"),
    cap("SYS_RAWIO", 17, false, "drop: iopl, ioperm and /dev/mem: raw hardware access"),
    cap("SYS_CHROOT", 18, true, "keep: chroot is harmless after pivot_root (nothing above /)"),
    cap("SYS_PTRACE", 19, false, "drop: trace and inject into other processes"),
    cap("SYS_PACCT", 20, false, "drop: acct(2) switches the host's process accounting"),
    cap("SYS_ADMIN", 21, false, "drop: mount, unshare, setns, sethostname...: the 'new root'"),
    cap("SYS_BOOT", 22, false, "drop: reboot(2) and kexec_load(2) restart the host"),
    cap("SYS_NICE", 23, false, "drop: real-time priorities starve the host's processes"),
    cap("SYS_RESOURCE", 24, false, "drop: exceed rlimits and quotas"),
    cap("SYS_TIME", 25, false, "drop: the clock is not namespaced: setting it sets the host's"),
    cap("SYS_TTY_CONFIG", 26, false, "drop: vhangup(2) and the host's terminals"),
    cap("MKNOD", 27, true, "keep: create device nodes; which ones open is the device cgroup's job"),
    cap("LEASE", 28, false, "drop: file leases can stall the host's processes"),
    cap("AUDIT_WRITE", 29, true, "keep: login and sshd write to the audit log"),
    cap("AUDIT_CONTROL", 30, false, "drop: change the host's audit rules"),
    cap("SETFCAP", 31, true, "keep: set file capabilities in the image (setcap)"),
    cap("MAC_OVERRIDE", 32, false, "drop: bypass SELinux and Smack"),
    cap("MAC_ADMIN", 33, false, "drop: change the host's MAC policy"),
    cap("SYSLOG", 34, false, "drop: read and clear the kernel log (it leaks addresses)"),
    cap("WAKE_ALARM", 35, false, "drop: wake the host from suspend"),
    cap("BLOCK_SUSPEND", 36, false, "drop: keep the host from suspending"),
    cap("AUDIT_READ", 37, false, "drop: read the host's audit log"),
    cap("PERFMON", 38, false, "drop: perf_event_open observes the whole machine"),
    cap("BPF", 39, false, "drop: load eBPF programs into the host's kernel"),
    cap("CHECKPOINT_RESTORE", 40, false, "drop: set_tid and friends, for CRIU only"),
];
// ANCHOR_END: capabilities

/// A set of capabilities as the kernel stores it: bit N is capability N.
pub type CapMask = u64;

/// Docker's default set as a mask: `0x00000000a80425fb`, what `CapBnd:` in
/// `/proc/self/status` shows in a default container.
pub fn docker_default_caps() -> CapMask {
    CAPABILITIES
        .iter()
        .filter(|c| c.docker_default)
        .fold(0, |m, c| m | 1 << c.number)
}

pub(crate) fn all_caps() -> CapMask {
    CAPABILITIES.iter().fold(0, |m, c| m | 1 << c.number)
}

/// `sys_admin`, `CAP_SYS_ADMIN` and `SYS_ADMIN` are one capability, as in
/// docker; `ALL` stands for every one.
pub(crate) fn parse_cap(name: &str) -> anyhow::Result<Option<Capability>> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if bare == "ALL" {
        return Ok(None);
    }
    CAPABILITIES
        .iter()
        .find(|c| c.name == bare)
        .copied()
        .map(Some)
        .ok_or_else(|| anyhow::anyhow!("unknown capability: {name:?} (see capabilities(7))"))
}

/// The capability set of a container, by docker's rules: `--privileged` gets
/// them all; `--cap-add ALL` every one but those dropped; `--cap-drop ALL`
/// only those added; otherwise the default set, minus drops, plus adds.
pub fn resolve_caps(privileged: bool, add: &[String], drop: &[String]) -> anyhow::Result<CapMask> {
    if privileged {
        return Ok(all_caps());
    }
    let parse = |names: &[String]| -> anyhow::Result<(bool, CapMask)> {
        let mut all = false;
        let mut mask = 0;
        for name in names {
            match parse_cap(name)? {
                None => all = true,
                Some(c) => mask |= 1 << c.number,
            }
        }
        Ok((all, mask))
    };
    let (add_all, add) = parse(add)?;
    let (drop_all, drop) = parse(drop)?;
    Ok(if add_all {
        all_caps() & !drop
    } else if drop_all {
        add
    } else {
        (docker_default_caps() & !drop) | add
    })
}

/// Capability names in a mask, as `capsh --decode` prints them.
pub fn cap_names(mask: CapMask) -> Vec<String> {
    CAPABILITIES
        .iter()
        .filter(|c| mask & (1 << c.number) != 0)
        .map(|c| format!("CAP_{}", c.name))
        .collect()
}

/// The highest capability this kernel knows.
fn last_cap() -> u32 {
    fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

// ANCHOR: apply_caps
/// Reduce this process's capability sets to `keep`.
///
/// Five sets, five reasons:
/// - **bounding**: the ceiling for every later `execve`. Root's permitted set
///   after exec is its bounding set, so this is the set that matters.
///   `prctl(PR_CAPBSET_DROP)` removes one capability at a time, for good.
/// - **ambient**: capabilities a non-root program keeps across exec; cleared.
/// - **effective, permitted**: what we have right now; `capset(2)`.
/// - **inheritable**: left *empty*, as Docker does since CVE-2022-24769: a
///   non-root program with file-inheritable capabilities would otherwise gain
///   them at exec, a surprise no one wants.
pub(crate) fn apply_capabilities(keep: CapMask) -> anyhow::Result<()> {
    // capset(2) can only keep what we have. Root on the host usually has
    // every capability, but the lab may itself run in a container that took
    // some away: `--privileged` then means "all that there is".
    let keep = keep & current_permitted()?;
    for number in 0..=last_cap() {
        if keep & (1 << number) == 0 {
            // SAFETY: prctl with integer arguments only.
            let ret =
                unsafe { libc::prctl(libc::PR_CAPBSET_DROP, number as libc::c_ulong, 0, 0, 0) };
            Errno::result(ret).with_context(|| format!("prctl(PR_CAPBSET_DROP, {number})"))?;
        }
    }
    // SAFETY: as above.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    Errno::result(ret).context("prctl(PR_CAP_AMBIENT_CLEAR_ALL)")?;

    // capset(2) with _LINUX_CAPABILITY_VERSION_3: two 32-bit halves per set.
    let header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let half = |shift: u32| Data {
        effective: (keep >> shift) as u32,
        permitted: (keep >> shift) as u32,
        inheritable: 0,
    };
    let data = [half(0), half(32)];
    // SAFETY: header and data are the structs capset(2) expects, alive for the call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    Errno::result(ret).context("capset(effective = permitted = kept, inheritable = none)")?;
    Ok(())
}
// ANCHOR_END: apply_caps

// ANCHOR: cap_sets
/// The five sets one by one, as an OCI `config.json` gives them
/// (`process.capabilities.bounding`, `.effective`, `.permitted`,
/// `.inheritable`, `.ambient`). Docker and `dockyard run` give one set for
/// all (see [`apply_capabilities`]); a CRI runtime or a hand-written bundle
/// may give different ones, e.g. an `inheritable` and `ambient`
/// `CAP_NET_BIND_SERVICE` so that a non-root program keeps it across exec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: CapMask,
    pub effective: CapMask,
    pub permitted: CapMask,
    pub inheritable: CapMask,
    pub ambient: CapMask,
}

impl CapSets {
    /// Each set from its names (`CAP_CHOWN`, `chown`, ...); an unknown name
    /// is an error, as in runc.
    pub fn from_names(
        bounding: &[String],
        effective: &[String],
        permitted: &[String],
        inheritable: &[String],
        ambient: &[String],
    ) -> anyhow::Result<CapSets> {
        let mask = |names: &[String]| -> anyhow::Result<CapMask> {
            let mut m = 0;
            for n in names {
                m |= match parse_cap(n)? {
                    Some(c) => 1 << c.number,
                    None => all_caps(),
                };
            }
            Ok(m)
        };
        Ok(CapSets {
            bounding: mask(bounding)?,
            effective: mask(effective)?,
            permitted: mask(permitted)?,
            inheritable: mask(inheritable)?,
            ambient: mask(ambient)?,
        })
    }
}

/// Set the five sets to `sets`, in the order the kernel allows (runc's):
/// 1. **bounding** first, while CAP_SETPCAP (needed to drop from it) is
///    still in our effective set;
/// 2. **effective, permitted, inheritable** with one `capset(2)`: permitted
///    may only shrink, effective must lie within it, and inheritable within
///    the bounding set just made;
/// 3. **ambient** last: cleared, then each one raised with
///    `prctl(PR_CAP_AMBIENT_RAISE)`, which the kernel allows only for a
///    capability that is both permitted and inheritable (capabilities(7)).
///
/// After `execve` the kernel computes the new sets from these: root gets
/// permitted = effective = bounding | inheritable | ambient (with
/// no_new_privs, no more than the permitted set it had), any other user
/// permitted = effective = ambient (for a program without file
/// capabilities). That is why ambient exists.
pub(crate) fn apply_capability_sets(sets: &CapSets) -> anyhow::Result<()> {
    drop_bounding(sets.bounding)?;
    set_capability_sets(sets)
}

/// [`apply_capability_sets`] for a process that becomes `user`, not root,
/// in runc's order. Switching away from uid 0 clears the permitted,
/// effective and ambient sets, so the switch happens *between* the steps:
/// 1. the bounding set, and the inheritable set as given (a non-root
///    process may later only keep its inheritable set, not grow it);
/// 2. `prctl(PR_SET_KEEPCAPS, 1)`: the kernel keeps the permitted set
///    across the uid change (effective and ambient are still cleared);
/// 3. the user switch, while CAP_SETUID and CAP_SETGID are still ours even
///    when the config's sets lack them;
/// 4. `PR_SET_KEEPCAPS` off again, then effective, permitted and ambient
///    as given: a non-root program keeps only its ambient set across exec.
pub(crate) fn switch_user_keeping_sets(sets: &CapSets, user: &crate::RunAs) -> anyhow::Result<()> {
    drop_bounding(sets.bounding)?;
    let have = current_permitted()?;
    capset(have, have, sets.inheritable & sets.bounding)
        .context("capset(inheritable) before the user switch")?;
    set_keepcaps(true)?;
    crate::switch_user(user)?;
    set_keepcaps(false)?;
    set_capability_sets(sets)
}

/// `prctl(PR_SET_KEEPCAPS)`: whether a change of uid away from 0 keeps the
/// permitted set.
fn set_keepcaps(on: bool) -> anyhow::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, on as libc::c_ulong, 0, 0, 0) };
    Errno::result(ret).with_context(|| format!("prctl(PR_SET_KEEPCAPS, {})", on as u8))?;
    Ok(())
}

/// Drop every capability outside `bounding` from the bounding set
/// (`prctl(PR_CAPBSET_DROP)` needs CAP_SETPCAP in the effective set).
fn drop_bounding(bounding: CapMask) -> anyhow::Result<()> {
    for number in 0..=last_cap() {
        if bounding & (1 << number) == 0 {
            // SAFETY: prctl with integer arguments only.
            let ret =
                unsafe { libc::prctl(libc::PR_CAPBSET_DROP, number as libc::c_ulong, 0, 0, 0) };
            Errno::result(ret).with_context(|| format!("prctl(PR_CAPBSET_DROP, {number})"))?;
        }
    }
    Ok(())
}

/// Effective, permitted and inheritable with one `capset(2)`, then ambient.
fn set_capability_sets(sets: &CapSets) -> anyhow::Result<()> {
    // As in apply_capabilities: only what we have can be kept.
    let have = current_permitted()?;
    // The kernel refuses an inheritable capability outside the bounding
    // set, and an ambient one that is not both permitted and inheritable.
    // A config often lists each set on its own (runc's `spec` writes all
    // five; a caller then shrinks only some): what cannot be held is left
    // out rather than failing the container.
    let permitted = sets.permitted & have;
    let inheritable = sets.inheritable & sets.bounding;
    capset(sets.effective & permitted, permitted, inheritable)
        .context("capset(effective, permitted, inheritable)")?;
    set_ambient(sets.ambient & permitted & inheritable)
}

/// capset(2) with _LINUX_CAPABILITY_VERSION_3: two 32-bit halves per set.
fn capset(effective: CapMask, permitted: CapMask, inheritable: CapMask) -> anyhow::Result<()> {
    let header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let half = |shift: u32| Data {
        effective: (effective >> shift) as u32,
        permitted: (permitted >> shift) as u32,
        inheritable: (inheritable >> shift) as u32,
    };
    let data = [half(0), half(32)];
    // SAFETY: header and data are the structs capset(2) expects, alive for the call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    Errno::result(ret)?;
    Ok(())
}

/// Clear the ambient set, then raise each capability of `ambient`.
pub(crate) fn set_ambient(ambient: CapMask) -> anyhow::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    Errno::result(ret).context("prctl(PR_CAP_AMBIENT_CLEAR_ALL)")?;
    for number in 0..=last_cap() {
        if ambient & (1 << number) != 0 {
            // SAFETY: as above.
            let ret = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    number as libc::c_ulong,
                    0,
                    0,
                )
            };
            Errno::result(ret).with_context(|| {
                format!("prctl(PR_CAP_AMBIENT_RAISE, {number}) (an ambient capability must be permitted and inheritable)")
            })?;
        }
    }
    Ok(())
}
// ANCHOR_END: cap_sets

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// This process's permitted set, from capget(2).
fn current_permitted() -> anyhow::Result<CapMask> {
    let header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: header and data are the structs capget(2) expects.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &header, data.as_mut_ptr()) };
    Errno::result(ret).context("capget")?;
    Ok(data[0].permitted as u64 | (data[1].permitted as u64) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_set_is_dockers_mask() {
        assert_eq!(docker_default_caps(), 0xa804_25fb);
        for (i, c) in CAPABILITIES.iter().enumerate() {
            assert_eq!(c.number as usize, i, "{}", c.name);
            assert!(
                c.why
                    .starts_with(if c.docker_default { "keep" } else { "drop" }),
                "{}",
                c.name
            );
        }
        assert_eq!(cap_names(docker_default_caps()).len(), 14);
    }

    #[test]
    fn five_sets_from_oci_names() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let sets = CapSets::from_names(
            &s(&["CAP_CHOWN", "CAP_KILL"]),
            &s(&["CAP_CHOWN"]),
            &s(&["CAP_CHOWN", "kill"]),
            &s(&["CAP_KILL"]),
            &[],
        )
        .unwrap();
        assert_eq!(
            sets,
            CapSets {
                bounding: 1 | 1 << 5,
                effective: 1,
                permitted: 1 | 1 << 5,
                inheritable: 1 << 5,
                ambient: 0,
            }
        );
        assert!(CapSets::from_names(&s(&["CAP_NOPE"]), &[], &[], &[], &[]).is_err());
    }

    #[test]
    fn cap_add_and_drop_follow_docker() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let default = docker_default_caps();
        assert_eq!(resolve_caps(false, &[], &[]).unwrap(), default);
        assert_eq!(resolve_caps(true, &[], &s(&["ALL"])).unwrap(), all_caps());
        assert_eq!(
            resolve_caps(false, &s(&["sys_admin"]), &s(&["CAP_CHOWN"])).unwrap(),
            (default | 1 << 21) & !1
        );
        assert_eq!(
            resolve_caps(false, &s(&["NET_ADMIN"]), &s(&["all"])).unwrap(),
            1 << 12
        );
        assert_eq!(
            resolve_caps(false, &s(&["ALL"]), &s(&["SYS_ADMIN"])).unwrap(),
            all_caps() & !(1 << 21)
        );
        assert!(resolve_caps(false, &s(&["SYS_WIZARD"]), &[]).is_err());
    }
}
