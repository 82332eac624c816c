//! # Compiling a profile into BPF
//!
//! A profile says "these calls get this action"; the kernel wants programs
//! in classic BPF, which look at one call at a time (its number, its
//! architecture, its six arguments) and return an action. The compiler
//! here does it in steps, each a function below:
//!
//! 1. [`Target::for_profile`]: which architecture we are on, and whether
//!    the profile wants 32-bit x86 programs filtered too;
//! 2. [`group_by_action`]: the rules that apply to *this* container
//!    (Docker's `includes`/`excludes` by capability, architecture and
//!    kernel version), by action and call number;
//! 3. [`build_program`]: one program per action: the calls without
//!    conditions as ranges of numbers in front ([`super::ranges`]),
//!    seccompiler's program for the calls with conditions, the x32 check,
//!    and the i386 half ([`super::i386`]);
//! 4. [`compile`] stacks them in the order the kernel needs.
//!
//! `seccompiler` (the crate Firecracker uses) does the per-call BPF; this
//! module decides what it is given.

use std::collections::BTreeMap;

use anyhow::bail;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::{i386, ranges, ArgRule, Profile, SyscallRule};
use crate::security::caps::{parse_cap, CapMask};

/// This machine's architecture in the three spellings a profile may use.
fn native_arch() -> anyhow::Result<(TargetArch, &'static str, &'static str)> {
    Ok(match std::env::consts::ARCH {
        "x86_64" => (TargetArch::x86_64, "SCMP_ARCH_X86_64", "amd64"),
        "aarch64" => (TargetArch::aarch64, "SCMP_ARCH_AARCH64", "arm64"),
        "riscv64" => (TargetArch::riscv64, "SCMP_ARCH_RISCV64", "riscv64"),
        other => bail!("seccomp: architecture {other} is not supported by seccompiler"),
    })
}

/// The running kernel's (major, minor), from uname(2).
fn kernel_version() -> (u32, u32) {
    let uts = nix::sys::utsname::uname().ok();
    let release = uts
        .as_ref()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    parse_version(&release).unwrap_or((0, 0))
}

fn parse_version(s: &str) -> Option<(u32, u32)> {
    let mut parts = s.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn parse_action(
    name: &str,
    errno: Option<u32>,
    default_errno: u32,
) -> anyhow::Result<SeccompAction> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => SeccompAction::Allow,
        "SCMP_ACT_ERRNO" => SeccompAction::Errno(errno.unwrap_or(default_errno)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SeccompAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => SeccompAction::KillProcess,
        "SCMP_ACT_TRAP" => SeccompAction::Trap,
        "SCMP_ACT_LOG" => SeccompAction::Log,
        "SCMP_ACT_TRACE" => SeccompAction::Trace(errno.unwrap_or(default_errno)),
        other => bail!("seccomp action {other:?} is not supported (SCMP_ACT_NOTIFY needs a listener this lab does not have)"),
    })
}

fn parse_op(a: &ArgRule) -> anyhow::Result<(SeccompCmpOp, u64)> {
    Ok(match a.op.as_str() {
        "SCMP_CMP_NE" => (SeccompCmpOp::Ne, a.value),
        "SCMP_CMP_LT" => (SeccompCmpOp::Lt, a.value),
        "SCMP_CMP_LE" => (SeccompCmpOp::Le, a.value),
        "SCMP_CMP_EQ" => (SeccompCmpOp::Eq, a.value),
        "SCMP_CMP_GE" => (SeccompCmpOp::Ge, a.value),
        "SCMP_CMP_GT" => (SeccompCmpOp::Gt, a.value),
        "SCMP_CMP_MASKED_EQ" => (SeccompCmpOp::MaskedEq(a.value), a.value_two),
        other => bail!("seccomp comparison {other:?} is unknown"),
    })
}

/// Whether Docker's includes/excludes let this rule apply to this container.
fn rule_applies(r: &SyscallRule, caps: CapMask, arch: &str, kernel: (u32, u32)) -> bool {
    let has_cap = |name: &String| match parse_cap(name) {
        Ok(Some(c)) => caps & (1 << c.number) != 0,
        _ => false,
    };
    if let Some(inc) = &r.includes {
        if !inc.caps.iter().all(has_cap) {
            return false;
        }
        if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == arch) {
            return false;
        }
        if let Some(min) = inc.min_kernel.as_deref().and_then(parse_version) {
            if kernel < min {
                return false;
            }
        }
    }
    if let Some(exc) = &r.excludes {
        if exc.caps.iter().any(has_cap) || exc.arches.iter().any(|a| a == arch) {
            return false;
        }
        if let Some(min) = exc.min_kernel.as_deref().and_then(parse_version) {
            if kernel >= min {
                return false;
            }
        }
    }
    true
}

