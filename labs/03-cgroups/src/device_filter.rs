//! # The device allow list on cgroup v2: an eBPF program
//!
//! cgroup v2 has no `devices.allow`. Instead, the kernel asks a small program,
//! attached to the cgroup, about every open(2) and mknod(2) of a device node
//! by a process in it (`BPF_PROG_TYPE_CGROUP_DEVICE`). The program reads one
//! `struct bpf_cgroup_dev_ctx` and returns 1 (allow) or 0 (deny, EPERM):
//!
//! ```text
//! struct bpf_cgroup_dev_ctx {
//!     __u32 access_type;  /* (access << 16) | type */
//!     __u32 major;
//!     __u32 minor;
//! };
//! type:   BPF_DEVCG_DEV_BLOCK = 1, BPF_DEVCG_DEV_CHAR = 2
//! access: BPF_DEVCG_ACC_MKNOD = 1, BPF_DEVCG_ACC_READ = 2, BPF_DEVCG_ACC_WRITE = 4
//! ```
//!
//! The program is written here instruction by instruction, as runc's
//! `libcontainer/cgroups/devices/devicefilter` does: load the four fields
//! into registers, then one block per allowed rule that jumps to the next
//! block on the first field that does not match, and returns 1 when every
//! field does. After the last block: return 0, so anything not listed is
//! denied. `bpftool prog dump xlated` shows the same thing for a runc
//! container:
//!
//! ```text
//! bpftool cgroup show /sys/fs/cgroup/system.slice/docker-<id>.scope
//! bpftool prog dump xlated id <ID>
//! ```
//!
//! Loading is `bpf(BPF_PROG_LOAD)`, which runs the kernel's verifier (a
//! program that could read out of bounds or never return is refused, with a
//! log that says why); attaching is `bpf(BPF_PROG_ATTACH)` on the cgroup
//! directory's file descriptor. `BPF_F_ALLOW_MULTI` lets programs that other
//! tools attached to parent groups keep running too: the kernel runs them all
//! and allows an access only if every one does, so a container can never get
//! more than its parent's list.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context};

/// `bpf(2)` commands, program and attach types, from `<linux/bpf.h>`.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// `BPF_DEVCG_DEV_*` and `BPF_DEVCG_ACC_*`.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One allow rule, parsed from the v1 syntax `TYPE MAJOR:MINOR ACCESS`
/// (`c 1:3 rwm`, `c 136:* rwm`, `b *:* m`, or `a` for everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    /// `b` or `c`; `a` (any type) is `None`.
    pub kind: Option<char>,
    /// `None` is `*`, any number.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// `ACC_*` bits.
    pub access: u8,
}

impl DeviceRule {
    pub fn parse(rule: &str) -> anyhow::Result<DeviceRule> {
        let bad = |why: &str| anyhow::anyhow!("device rule {rule:?}: {why} (e.g. 'c 1:3 rwm')");
        let mut words = rule.split_whitespace();
        let kind = match words.next() {
            Some("a") => None,
            Some("b") => Some('b'),
            Some("c") => Some('c'),
            _ => return Err(bad("the type is a, b or c")),
        };
        // `a` alone is the v1 shorthand for `a *:* rwm`.
        let numbers = words.next().unwrap_or("*:*");
        let access = words.next().unwrap_or("rwm");
        if words.next().is_some() {
            return Err(bad("three words at most"));
        }
        let (major, minor) = numbers.split_once(':').ok_or_else(|| bad("MAJOR:MINOR"))?;
        let number = |s: &str| -> anyhow::Result<Option<u32>> {
            match s {
                "*" => Ok(None),
                // Majors go to 4095 and minors to 2^20 - 1 (MINORBITS): both
                // fit the 32-bit immediate of a BPF compare.
                _ => match s.parse::<u32>() {
                    Ok(n) if n < 1 << 20 => Ok(Some(n)),
                    _ => Err(bad("a device number is a number below 2^20, or *")),
                },
            }
        };
        let mut bits = 0;
        for c in access.chars() {
            bits |= match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => return Err(bad("access is made of r, w and m")),
            };
        }
        if bits == 0 {
            return Err(bad("no access"));
        }
        Ok(DeviceRule {
            kind,
            major: number(major)?,
            minor: number(minor)?,
            access: bits,
        })
    }
}

/// One eBPF instruction, as `struct bpf_insn`: an opcode, the destination
/// register in the low 4 bits and the source in the high 4, a jump offset
/// (counted in instructions, from the next one) and an immediate.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

