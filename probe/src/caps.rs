//! Capabilities: root's power, cut into 41 pieces.
//!
//! Since Linux 2.2 "being root" is not one privilege but a set of bits, one per
//! capability: `CAP_CHOWN` (bit 0) lets a process chown any file,
//! `CAP_NET_ADMIN` (bit 12) lets it configure interfaces, `CAP_SYS_ADMIN`
//! (bit 21) lets it mount, and so on. Every thread carries five sets, shown as
//! hex bit masks in `/proc/self/status`:
//!
//! ```text
//! $ grep Cap /proc/self/status
//! CapInh: 0000000000000000   inheritable: may be kept across execve of a file with the same file caps
//! CapPrm: 000001ffffffffff   permitted:   the most the thread may make effective
//! CapEff: 000001ffffffffff   effective:   what the kernel actually checks
//! CapBnd: 000001ffffffffff   bounding:    the ceiling for anything gained on execve
//! CapAmb: 0000000000000000   ambient:     kept across execve of an ordinary program
//! ```
//!
//! A container runtime drops most of them (Docker keeps 14), so root in a
//! container is a much weaker root. `capsh --decode=<hex>` does what
//! [`decode`] does here.

use serde::Serialize;

/// Capability names by bit number, from `include/uapi/linux/capability.h`.
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// One capability set as the kernel printed it, and the names of its bits.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct CapSet {
    pub hex: String,
    pub names: Vec<String>,
}

/// All five sets of the calling thread.
#[derive(Debug, Serialize)]
pub struct Capabilities {
    pub inheritable: CapSet,
    pub permitted: CapSet,
    pub effective: CapSet,
    pub bounding: CapSet,
    pub ambient: CapSet,
}

/// Decodes one hex mask such as `000001ffffffffff` into capability names.
/// Bits the table does not know (a newer kernel) are named `CAP_<bit>`.
pub fn decode(hex: &str) -> Result<CapSet, String> {
    let mask = u64::from_str_radix(hex.trim(), 16)
        .map_err(|e| format!("capability mask {hex:?} is not hex: {e}"))?;
    let names = (0..64)
        .filter(|bit| mask & (1u64 << bit) != 0)
        .map(|bit| match NAMES.get(bit) {
            Some(name) => (*name).to_string(),
            None => format!("CAP_{bit}"),
        })
        .collect();
    Ok(CapSet {
        hex: hex.trim().to_string(),
        names,
    })
}

/// Reads the five `Cap*:` lines out of the text of `/proc/self/status`.
pub fn from_status(status: &str) -> Result<Capabilities, String> {
    let set = |key: &str| -> Result<CapSet, String> {
        let value = status_field(status, key)
            .ok_or_else(|| format!("no {key}: line in /proc/self/status"))?;
        decode(value)
    };
    Ok(Capabilities {
        inheritable: set("CapInh")?,
        permitted: set("CapPrm")?,
        effective: set("CapEff")?,
        bounding: set("CapBnd")?,
        ambient: set("CapAmb")?,
    })
}

/// The value of a `Key:\tvalue` line of `/proc/<pid>/status`.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then_some(v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_root_set_has_all_41_names() {
        let set = decode("000001ffffffffff").expect("valid hex");
        assert_eq!(set.names.len(), 41);
        assert_eq!(set.names[0], "CAP_CHOWN");
        assert_eq!(set.names[40], "CAP_CHECKPOINT_RESTORE");
    }

    #[test]
    fn docker_default_set() {
        // Docker's default: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID
        // SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
        let set = decode("00000000a80425fb").expect("valid hex");
        assert!(set.names.contains(&"CAP_SYS_CHROOT".to_string()));
        assert!(!set.names.contains(&"CAP_SYS_ADMIN".to_string()));
        assert_eq!(set.names.len(), 14);
    }

    #[test]
    fn unknown_bits_are_numbered() {
        let set = decode("0000060000000000").expect("valid hex");
        assert_eq!(set.names, vec!["CAP_41", "CAP_42"]);
    }

    #[test]
    fn reads_status_lines() {
        let status = "Name:\tprobe\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000001\n\
                      CapEff:\t0000000000000001\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n";
        let caps = from_status(status).expect("all five lines present");
        assert_eq!(caps.effective.names, vec!["CAP_CHOWN"]);
        assert!(caps.ambient.names.is_empty());
        assert!(from_status("Name:\tprobe\n").is_err());
    }
}