/// Rules per system call number; `None` means "whatever the arguments".
type RuleMap = BTreeMap<i64, Option<Vec<SeccompRule>>>;

/// The calls that get one action, with their conditions: by this
/// machine's numbers, and by i386 numbers for the 32-bit half.
struct ActionRules {
    action: SeccompAction,
    native: RuleMap,
    i386: i386::RuleMap,
}

/// What the programs are compiled for.
struct Target {
    arch: TargetArch,
    /// The same architecture as Docker's `includes.arches` spells it.
    docker_arch: &'static str,
    /// Whether each program gets an i386 half.
    with_i386: bool,
}

impl Target {
    /// This machine, which the profile must list if it lists any
    /// architecture; and the i386 half only where the profile asks for
    /// it, as Docker's does (`SCMP_ARCH_X86` as a sub-architecture).
    fn for_profile(profile: &Profile) -> anyhow::Result<Target> {
        let (arch, scmp_arch, docker_arch) = native_arch()?;
        let listed: Vec<&str> = profile
            .architectures
            .iter()
            .map(String::as_str)
            .chain(profile.arch_map.iter().map(|m| m.architecture.as_str()))
            .collect();
        if !listed.is_empty() && !listed.contains(&scmp_arch) {
            bail!("the seccomp profile does not list this machine's architecture ({scmp_arch}): {listed:?}");
        }
        let with_i386 = arch == TargetArch::x86_64
            && (profile.architectures.iter().any(|a| a == "SCMP_ARCH_X86")
                || profile.arch_map.iter().any(|m| {
                    m.architecture == scmp_arch
                        && m.sub_architectures
                            .iter()
                            .flatten()
                            .any(|a| a == "SCMP_ARCH_X86")
                }));
        Ok(Target {
            arch,
            docker_arch,
            with_i386,
        })
    }

    /// The `AUDIT_ARCH_*` value the ranges in front check for, where this
    /// module knows it; elsewhere seccompiler compiles every call itself.
    fn audit_arch(&self) -> Option<u32> {
        match self.arch {
            TargetArch::x86_64 => Some(ranges::AUDIT_ARCH_X86_64),
            TargetArch::aarch64 => Some(ranges::AUDIT_ARCH_AARCH64),
            _ => None,
        }
    }
}

// ANCHOR: compile
/// Compile `profile` for a container with capabilities `caps` into BPF
/// programs, to be installed in order.
///
/// seccompiler builds one filter per *action*: "these calls get action A,
/// all others get B". A profile has several actions (allow most calls, EPERM
/// by default, ENOSYS for clone3), so we build one program per action and
/// stack them. The kernel runs every filter of a process and keeps the most
/// restrictive answer (KILL > TRAP > ERRNO > TRACE > LOG > ALLOW); between
/// two ERRNO answers, the filter installed last wins. So the first program
/// holds the allow list with the default action, and each later one says
/// "this action for these calls, allow for the rest". A call that two rules
/// of different actions both match gets the stricter one.
///
/// Each program first checks the architecture the call was made for. On
/// x86_64, a 32-bit x86 program (`int 0x80`, AUDIT_ARCH_I386) makes calls
/// with other numbers: `getpid` is 39 on x86_64 and 20 on i386. Docker's
/// profile lists `SCMP_ARCH_X86` as a sub-architecture, so each program
/// gets a second half that applies the same rules, by name, with i386
/// numbers (see [`i386`]). A profile that does not list it leaves such
/// programs killed, as libseccomp does for an architecture not in the filter.
pub fn compile(profile: &Profile, caps: CapMask) -> anyhow::Result<Vec<BpfProgram>> {
    let target = Target::for_profile(profile)?;
    let default_errno = profile.default_errno_ret.unwrap_or(libc::EPERM as u32);
    let default = parse_action(
        &profile.default_action,
        profile.default_errno_ret,
        default_errno,
    )?;
    let mut groups = group_by_action(profile, caps, &target, &default, default_errno)?;
    // The allow list goes first (see above), then the other actions.
    groups.sort_by_key(|g| g.action != SeccompAction::Allow);

    let mut programs = Vec::new();
    if !groups.iter().any(|g| g.action == SeccompAction::Allow) && default != SeccompAction::Allow {
        // Nothing is allowed explicitly: one program that answers the default.
        programs.push(build_program(
            &target,
            RuleMap::new(),
            i386::RuleMap::new(),
            default.clone(),
            SeccompAction::Allow,
        )?);
    }
    for group in groups {
        // The allow list answers the default to every call it does not
        // name; each other program answers "allow" to those.
        let (mismatch, matched) = if group.action == SeccompAction::Allow {
            (default.clone(), SeccompAction::Allow)
        } else {
            (SeccompAction::Allow, group.action)
        };
        programs.push(build_program(
            &target,
            group.native,
            group.i386,
            mismatch,
            matched,
        )?);
    }
    Ok(programs)
}
// ANCHOR_END: compile

