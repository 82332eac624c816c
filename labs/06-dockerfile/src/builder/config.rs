//! The instructions that change only the image's config: `ENV`, `LABEL`, `MAINTAINER`,
//! `CMD`, `ENTRYPOINT`, `SHELL`, `USER`, `STOPSIGNAL`, `EXPOSE`, `VOLUME`, `HEALTHCHECK` and
//! `ONBUILD`; and `ARG`, which changes nothing but the variables of the steps after it.
//!
//! Each of the others is a step with no layer: the config with the change, and a history
//! entry with `empty_layer: true` and Docker's `/bin/sh -c #(nop)  INSTRUCTION` as its
//! `created_by`. The cache key is the parent image and that line (and, for `ENTRYPOINT`,
//! whether it resets `CMD`), so a step is reused exactly when the same instruction,
//! expanded the same way, follows the same image. What `docker inspect` shows of them:
//!
//! ```text
//! docker inspect -f '{{json .Config}}' IMAGE    # Env, Cmd, Entrypoint, ExposedPorts, ...
//! docker history --no-trunc IMAGE               # the #(nop) lines
//! ```

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use super::check::flags;
use super::{Builder, Stage};
use crate::cache;
use crate::parser::{Args, Instruction};

impl Builder<'_> {
    pub(super) fn set_config(
        &mut self,
        st: &mut Stage,
        field: &str,
        value: Value,
        text: String,
    ) -> Result<()> {
        let created_by = format!("/bin/sh -c #(nop)  {text}");
        let key = cache::key(&[&st.img.id, &created_by]);
        if self.try_cache(st, &key)? {
            return Ok(());
        }
        self.finish_step(st, &key, &created_by, None, |img| {
            img.cfg().insert(field.into(), value);
            Ok(())
        })
    }

    // ANCHOR: arg
    /// `ARG NAME[=default]`: declares a variable for the rest of the stage. Its value is the
    /// `--build-arg`, else the default, else the value of a global `ARG` of the same name
    /// (declared before the first FROM, which only FROM lines can see until a stage
    /// re-declares it). No image changes.
    pub(super) fn arg(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let Args::Words(words) = &ins.args else {
            unreachable!("validated")
        };
        for w in words {
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(self.expand(st, d)?)),
                None => (w.clone(), None),
            };
            let value = match self.build_args.get(&name) {
                Some(v) => {
                    self.used_args.insert(name.clone());
                    Some(v.clone())
                }
                None => default.or_else(|| self.global_args.get(&name).cloned().flatten()),
            };
            st.args.insert(name, value);
        }
        self.say(&format!(" ---> {}", st.img.short()))
    }
    // ANCHOR_END: arg
}

/// `EXPOSE 80` is `80/tcp`; a range and a protocol are allowed (`8000-8010/udp`).
pub(crate) fn normalize_port(p: &str) -> Result<String> {
    let (ports, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        bail!("invalid proto: {proto}");
    }
    let ok = |s: &str| s.parse::<u16>().is_ok_and(|n| n > 0);
    let valid = match ports.split_once('-') {
        Some((a, b)) => ok(a) && ok(b),
        None => ok(ports),
    };
    if !valid {
        bail!("invalid containerPort: {ports}");
    }
    Ok(format!("{ports}/{proto}"))
}

pub(crate) fn check_signal(s: &str) -> Result<()> {
    if s.parse::<i32>().is_ok_and(|n| (1..=64).contains(&n)) {
        return Ok(());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    if name.parse::<nix::sys::signal::Signal>().is_ok() || name.starts_with("SIGRTM") {
        return Ok(());
    }
    bail!("Invalid signal: {s}")
}

/// A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds.
fn duration_ns(flag: &str, s: &str) -> Result<i64> {
    let bad = || anyhow!("HEALTHCHECK --{flag}={s}: invalid duration (use e.g. 30s, 1m30s, 500ms)");
    if s == "0" {
        return Ok(0);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    Ok(total as i64)
}

// ANCHOR: healthcheck
/// `HEALTHCHECK [--interval=D ...] CMD ...` as Docker stores it: the test (`["CMD", ...]`
/// for the exec form, `["CMD-SHELL", "..."]` for the shell form, `["NONE"]`), and the
/// durations in nanoseconds.
pub(super) fn healthcheck(ins: &Instruction) -> Result<Value> {
    let Args::Healthcheck { kind, command } = &ins.args else {
        unreachable!("validated")
    };
    if kind.eq_ignore_ascii_case("NONE") {
        return Ok(json!({"Test": ["NONE"]}));
    }
    let test = match command.as_ref() {
        Args::Exec(v) => std::iter::once("CMD".to_string())
            .chain(v.iter().cloned())
            .collect::<Vec<_>>(),
        Args::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
        _ => unreachable!("validated"),
    };
    let mut hc = json!({"Test": test});
    let f = flags(ins).map_err(|m| anyhow!(m))?;
    for (flag, field) in [
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ] {
        if let Some(v) = f.get(flag) {
            let ns = duration_ns(flag, v)?;
            if ns != 0 && ns < 1_000_000 {
                bail!("Interval {flag:?} cannot be less than 1ms");
            }
            if ns != 0 {
                hc[field] = json!(ns);
            }
        }
    }
    if let Some(r) = f.get("retries") {
        let n: i64 = r
            .parse()
            .map_err(|_| anyhow!("HEALTHCHECK --retries={r}: not a number"))?;
        if n < 0 {
            bail!("--retries cannot be negative ({n})");
        }
        if n > 0 {
            hc["Retries"] = json!(n);
        }
    }
    Ok(hc)
}
// ANCHOR_END: healthcheck

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Instruction {
        crate::parse(text).unwrap().instructions.remove(0)
    }

    #[test]
    fn durations_are_go_durations() {
        assert_eq!(duration_ns("interval", "5s").unwrap(), 5_000_000_000);
        assert_eq!(duration_ns("interval", "1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration_ns("interval", "500ms").unwrap(), 500_000_000);
        assert!(duration_ns("interval", "5").is_err());
        assert!(duration_ns("interval", "5 parsecs").is_err());
    }

    #[test]
    fn healthcheck_is_stored_as_docker_stores_it() {
        let hc = healthcheck(&one("HEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD curl -fs http://localhost/ || exit 1")).unwrap();
        assert_eq!(
            hc,
            json!({"Test": ["CMD-SHELL", "curl -fs http://localhost/ || exit 1"],
                   "Interval": 5_000_000_000i64, "Timeout": 3_000_000_000i64, "Retries": 2})
        );
        let hc = healthcheck(&one("HEALTHCHECK CMD [\"true\"]")).unwrap();
        assert_eq!(hc, json!({"Test": ["CMD", "true"]}));
        assert_eq!(
            healthcheck(&one("HEALTHCHECK NONE")).unwrap(),
            json!({"Test": ["NONE"]})
        );
    }

    #[test]
    fn ports_are_normalized() {
        assert_eq!(normalize_port("80").unwrap(), "80/tcp");
        assert_eq!(normalize_port("53/UDP").unwrap(), "53/udp");
        assert_eq!(normalize_port("8000-8010/tcp").unwrap(), "8000-8010/tcp");
        assert!(normalize_port("http").is_err());
        assert!(normalize_port("80/icmp").is_err());
    }
}
