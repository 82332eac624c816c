//! # 32-bit x86 calls on an x86_64 kernel
//!
//! An x86_64 kernel runs 32-bit x86 programs too: they enter with
//! `int 0x80` (or `sysenter`), with i386 system call numbers, and seccomp
//! tells them apart by `seccomp_data.arch`, `AUDIT_ARCH_I386`. seccompiler
//! only builds programs for the native architecture, so this half is
//! written here, in classic BPF, the language of seccomp filters:
//!
//! ```text
//! struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; };
//!
//!   ld  [0]                 ; A = nr
//!   jeq #20, 0, 1           ; getpid? (its i386 number) else skip one
//!   ret #ALLOW
//!   ld  [0]                 ; the next call's block
//!   ...
//!   ret #ERRNO(EPERM)       ; nothing matched: the profile's default
//! ```
//!
//! A call with argument conditions compares the low 32 bits of each
//! argument (`args[i]` at offset 16 + 8i; x86 is little-endian). i386
//! arguments are 32-bit registers that the kernel zero-extends, so the
//! high half is always 0, and libseccomp compares only the low half on
//! 32-bit architectures too.

use std::collections::BTreeMap;

use anyhow::bail;
use seccompiler::{sock_filter, BpfProgram, SeccompCmpOp};

/// `AUDIT_ARCH_I386` from `<linux/audit.h>`: EM_386 | __AUDIT_ARCH_LE.
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;

/// One rule's conditions: (argument index, comparison, value), all of
/// which must hold.
pub type Conditions = Vec<(u8, (SeccompCmpOp, u64))>;
/// Rules per i386 call number; `None` means "whatever the arguments".
pub type RuleMap = BTreeMap<u32, Option<Vec<Conditions>>>;

/// Add a profile rule's `names` with its `conditions`. Names that i386
/// does not have (`arch_prctl`, `newfstatat`...) are skipped, as
/// libseccomp does; the 32-bit ones (`socketcall`, `mmap2`, `_llseek`)
/// that x86_64 skipped are found here.
pub fn add<'a>(
    map: &mut RuleMap,
    names: impl Iterator<Item = &'a String>,
    conditions: &Conditions,
) {
    for name in names {
        let Ok(sysno) = name.parse::<syscalls::x86::Sysno>() else {
            continue;
        };
        let entry = map
            .entry(sysno.id() as u32)
            .or_insert_with(|| Some(Vec::new()));
        match (entry.as_mut(), conditions.is_empty()) {
            (_, true) => *entry = None,
            (Some(rules), false) => rules.push(conditions.clone()),
            (None, false) => {}
        }
    }
}

// Classic BPF opcodes (`<linux/bpf_common.h>`).
pub(crate) const LD_W_ABS: u16 = 0x20; // A = *(u32 *)(data + k)
pub(crate) const JEQ: u16 = 0x15; // if A == k
pub(crate) const JGT: u16 = 0x25; // if A > k (unsigned)
pub(crate) const JGE: u16 = 0x35; // if A >= k
pub(crate) const JA: u16 = 0x05; // goto +k
const AND: u16 = 0x54; // A &= k
pub(crate) const RET: u16 = 0x06; // return k

pub(crate) fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

pub(crate) fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// A jump from inside a block to its end, `to_end` instructions after
/// the one that follows: too far for the 8-bit jt/jf is an error.
fn short(to_end: usize) -> anyhow::Result<u8> {
    u8::try_from(to_end).map_err(|_| anyhow::anyhow!("seccomp rule too long for a BPF jump"))
}