/// Step 2: the rules that apply to this container, by action and by call
/// number. Rules whose action is the default's are left out: the default
/// answers them anyway.
fn group_by_action(
    profile: &Profile,
    caps: CapMask,
    target: &Target,
    default: &SeccompAction,
    default_errno: u32,
) -> anyhow::Result<Vec<ActionRules>> {
    let kernel = kernel_version();
    // SeccompAction is not Ord, so a small Vec rather than a map.
    let mut groups: Vec<ActionRules> = Vec::new();
    for r in &profile.syscalls {
        if !rule_applies(r, caps, target.docker_arch, kernel) {
            continue;
        }
        let action = parse_action(&r.action, r.errno_ret, default_errno)?;
        if action == *default {
            continue;
        }
        let conditions = native_conditions(r)?;
        let index = match groups.iter().position(|g| g.action == action) {
            Some(i) => i,
            None => {
                groups.push(ActionRules {
                    action,
                    native: RuleMap::new(),
                    i386: i386::RuleMap::new(),
                });
                groups.len() - 1
            }
        };
        let group = &mut groups[index];
        if target.with_i386 {
            let conditions = r
                .args
                .iter()
                .map(|a| Ok((a.index, parse_op(a)?)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            i386::add(&mut group.i386, r.names.iter().chain(&r.name), &conditions);
        }
        add_native(
            &mut group.native,
            r.names.iter().chain(&r.name),
            &conditions,
        )?;
    }
    Ok(groups)
}

/// A rule's argument conditions, as seccompiler takes them.
fn native_conditions(r: &SyscallRule) -> anyhow::Result<Vec<SeccompCondition>> {
    r.args
        .iter()
        .map(|a| {
            let (op, value) = parse_op(a)?;
            SeccompCondition::new(a.index, SeccompCmpArgLen::Qword, op, value)
                .map_err(|e| anyhow::anyhow!("seccomp argument {}: {e}", a.index))
        })
        .collect()
}

/// Add a rule's calls, by this machine's numbers, to `map`. A call that
/// some rule allows without conditions needs no other rule: `None`.
fn add_native<'a>(
    map: &mut RuleMap,
    names: impl Iterator<Item = &'a String>,
    conditions: &[SeccompCondition],
) -> anyhow::Result<()> {
    for name in names {
        // Unknown here (another architecture's call): skip, as libseccomp does.
        let Ok(sysno) = name.parse::<syscalls::Sysno>() else {
            continue;
        };
        let entry = map
            .entry(sysno.id() as i64)
            .or_insert_with(|| Some(Vec::new()));
        match (entry.as_mut(), conditions.is_empty()) {
            (_, true) => *entry = None,
            (Some(rules), false) => rules.push(
                SeccompRule::new(conditions.to_vec())
                    .map_err(|e| anyhow::anyhow!("seccomp rule for {name}: {e}"))?,
            ),
            (None, false) => {}
        }
    }
    Ok(())
}

/// Step 3: one program that answers `matched` for the calls in `rules`
/// and `mismatch` for every other call: the ranges in front, then
/// seccompiler's program for the calls with conditions, behind the x32
/// check; with the i386 half where the profile asks for it.
fn build_program(
    target: &Target,
    rules: RuleMap,
    rules_i386: i386::RuleMap,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> anyhow::Result<BpfProgram> {
    let audit_arch = target.audit_arch();
    let (plain, rules) = split_plain(rules, audit_arch.is_some());
    let filter = SeccompFilter::new(rules, mismatch.clone(), matched.clone(), target.arch)
        .map_err(|e| anyhow::anyhow!("building the seccomp filter: {e}"))?;
    let program: BpfProgram = filter
        .try_into()
        .map_err(|e| anyhow::anyhow!("compiling the seccomp filter: {e}"))?;
    let mut front = match audit_arch {
        Some(arch) => ranges::program(Some(arch), &plain, matched.clone().into())?,
        None => Vec::new(),
    };
    front.extend(program);
    let program = with_x32_check(target.arch, front);
    if !target.with_i386 {
        return Ok(program);
    }
    let half = i386::program(&rules_i386, mismatch.into(), matched.into())?;
    i386::combine(program, half)
}

/// The calls without conditions go in front, as ranges of numbers (see
/// [`ranges`]); seccompiler compiles only those with conditions. Without
/// the ranges (`with_ranges` false), seccompiler gets every call, one
/// without conditions as an empty list of rules.
fn split_plain(rules: RuleMap, with_ranges: bool) -> (Vec<u32>, BTreeMap<i64, Vec<SeccompRule>>) {
    if !with_ranges {
        let all = rules
            .into_iter()
            .map(|(nr, r)| (nr, r.unwrap_or_default()))
            .collect();
        return (Vec::new(), all);
    }
    let plain = rules
        .iter()
        .filter(|(_, r)| r.is_none())
        .map(|(nr, _)| *nr as u32)
        .collect();
    let with_conditions = rules
        .into_iter()
        .filter_map(|(nr, r)| Some((nr, r?)))
        .collect();
    (plain, with_conditions)
}

/// On x86_64 the kernel also accepts the x32 ABI's calls, numbered from
/// 0x40000000 and reporting the same architecture. seccompiler does not look
/// at them, so a profile that allows by default would let a program dodge a
/// refused call by using its x32 number. Refuse them all first (EPERM).
fn with_x32_check(target: TargetArch, program: BpfProgram) -> BpfProgram {
    if target != TargetArch::x86_64 {
        return program;
    }
    use seccompiler::sock_filter;
    let mut out = vec![
        // A = seccomp_data.nr
        sock_filter {
            code: 0x20,
            jt: 0,
            jf: 0,
            k: 0,
        },
        // if A >= 0x40000000 go on to the next, else skip it
        sock_filter {
            code: 0x35,
            jt: 0,
            jf: 1,
            k: 0x4000_0000,
        },
        // return SECCOMP_RET_ERRNO | EPERM
        sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
    ];
    // seccompiler's own program reloads what it needs; its jumps are
    // relative, so putting ours in front changes none of them.
    out.extend(program);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::caps::docker_default_caps;
    use crate::security::seccomp::docker_default_profile;

    /// Run a classic BPF seccomp program on one call, as the kernel would:
    /// the instructions seccompiler and this module emit.
    fn run_bpf(p: &[seccompiler::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let word = |off: u32| -> u32 {
            match off {
                0 => nr,
                4 => arch,
                o if (16..64).contains(&o) => {
                    let arg = args[((o - 16) / 8) as usize];
                    if (o - 16) % 8 == 0 {
                        arg as u32
                    } else {
                        (arg >> 32) as u32
                    }
                }
                o => panic!("load of offset {o}"),
            }
        };
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = &p[pc];
            pc += 1;
            let jumped = |cond: bool| if cond { i.jt as usize } else { i.jf as usize };
            match i.code {
                0x20 => a = word(i.k),
                0x54 => a &= i.k,
                0x05 => pc += i.k as usize,
                0x15 => pc += jumped(a == i.k),
                0x25 => pc += jumped(a > i.k),
                0x35 => pc += jumped(a >= i.k),
                0x45 => pc += jumped(a & i.k != 0),
                0x06 => return i.k,
                c => panic!("opcode {c:#x} at {}", pc - 1),
            }
        }
    }

    /// Every call number, as the compiled docker profile answers it, is
    /// what its rules say: the calls allowed without conditions get ALLOW
    /// (through the ranges in front), the calls in no rule the default.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_ranges_answer_as_the_rules_say() {
        let profile = docker_default_profile();
        let caps = docker_default_caps();
        let programs = compile(&profile, caps).unwrap();
        let (_, _, docker_arch) = native_arch().unwrap();
        let kernel = kernel_version();
        let mut plain = std::collections::BTreeSet::new();
        let mut listed = std::collections::BTreeSet::new();
        for r in profile
            .syscalls
            .iter()
            .filter(|r| rule_applies(r, caps, docker_arch, kernel))
        {
            for name in r.names.iter().chain(&r.name) {
                let Ok(sysno) = name.parse::<syscalls::Sysno>() else {
                    continue;
                };
                listed.insert(sysno.id() as u32);
                if r.args.is_empty() && r.action == "SCMP_ACT_ALLOW" {
                    plain.insert(sysno.id() as u32);
                }
            }
        }
        let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let answer = |nr: u32| {
            programs
                .iter()
                .map(|p| run_bpf(p, ranges::AUDIT_ARCH_X86_64, nr, [0; 6]))
                .min_by_key(|r| (r & libc::SECCOMP_RET_ACTION_FULL) as i32)
                .unwrap()
        };
        assert!(plain.len() > 250, "{}", plain.len());
        for nr in 0..600 {
            if plain.contains(&nr) {
                assert_eq!(answer(nr), libc::SECCOMP_RET_ALLOW, "call {nr}");
            } else if !listed.contains(&nr) {
                assert_eq!(answer(nr), eperm, "call {nr}");
            }
        }
        // x32 numbers are refused whatever they are.
        assert_eq!(answer(0x4000_0000), eperm);
        // The whole allow program is far smaller than one test per call.
        assert!(
            programs[0].len() < 600,
            "{} instructions",
            programs[0].len()
        );
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn i386_half_follows_the_profiles_architectures() {
        use seccompiler::sock_filter;
        let profile = docker_default_profile();
        let programs = compile(&profile, docker_default_caps()).unwrap();
        for p in &programs {
            // ld [4]; jeq AUDIT_ARCH_I386; ja over the native half.
            assert_eq!((p[0].code, p[0].k), (0x20, 4));
            assert_eq!((p[1].code, p[1].k), (0x15, i386::AUDIT_ARCH_I386));
            assert_eq!(p[2].code, 0x05);
            // The i386 half starts right after the jump's target, and ends
            // with the default answer.
            let i386 = &p[3 + p[2].k as usize..];
            assert_eq!((i386[0].code, i386[0].k), (0x20, 0));
            assert_eq!(i386.last().unwrap().code, 0x06);
        }
        // In the allow list: getpid by its i386 number (20) gets ALLOW;
        // unshare (310) and keyctl (288) are not there.
        let allow = &programs[0];
        let i386 = i386::AUDIT_ARCH_I386;
        let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        assert_eq!(run_bpf(allow, i386, 20, [0; 6]), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run_bpf(allow, i386, 310, [0; 6]), eperm);
        assert_eq!(run_bpf(allow, i386, 288, [0; 6]), eperm);
        let half = &allow[3 + allow[2].k as usize..];
        assert_eq!(half.last().unwrap().k, eperm);
        let _: &[sock_filter] = half;

        // Without SCMP_ARCH_X86 in the profile: no i386 half, seccompiler's
        // own architecture check first.
        let mut native_only = profile.clone();
        native_only.arch_map.clear();
        native_only.architectures = vec!["SCMP_ARCH_X86_64".into()];
        let programs = compile(&native_only, docker_default_caps()).unwrap();
        assert!(programs.iter().all(|p| p[1].k != i386::AUDIT_ARCH_I386));
    }

    #[test]
    fn docker_profile_compiles_and_caps_change_it() {
        let profile = docker_default_profile();
        let plain = compile(&profile, docker_default_caps()).unwrap();
        // The allow list, then clone3's ENOSYS.
        assert_eq!(plain.len(), 2);
        let admin = compile(&profile, docker_default_caps() | 1 << 21).unwrap();
        // With SYS_ADMIN, clone3 is allowed and its ENOSYS rule is excluded.
        assert_eq!(admin.len(), 1);
        // mount and friends join the allow list.
        #[cfg(target_arch = "x86_64")]
        {
            let mount = libc::SYS_mount as u32;
            let arch = ranges::AUDIT_ARCH_X86_64;
            assert_eq!(
                run_bpf(&admin[0], arch, mount, [0; 6]),
                libc::SECCOMP_RET_ALLOW
            );
            assert_ne!(
                run_bpf(&plain[0], arch, mount, [0; 6]),
                libc::SECCOMP_RET_ALLOW
            );
        }
    }

    #[test]
    fn profiles_parse_in_the_oci_format() {
        let json = r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_AARCH64","SCMP_ARCH_RISCV64"],
            "syscalls":[{"names":["mkdirat","mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
                        {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}"#;
        let profile: Profile = serde_json::from_str(json).unwrap();
        // Default allow: only the EACCES program, and the EPERM one.
        assert_eq!(compile(&profile, 0).unwrap().len(), 2);
        let bad = r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#;
        assert!(compile(&serde_json::from_str(bad).unwrap(), 0).is_err());
        let other_arch =
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_S390X"]}"#;
        assert!(compile(&serde_json::from_str(other_arch).unwrap(), 0).is_err());
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_version("4.8"), Some((4, 8)));
        assert_eq!(parse_version("x"), None);
    }
}
