//! The AST as text: buildkit's `Node.Dump()` format, which its parser tests compare
//! against, and a readable one-line summary of an instruction.

use super::{Args, Dockerfile, Instruction};
use crate::goquote;

// ANCHOR: dump
impl Dockerfile {
    /// buildkit's `Node.Dump()`: one `(keyword ["--flag" ...] "arg" ...)` line per
    /// instruction, strings quoted as Go's `%q` quotes them.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for ins in &self.instructions {
            out.push('(');
            out.push_str(&ins.dump());
            out.push_str(")\n");
        }
        out
    }
}

impl Instruction {
    /// This instruction's line of [`Dockerfile::dump`], without the outer parentheses.
    pub fn dump(&self) -> String {
        let mut s = self.keyword.name().to_ascii_lowercase();
        if !self.flags.is_empty() {
            s.push(' ');
            s.push_str(&goquote::quote_list(&self.flags));
        }
        let mut push = |v: &str| {
            s.push(' ');
            s.push_str(&goquote::quote(v));
        };
        match &self.args {
            Args::None => {}
            Args::Exec(v) | Args::Words(v) => v.iter().for_each(|w| push(w)),
            Args::Shell(v) => push(v),
            Args::Pairs(pairs) => {
                for p in pairs {
                    push(&p.key);
                    push(&p.value);
                    push(if p.legacy { "" } else { "=" });
                }
            }
            Args::Healthcheck { kind, command } => {
                push(kind);
                match command.as_ref() {
                    Args::Exec(v) => v.iter().for_each(|w| push(w)),
                    Args::Shell(v) => push(v),
                    _ => {}
                }
            }
            Args::Trigger(inner) => {
                s.push_str(" (");
                s.push_str(&inner.dump());
                s.push(')');
            }
        }
        s
    }
}
// ANCHOR_END: dump

impl Instruction {
    /// A one-line, human-readable summary: keyword, flags, and the arguments with their form.
    pub fn summary(&self) -> String {
        let mut s = self.keyword.name().to_string();
        for f in &self.flags {
            s.push(' ');
            s.push_str(f);
        }
        let args = describe_args(&self.args);
        if !args.is_empty() {
            s.push(' ');
            s.push_str(&args);
        }
        for h in &self.heredocs {
            let lines = h.content.lines().count();
            let plural = if lines == 1 { "" } else { "s" };
            let how = if h.expand { "" } else { ", not expanded" };
            s.push_str(&format!(
                " + heredoc {} ({lines} line{plural}{how})",
                h.name
            ));
        }
        s
    }
}

fn describe_args(args: &Args) -> String {
    let json = |v: &[String]| {
        let items: Vec<String> = v
            .iter()
            .map(|w| serde_json::Value::String(w.clone()).to_string())
            .collect();
        format!("[{}]", items.join(", "))
    };
    match args {
        Args::None => String::new(),
        Args::Exec(v) => format!("(exec) {}", json(v)),
        Args::Shell(v) => format!("(shell) {v}"),
        Args::Words(v) => v.join(" "),
        Args::Pairs(pairs) => pairs
            .iter()
            .map(|p| format!("{}={}", p.key, p.value))
            .collect::<Vec<_>>()
            .join(" "),
        Args::Healthcheck { kind, command } => {
            let cmd = describe_args(command);
            if cmd.is_empty() {
                kind.clone()
            } else {
                format!("{kind} {cmd}")
            }
        }
        Args::Trigger(inner) => inner.summary(),
    }
}