/// What one condition compiles to, given that the high half of an i386
/// argument is 0. `Ok(None)`: the condition always holds; `Err(())`: it
/// never does, so its rule can be left out. Each test jumps to the
/// placeholder "fail" (patched to the end of the rule) when it fails.
fn condition(index: u8, op: &SeccompCmpOp, value: u64) -> Result<Option<Vec<Test>>, ()> {
    let hi = (value >> 32) as u32;
    let lo = value as u32;
    let load = Test::Stmt(stmt(LD_W_ABS, 16 + 8 * index as u32));
    Ok(Some(match op {
        // arg == v: pass on equal, else fail.
        SeccompCmpOp::Eq if hi != 0 => return Err(()),
        SeccompCmpOp::Eq => vec![load, Test::FailUnless(JEQ, lo)],
        SeccompCmpOp::Ne if hi != 0 => return Ok(None),
        SeccompCmpOp::Ne => vec![load, Test::FailIf(JEQ, lo)],
        SeccompCmpOp::Gt if hi != 0 => return Err(()),
        SeccompCmpOp::Gt => vec![load, Test::FailUnless(JGT, lo)],
        SeccompCmpOp::Ge if hi != 0 => return Err(()),
        SeccompCmpOp::Ge => vec![load, Test::FailUnless(JGE, lo)],
        SeccompCmpOp::Lt if hi != 0 => return Ok(None),
        SeccompCmpOp::Lt => vec![load, Test::FailIf(JGE, lo)],
        SeccompCmpOp::Le if hi != 0 => return Ok(None),
        SeccompCmpOp::Le => vec![load, Test::FailIf(JGT, lo)],
        // (arg & mask) == v; the masked high half is 0.
        SeccompCmpOp::MaskedEq(_) if hi != 0 => return Err(()),
        SeccompCmpOp::MaskedEq(mask) => vec![
            load,
            Test::Stmt(stmt(AND, *mask as u32)),
            Test::FailUnless(JEQ, lo),
        ],
    }))
}

enum Test {
    Stmt(sock_filter),
    /// Go on if the jump's test holds, else fail.
    FailUnless(u16, u32),
    /// Fail if the jump's test holds, else go on.
    FailIf(u16, u32),
}

// ANCHOR: i386_program
/// The i386 half of a filter: `matched` for the calls in `rules`,
/// `mismatch` for every other call. One block per call number, each
/// starting by loading the number again, since argument checks load
/// into the same accumulator.
pub fn program(rules: &RuleMap, mismatch: u32, matched: u32) -> anyhow::Result<BpfProgram> {
    // The calls without conditions first, as ranges (see `ranges`):
    // a few dozen instructions instead of two per call.
    let plain: Vec<u32> = rules
        .iter()
        .filter(|(_, r)| r.is_none())
        .map(|(nr, _)| *nr)
        .collect();
    let mut out = super::ranges::program(None, &plain, matched)?;
    for (nr, rules) in rules.iter().filter(|(_, r)| r.is_some()) {
        // The block after its first two instructions.
        let mut body: Vec<sock_filter> = Vec::new();
        match rules {
            None => body.push(stmt(RET, matched)),
            Some(rules) => {
                'rule: for conditions in rules {
                    let mut tests = Vec::new();
                    for (index, (op, value)) in conditions {
                        match condition(*index, op, *value) {
                            Ok(Some(t)) => tests.extend(t),
                            Ok(None) => {}
                            Err(()) => continue 'rule,
                        }
                    }
                    // tests, then `ret matched`; a failed test jumps past it.
                    let len = tests.len() + 1;
                    for (i, t) in tests.into_iter().enumerate() {
                        let to_end = short(len - i - 1)?;
                        body.push(match t {
                            Test::Stmt(s) => s,
                            Test::FailUnless(code, k) => jump(code, k, 0, to_end),
                            Test::FailIf(code, k) => jump(code, k, to_end, 0),
                        });
                    }
                    body.push(stmt(RET, matched));
                }
            }
        }
        out.push(stmt(LD_W_ABS, 0));
        // Not this call: skip the body, to the next block.
        out.push(jump(JEQ, *nr, 0, short(body.len())?));
        out.extend(body);
    }
    out.push(stmt(RET, mismatch));
    Ok(out)
}
// ANCHOR_END: i386_program

// ANCHOR: i386_combine
/// One program for both ABIs: the i386 half after the native one, and in
/// front a check of `seccomp_data.arch` that jumps to it. Both halves end
/// every path with a `ret`, and their jumps are relative, so neither
/// needs to change.
///
/// ```text
///   ld  [4]                  ; A = arch
///   jeq #AUDIT_ARCH_I386, 0, 1
///   ja  +len(native)         ; i386: over the native half
///   <native half>            ; seccompiler's, which checks for x86_64 itself
///   <i386 half>
/// ```
pub fn combine(native: BpfProgram, i386: BpfProgram) -> anyhow::Result<BpfProgram> {
    let mut out = vec![
        stmt(LD_W_ABS, 4),
        jump(JEQ, AUDIT_ARCH_I386, 0, 1),
        stmt(JA, native.len() as u32),
    ];
    out.extend(native);
    out.extend(i386);
    // BPF_MAXINSNS: the kernel refuses longer seccomp programs.
    if out.len() > 4096 {
        bail!(
            "the seccomp program has {} instructions, more than the kernel's 4096",
            out.len()
        );
    }
    Ok(out)
}
// ANCHOR_END: i386_combine
