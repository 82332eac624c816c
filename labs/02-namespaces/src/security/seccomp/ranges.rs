//! # Allowed calls as ranges of numbers
//!
//! A seccomp program is run on every system call the container makes,
//! and compiled by the kernel (checked, translated to eBPF, JIT-compiled)
//! every time a container starts. Docker's profile allows some 300 calls
//! with no condition on their arguments; one test per call is 600
//! instructions per architecture, a millisecond and a half of the
//! start measured with `strace -T -e seccomp`. Their numbers mostly come
//! in runs (`read` 0, `write` 1, `open` 2...), so this writes them as
//! ranges, walked in ascending order: two instructions per range.
//!
//! ```text
//!   ld  [4]                    ; A = arch         (native half only)
//!   jeq #ARCH, 0, <to rest>
//!   ld  [0]                    ; A = nr
//!   jgt #2, 1, 0               ; past the range 0..=2? on to the next
//!   jge #0, <ret>, <miss>      ; in it: ret; below it: in no range
//!   jgt #25, 1, 0              ; 4..=25
//!   jge #4, <ret>, <miss>
//!   ...
//!   ja  1                      ; <miss>: on to the rest of the program
//!   ret #matched               ; <ret>
//! ```
//!
//! The rest of the program, for the calls with conditions, comes after.

use anyhow::bail;
use seccompiler::BpfProgram;

use super::i386::{jump, stmt, JA, JEQ, JGE, JGT, LD_W_ABS, RET};

/// `AUDIT_ARCH_X86_64` from `<linux/audit.h>`.
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// `AUDIT_ARCH_AARCH64`.
pub const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;

/// The contiguous runs of `numbers`, as (first, last).
pub fn runs(numbers: &[u32]) -> Vec<(u32, u32)> {
    let mut sorted = numbers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for n in sorted {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == n => *last = n,
            _ => out.push((n, n)),
        }
    }
    out
}

/// A program that returns `matched` for the calls `numbers` and falls
/// through to whatever follows it for every other call. With `arch`, it
/// first checks `seccomp_data.arch` (a call of another architecture
/// falls through, untested: its numbers mean other calls).
// ANCHOR: ranges
pub fn program(arch: Option<u32>, numbers: &[u32], matched: u32) -> anyhow::Result<BpfProgram> {
    let runs = runs(numbers);
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    // jt and jf are 8 bits: the farthest jump, from the first range to
    // the `ret`, is 2 * runs.len() instructions.
    if 2 * runs.len() + 1 > u8::MAX as usize {
        bail!("{} ranges of calls: too many for one block", runs.len());
    }
    let mut body = vec![stmt(LD_W_ABS, 0)];
    let n = runs.len();
    for (i, (first, last)) in runs.into_iter().enumerate() {
        // From the jge of range i: the miss (`ja`) is 2 * (n - i - 1)
        // instructions ahead, the `ret` one more.
        let to_miss = (2 * (n - i - 1)) as u8;
        body.push(jump(JGT, last, 1, 0));
        body.push(jump(JGE, first, to_miss + 1, to_miss));
    }
    body.push(stmt(JA, 1));
    body.push(stmt(RET, matched));
    let mut out = Vec::new();
    if let Some(arch) = arch {
        if body.len() > u8::MAX as usize {
            bail!("the ranges block is too long for a BPF jump");
        }
        out.push(stmt(LD_W_ABS, 4));
        out.push(jump(JEQ, arch, 0, body.len() as u8));
    }
    out.extend(body);
    Ok(out)
}
// ANCHOR_END: ranges

#[cfg(test)]
mod tests {
    use crate::security::seccomp::ranges;

    #[test]
    fn runs_are_contiguous_numbers() {
        assert_eq!(
            ranges::runs(&[5, 1, 2, 3, 9, 10, 3]),
            vec![(1, 3), (5, 5), (9, 10)]
        );
        assert!(ranges::runs(&[]).is_empty());
    }
}