/// The opcodes this program needs (`<linux/bpf_common.h>`, `<linux/bpf.h>`).
mod op {
    /// `dst = *(u32 *)(src + off)`: BPF_LDX | BPF_MEM | BPF_W.
    pub const LDX_W: u8 = 0x61;
    /// 32-bit ALU with an immediate: BPF_ALU | op | BPF_K.
    pub const AND32_IMM: u8 = 0x54;
    pub const RSH32_IMM: u8 = 0x74;
    pub const MOV32_IMM: u8 = 0xb4;
    /// `dst = src` (32 bits): BPF_ALU | BPF_MOV | BPF_X.
    pub const MOV32_REG: u8 = 0xbc;
    /// `if dst != imm goto +off`: BPF_JMP | BPF_JNE | BPF_K, and with a register.
    pub const JNE_IMM: u8 = 0x55;
    pub const JNE_REG: u8 = 0x5d;
    /// Return R0: BPF_JMP | BPF_EXIT.
    pub const EXIT: u8 = 0x95;
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | src << 4,
        off,
        imm,
    }
}

// ANCHOR: device_program
/// The program for an allow list: default deny, one block per rule.
///
/// Registers: R1 holds the context pointer on entry; R2 gets the device
/// type, R3 the access asked for, R4 the major, R5 the minor, and R0 the
/// answer.
pub fn device_program(rules: &[DeviceRule]) -> Vec<Insn> {
    use op::*;
    let mut p = vec![
        // R2 = ctx->access_type & 0xffff: the type (block or char).
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_IMM, 2, 0, 0, 0xffff),
        // R3 = ctx->access_type >> 16: the access (mknod, read, write).
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_IMM, 3, 0, 0, 16),
        // R4 = ctx->major, R5 = ctx->minor.
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for rule in rules {
        // Each test is a "jump to the next block if this field differs":
        // build the block, then fill in how far the next block is.
        let mut block: Vec<Insn> = Vec::new();
        if let Some(kind) = rule.kind {
            let ty = if kind == 'b' { DEV_BLOCK } else { DEV_CHAR };
            block.push(insn(JNE_IMM, 2, 0, 0, ty));
        }
        if rule.access != ACC_ALL {
            // Allowed only if every bit asked for is in the rule:
            // (R3 & access) must equal R3. R1 is free now: the context was
            // read in full above.
            block.push(insn(MOV32_REG, 1, 3, 0, 0));
            block.push(insn(AND32_IMM, 1, 0, 0, rule.access as i32));
            block.push(insn(JNE_REG, 1, 3, 0, 0));
        }
        if let Some(major) = rule.major {
            block.push(insn(JNE_IMM, 4, 0, 0, major as i32));
        }
        if let Some(minor) = rule.minor {
            block.push(insn(JNE_IMM, 5, 0, 0, minor as i32));
        }
        // Every field matched: allow.
        block.push(insn(MOV32_IMM, 0, 0, 0, 1));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JNE_IMM || ins.code == JNE_REG {
                // From the instruction after this one to the end of the block.
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    // No rule matched: deny. The process gets EPERM.
    p.push(insn(MOV32_IMM, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}
// ANCHOR_END: device_program

/// `union bpf_attr` for BPF_PROG_LOAD, as far as we use it; the kernel
/// treats the fields after these as zero.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// `union bpf_attr` for BPF_PROG_ATTACH and BPF_PROG_DETACH.
#[repr(C)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// `union bpf_attr` for BPF_PROG_QUERY.
#[repr(C)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a #[repr(C)] prefix of `union bpf_attr` that lives
    // for the call, and its size is passed along; the kernel reads (and for
    // QUERY writes) only that many bytes and the buffers it points to.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

// ANCHOR: load
/// Load a device program with bpf(BPF_PROG_LOAD). The kernel's verifier
/// checks it first; if it refuses, the error carries the verifier's log.
pub fn load(insns: &[Insn]) -> anyhow::Result<OwnedFd> {
    // The license matters to the kernel: GPL-only helpers are refused to
    // other programs. This one calls no helper; Apache-2.0 is runc's choice.
    let license = CString::new("Apache-2.0").expect("no NUL");
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"dockyard_dev");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..ProgLoadAttr::default()
    };
    // First without a log: a verbose log of a good program is only cost.
    if let Ok(fd) = bpf(BPF_PROG_LOAD, &mut attr) {
        // SAFETY: the kernel returned a new file descriptor that we own.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    }
    // Again, with a log buffer, to say why.
    let mut log = vec![0u8; 256 * 1024];
    attr.log_level = 1;
    attr.log_size = log.len() as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    match bpf(BPF_PROG_LOAD, &mut attr) {
        // SAFETY: as above.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let hint = match e.raw_os_error() {
                Some(libc::EPERM) => " (loading BPF programs needs CAP_BPF or CAP_SYS_ADMIN)",
                Some(libc::EINVAL) if text.is_empty() => {
                    " (does this kernel have CONFIG_CGROUP_BPF?)"
                }
                _ => "",
            };
            bail!(
                "bpf(BPF_PROG_LOAD) of a {}-instruction device program: {e}{hint}{}",
                insns.len(),
                if text.trim().is_empty() {
                    String::new()
                } else {
                    format!("; the verifier says:\n{}", text.trim_end())
                }
            )
        }
    }
}
// ANCHOR_END: load

fn open_dir(dir: &Path) -> anyhow::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("opening cgroup {}", dir.display()))?;
    Ok(fd)
}

// ANCHOR: attach
/// Attach a loaded device program to the cgroup directory `dir`. From now
/// on, every open and mknod of a device by a process in it, or in a group
/// below it, asks the program. The attachment holds the program: it stays
/// until it is detached or the group is removed.
pub fn attach(dir: &Path, program: &OwnedFd) -> anyhow::Result<()> {
    let cgroup = open_dir(dir)?;
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: program.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        // Keep the programs of the groups above running as well.
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).with_context(|| {
        format!(
            "bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE) to {} (is it a cgroup v2 directory?)",
            dir.display()
        )
    })?;
    Ok(())
}
// ANCHOR_END: attach

/// Detach `program` from `dir`.
pub fn detach(dir: &Path, program: &OwnedFd) -> anyhow::Result<()> {
    let cgroup = open_dir(dir)?;
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: program.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: 0,
    };
    bpf(BPF_PROG_DETACH, &mut attr)
        .with_context(|| format!("bpf(BPF_PROG_DETACH) from {}", dir.display()))?;
    Ok(())
}

/// The IDs of the device programs attached to `dir` itself, as
/// `bpftool cgroup show DIR` lists them.
pub fn attached(dir: &Path) -> anyhow::Result<Vec<u32>> {
    let cgroup = open_dir(dir)?;
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        query_flags: 0,
        attach_flags: 0,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
    };
    bpf(BPF_PROG_QUERY, &mut attr)
        .with_context(|| format!("bpf(BPF_PROG_QUERY) on {}", dir.display()))?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_like_devices_allow() {
        assert_eq!(
            DeviceRule::parse("c 1:3 rwm").unwrap(),
            DeviceRule {
                kind: Some('c'),
                major: Some(1),
                minor: Some(3),
                access: ACC_ALL
            }
        );
        assert_eq!(
            DeviceRule::parse("b *:* m").unwrap(),
            DeviceRule {
                kind: Some('b'),
                major: None,
                minor: None,
                access: ACC_MKNOD
            }
        );
        assert_eq!(
            DeviceRule::parse("a").unwrap(),
            DeviceRule::parse("a *:* rwm").unwrap()
        );
        for bad in [
            "",
            "x 1:3 rwm",
            "c 1 rwm",
            "c 1:3 rwx",
            "c 1:3 ",
            "c -1:3 r",
            "c 1:3 r w",
        ] {
            let e = DeviceRule::parse(bad);
            if bad == "c 1:3 " {
                // A missing access is rwm, as in devices.allow.
                assert!(e.is_ok());
                continue;
            }
            assert!(e.is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn each_rule_is_a_block_that_skips_to_the_next() {
        let rules = [
            DeviceRule::parse("c 1:3 rwm").unwrap(),
            DeviceRule::parse("b *:* m").unwrap(),
        ];
        let p = device_program(&rules);
        // 6 to read the context, 3 + 2 for /dev/null, 4 + 2 for b *:* m, 2 to deny.
        assert_eq!(p.len(), 6 + 5 + 6 + 2);
        // c 1:3 rwm: type, major, minor (all access: no mask); each jump
        // lands on the first instruction of the next block.
        assert_eq!(p[6], insn(op::JNE_IMM, 2, 0, 4, DEV_CHAR));
        assert_eq!(p[7], insn(op::JNE_IMM, 4, 0, 3, 1));
        assert_eq!(p[8], insn(op::JNE_IMM, 5, 0, 2, 3));
        assert_eq!(p[9], insn(op::MOV32_IMM, 0, 0, 0, 1));
        assert_eq!(p[10], insn(op::EXIT, 0, 0, 0, 0));
        // b *:* m: type, then the access mask; no number is compared.
        assert_eq!(p[11], insn(op::JNE_IMM, 2, 0, 5, DEV_BLOCK));
        assert_eq!(p[12], insn(op::MOV32_REG, 1, 3, 0, 0));
        assert_eq!(p[13], insn(op::AND32_IMM, 1, 0, 0, ACC_MKNOD as i32));
        assert_eq!(p[14], insn(op::JNE_REG, 1, 3, 2, 0));
        // The end: return 0.
        assert_eq!(p[17], insn(op::MOV32_IMM, 0, 0, 0, 0));
        assert_eq!(p[18], insn(op::EXIT, 0, 0, 0, 0));
    }
}
