//! # The Dockerfile parser: from text to an AST
//!
//! A Dockerfile looks like a shell script but is not one. To the builder it is a list of
//! *instructions*, each `KEYWORD [--flag ...] arguments`, read in two passes:
//!
//! 1. **Lines into logical lines.** Comments (`#` at the start of a line) are dropped, a line
//!    that ends with the escape character (`\`, or `` ` `` after `# escape=`` ` ``) continues
//!    on the next one, and the comment and blank lines inside a continuation are skipped. Parser
//!    directives (`# escape=`, `# syntax=`) are comments too, but only as long as nothing
//!    else (no instruction, no other comment, no blank line) came before them.
//! 2. **Logical lines into instructions.** The first word is the keyword, case-insensitive.
//!    `--name=value` words after it are *flags*. The rest is split in the way that keyword
//!    wants: `RUN`/`CMD`/`ENTRYPOINT`/`SHELL` take either a JSON array (*exec form*) or one
//!    string (*shell form*); `COPY`/`ADD`/`VOLUME` a JSON array or white-space separated
//!    words; `ENV`/`LABEL` `key=value` pairs (or the legacy `ENV key the value`); `ONBUILD`
//!    a whole instruction inside it.
//!
//! After an instruction that can take one (`RUN`, `COPY`, `ADD`, in shell form), each
//! `<<WORD` starts a *heredoc*: the following lines up to `WORD` alone on a line are a file
//! (`COPY <<EOF /etc/motd`) or the script's standard input (`RUN <<EOF`).
//!
//! Nothing is expanded here: `$HOME` stays `$HOME` in the AST. Which instructions the builder
//! expands, and how, is the [`crate::shell`] module's lesson.
//!
//! This is buildkit's parser (moby/buildkit `frontend/dockerfile/parser`) rewritten, quirks
//! included, so that [`Dockerfile::dump`] prints exactly what buildkit's `Node.Dump()` prints,
//! and its test cases can check us. Where we are stricter, it is where `docker build` would
//! reject the file one step later anyway: an unknown instruction, or `ONBUILD ONBUILD`.
//!
//! To see what Docker itself makes of a Dockerfile, without building it:
//!
//! ```text
//! docker buildx build --check .        # parses, lints, builds nothing
//! ```
//!
//! The chapters: `lines.rs` is the first pass (comments, continuations, parser
//! directives), `instruction.rs` the second (keyword, flags, and the arguments in each
//! keyword's form), `heredoc.rs` finds the heredocs a line opens, and `dump.rs` prints the
//! AST as buildkit does. [`parse`], here, drives the passes over the file and reads the
//! heredocs' bodies.

mod dump;
mod heredoc;
mod instruction;
mod lines;

use std::fmt;

use self::heredoc::{can_contain_heredoc, heredocs_from_line};
use self::instruction::instruction_from_line;
use self::lines::{is_comment, process_line, trim_continuation, trim_newline, Directives};

/// The instructions a Dockerfile may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keyword {
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
}

impl Keyword {
    pub const ALL: [Keyword; 18] = [
        Keyword::Add,
        Keyword::Arg,
        Keyword::Cmd,
        Keyword::Copy,
        Keyword::Entrypoint,
        Keyword::Env,
        Keyword::Expose,
        Keyword::From,
        Keyword::Healthcheck,
        Keyword::Label,
        Keyword::Maintainer,
        Keyword::Onbuild,
        Keyword::Run,
        Keyword::Shell,
        Keyword::Stopsignal,
        Keyword::User,
        Keyword::Volume,
        Keyword::Workdir,
    ];

    /// The keyword in capitals, as the documentation writes it.
    pub fn name(self) -> &'static str {
        match self {
            Keyword::Add => "ADD",
            Keyword::Arg => "ARG",
            Keyword::Cmd => "CMD",
            Keyword::Copy => "COPY",
            Keyword::Entrypoint => "ENTRYPOINT",
            Keyword::Env => "ENV",
            Keyword::Expose => "EXPOSE",
            Keyword::From => "FROM",
            Keyword::Healthcheck => "HEALTHCHECK",
            Keyword::Label => "LABEL",
            Keyword::Maintainer => "MAINTAINER",
            Keyword::Onbuild => "ONBUILD",
            Keyword::Run => "RUN",
            Keyword::Shell => "SHELL",
            Keyword::Stopsignal => "STOPSIGNAL",
            Keyword::User => "USER",
            Keyword::Volume => "VOLUME",
            Keyword::Workdir => "WORKDIR",
        }
    }

    /// Instruction names are case-insensitive: `run`, `Run` and `RUN` are the same.
    pub fn lookup(word: &str) -> Option<Keyword> {
        Keyword::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(word))
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ANCHOR: ast
/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character: `\`, or `` ` `` after `# escape=``.
    pub escape: char,
    /// The `# syntax=` directive, if any (Docker uses it to pick a frontend image; we only
    /// record it).
    pub syntax: Option<String>,
    pub instructions: Vec<Instruction>,
    /// Things that parse but will not forever, such as empty lines inside a continuation.
    pub warnings: Vec<String>,
}

/// One instruction: `RUN --mount=type=cache,target=/root/.cache pip install -r req.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub keyword: Keyword,
    /// `--name=value` words between the keyword and the arguments, as written (`--link`).
    pub flags: Vec<String>,
    pub args: Args,
    /// `<<EOF` documents that follow the instruction.
    pub heredocs: Vec<Heredoc>,
    /// 1-based line numbers: the keyword's line, and the last line of the instruction
    /// (its last continuation line, or its last heredoc's terminator).
    pub start_line: usize,
    pub end_line: usize,
    /// The logical line: keyword and arguments, continuations joined.
    pub original: String,
    /// The comment lines just before the instruction, without their `#`.
    pub comments: Vec<String>,
}

/// The arguments, in the shape their keyword gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// Nothing after the keyword (and its flags).
    None,
    /// A JSON array: `CMD ["nginx", "-g", "daemon off;"]`. Run as it is, with no shell.
    Exec(Vec<String>),
    /// One string, continuations joined: `RUN apt-get update && ...`. Run with `sh -c`.
    Shell(String),
    /// White-space separated words: FROM, EXPOSE, ARG, and COPY/ADD/VOLUME when not JSON.
    Words(Vec<String>),
    /// ENV and LABEL.
    Pairs(Vec<KeyValue>),
    /// `HEALTHCHECK --interval=5s CMD curl -f http://localhost/`: the type (`CMD`, `NONE`)
    /// and the command.
    Healthcheck { kind: String, command: Box<Args> },
    /// `ONBUILD RUN make`: the instruction that runs in the child image's build.
    Trigger(Box<Instruction>),
}

/// `key=value` in ENV or LABEL. The value is raw: quotes and escapes are still in it, and
/// the builder removes them when it expands the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    /// `ENV key the whole rest` (no `=`): the value is the rest of the line.
    pub legacy: bool,
}

/// A here-document: `RUN <<EOF` ... `EOF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator word, without quotes.
    pub name: String,
    /// The file descriptor in `3<<EOF`; 0 (standard input) when none is given.
    pub fd: u32,
    /// False when the word was quoted (`<<"EOF"`, `<<'EOF'`): the body is then not expanded.
    pub expand: bool,
    /// `<<-EOF`: leading tabs are removed from the body and the terminator line.
    pub chomp: bool,
    /// The body as written, each line with its newline.
    pub content: String,
}
// ANCHOR_END: ast

/// A Dockerfile that cannot be parsed, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line where the problem starts.
    pub line: usize,
    /// Last line of the instruction it is in (the same as `line` for a single line).
    pub end_line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.end_line > self.line {
            write!(f, "lines {}-{}: {}", self.line, self.end_line, self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for ParseError {}

fn error(line: usize, end_line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        end_line: end_line.max(line),
        message: message.into(),
    }
}

/// Parses a Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut d = Directives::new();
    let mut instructions = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut next = 0; // index of the next physical line to read
    let mut current = 0; // 1-based number of the last line read

    while next < lines.len() {
        let raw = lines[next];
        next += 1;
        current += 1;
        if is_comment(raw) {
            let c = trim_newline(raw).trim_start();
            comments.push(c[1..].trim().to_string());
        }
        let first = process_line(&mut d, raw, true, current)?;
        let start = current;
        let (part, mut end_of_line) = trim_continuation(first, d.escape);
        if end_of_line && part.is_empty() {
            continue;
        }
        let mut line = part.to_string();
        let mut empty_continuation = false;
        while !end_of_line && next < lines.len() {
            let raw = lines[next];
            next += 1;
            current += 1;
            let cont = process_line(&mut d, raw, false, current)?;
            if is_comment(raw) {
                continue;
            }
            if cont.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, eol) = trim_continuation(cont, d.escape);
            end_of_line = eol;
            line.push_str(part);
        }
        if empty_continuation {
            warnings.push(format!(
                "lines {start}-{current}: empty continuation line (these will become errors in a future release)"
            ));
        }

        let mut ins = instruction_from_line(&line, &d).map_err(|m| error(start, current, m))?;

        // Heredocs: the lines after the instruction, up to each terminator in turn.
        let host = match &mut ins.args {
            Args::Trigger(inner) => inner.as_mut(),
            _ => &mut ins,
        };
        if can_contain_heredoc(host) {
            let docs = heredocs_from_line(&line).map_err(|m| error(start, current, m))?;
            for mut doc in docs {
                let mut terminated = false;
                while next < lines.len() {
                    let raw = lines[next];
                    next += 1;
                    current += 1;
                    let mut candidate = trim_newline(raw);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.content.push_str(raw);
                }
                if !terminated {
                    return Err(error(
                        start,
                        current,
                        format!("unterminated heredoc: no line `{}` after it", doc.name),
                    ));
                }
                host.heredocs.push(doc);
            }
        }

        ins.start_line = start;
        ins.end_line = current;
        if let Args::Trigger(inner) = &mut ins.args {
            inner.start_line = start;
            inner.end_line = current;
        }
        ins.comments = std::mem::take(&mut comments);
        instructions.push(ins);
    }

    if instructions.is_empty() {
        return Err(error(
            current.max(1),
            current.max(1),
            "file with no instructions",
        ));
    }
    Ok(Dockerfile {
        escape: d.escape,
        syntax: d.syntax,
        instructions,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Instruction {
        let df = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(df.instructions.len(), 1, "{df:#?}");
        df.instructions.into_iter().next().unwrap()
    }

    fn err(text: &str) -> ParseError {
        match parse(text) {
            Ok(df) => panic!("{text:?} parsed: {df:#?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn keywords_are_case_insensitive() {
        let df = parse("from busybox\nRun echo hi\nworkDIR /app\n").unwrap();
        let kws: Vec<Keyword> = df.instructions.iter().map(|i| i.keyword).collect();
        assert_eq!(kws, [Keyword::From, Keyword::Run, Keyword::Workdir]);
        assert_eq!(
            df.dump(),
            "(from \"busybox\")\n(run \"echo hi\")\n(workdir \"/app\")\n"
        );
    }

    #[test]
    fn exec_and_shell_form() {
        assert_eq!(
            one(r#"CMD ["nginx", "-g", "daemon off;"]"#).args,
            Args::Exec(vec!["nginx".into(), "-g".into(), "daemon off;".into()])
        );
        assert_eq!(
            one("CMD service nginx start").args,
            Args::Shell("service nginx start".into())
        );
        // Single quotes are not JSON: this is the shell form.
        assert_eq!(one("CMD ['a']").args, Args::Shell("['a']".into()));
        let e = err("CMD [\"a\", 1]");
        assert_eq!(e.line, 1);
        assert!(e.message.contains("strings only"), "{e}");
    }

    #[test]
    fn continuation_comments_and_spans() {
        let df = parse("FROM a\n\nRUN one \\\n# a comment inside\n\n    two \\\n  three\nCMD x\n")
            .unwrap();
        let run = &df.instructions[1];
        assert_eq!(run.args, Args::Shell("one     two   three".into()));
        assert_eq!((run.start_line, run.end_line), (3, 7));
        assert_eq!(df.instructions[2].start_line, 8);
        assert_eq!(
            df.warnings.len(),
            1,
            "the empty line inside is worth a warning"
        );
    }

    #[test]
    fn escaped_escape_does_not_continue() {
        let df = parse("ENV A=C:\\\\\nENV B x\n").unwrap();
        assert_eq!(df.instructions.len(), 2);
    }

    #[test]
    fn escape_directive_switches_to_backtick() {
        let df = parse("# escape=`\nFROM windows\nRUN dir C:\\ `\n  /s\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.instructions[1].args, Args::Shell("dir C:\\   /s".into()));
    }

    #[test]
    fn directives_only_count_at_the_top() {
        let df = parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(df.escape, '`');
        // After a blank line, an ordinary comment or an instruction, it is just a comment.
        for text in [
            "\n# escape=`\nFROM a\n",
            "# hello\n# escape=`\nFROM a\n",
            "FROM a\n# escape=`\n",
        ] {
            assert_eq!(parse(text).unwrap().escape, '\\', "{text:?}");
        }
    }

    #[test]
    fn directive_errors_name_their_line() {
        let e = err("# escape=`\n# escape=\\\nFROM a\n");
        assert_eq!(e.line, 2);
        assert_eq!(e.message, "only one escape parser directive can be used");
        let e = err("# escape=x\nFROM a\n");
        assert_eq!(
            e.to_string(),
            "line 1: invalid escape token 'x' does not match ` or \\"
        );
    }

    #[test]
    fn flags_are_kept_apart_from_arguments() {
        let i = one("COPY --from=build --chown=app:app --chmod=0755 --link /out /bin/");
        assert_eq!(
            i.flags,
            ["--from=build", "--chown=app:app", "--chmod=0755", "--link"]
        );
        assert_eq!(i.args, Args::Words(vec!["/out".into(), "/bin/".into()]));
        let i = one("RUN --mount=type=cache,target=/var/cache/apt --network=none apt-get update");
        assert_eq!(i.flags.len(), 2);
        assert_eq!(i.args, Args::Shell("apt-get update".into()));
        let i = one("FROM --platform=$BUILDPLATFORM golang:1.22 AS build");
        assert_eq!(i.flags, ["--platform=$BUILDPLATFORM"]);
        assert_eq!(
            i.dump(),
            r#"from ["--platform=$BUILDPLATFORM"] "golang:1.22" "AS" "build""#
        );
        let i = one("COPY --chown=\"a b\" -- --odd-name /x");
        assert_eq!(i.flags, ["--chown=a b"]);
        assert_eq!(i.args, Args::Words(vec!["--odd-name".into(), "/x".into()]));
    }

    #[test]
    fn env_forms() {
        let i = one("ENV A=1 B=\"two words\" C=x\\ y");
        assert_eq!(
            i.dump(),
            r#"env "A" "1" "=" "B" "\"two words\"" "=" "C" "x\\ y" "=""#
        );
        let i = one("ENV PATH /usr/local/bin:$PATH  and more");
        assert_eq!(
            i.args,
            Args::Pairs(vec![KeyValue {
                key: "PATH".into(),
                value: "/usr/local/bin:$PATH  and more".into(),
                legacy: true
            }])
        );
        let e = err("FROM a\nENV A=1 B\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains(r#"can't find = in "B""#), "{e}");
        assert_eq!(
            err("FROM a\nLABEL x\n").message,
            "LABEL must have two arguments"
        );
    }

    #[test]
    fn onbuild_nests_and_refuses_chains() {
        let i = one("ONBUILD COPY --chown=1 . /src");
        assert_eq!(i.dump(), r#"onbuild (copy ["--chown=1"] "." "/src")"#);
        assert!(err("ONBUILD ONBUILD RUN x")
            .message
            .contains("Chaining ONBUILD"));
        assert_eq!(
            err("ONBUILD from x").message,
            "FROM isn't allowed as an ONBUILD trigger"
        );
    }

    #[test]
    fn unknown_instruction_is_an_error_with_its_line() {
        let e = err("FROM a\n\nRUNN echo\n");
        assert_eq!(
            (e.line, e.message.as_str()),
            (3, "unknown instruction: RUNN")
        );
        assert_eq!(e.to_string(), "line 3: unknown instruction: RUNN");
    }

    #[test]
    fn heredoc_run_and_copy() {
        let df = parse(
            "FROM a\nRUN <<EOF\necho $HOME\nmkdir /x\nEOF\nCOPY <<'CONF' /etc/app.conf\nkey=$v\nCONF\nCMD x\n",
        )
        .unwrap();
        let run = &df.instructions[1];
        assert_eq!(run.args, Args::Shell("<<EOF".into()));
        assert_eq!((run.start_line, run.end_line), (2, 5));
        assert_eq!(
            run.heredocs,
            [Heredoc {
                name: "EOF".into(),
                fd: 0,
                expand: true,
                chomp: false,
                content: "echo $HOME\nmkdir /x\n".into()
            }]
        );
        let copy = &df.instructions[2];
        assert_eq!(
            copy.args,
            Args::Words(vec!["<<'CONF'".into(), "/etc/app.conf".into()])
        );
        assert_eq!(copy.heredocs[0].name, "CONF");
        assert!(
            !copy.heredocs[0].expand,
            "a quoted word means a literal body"
        );
        assert_eq!(copy.heredocs[0].content, "key=$v\n");
        assert_eq!(df.instructions[3].start_line, 9);
    }

    #[test]
    fn heredoc_chomp_several_and_fd() {
        let df = parse("FROM a\nRUN <<-A 3<<\"B\" cat /dev/fd/3\n\tone\n\t\ttwo\n\tA\nthree\nB\n")
            .unwrap();
        let run = &df.instructions[1];
        assert_eq!(run.heredocs.len(), 2);
        let (a, b) = (&run.heredocs[0], &run.heredocs[1]);
        assert!(a.chomp && a.expand);
        assert_eq!(a.content, "\tone\n\t\ttwo\n");
        assert_eq!(a.body(), "one\ntwo\n");
        assert_eq!((b.name.as_str(), b.fd, b.expand), ("B", 3, false));
        assert_eq!(b.content, "three\n");
        assert_eq!(run.end_line, 7);
    }

    #[test]
    fn heredoc_not_in_exec_form_or_quotes() {
        let df =
            parse("FROM a\nRUN [\"cat\", \"<<EOF\"]\nRUN echo \"<<EOF\"\nCMD <<EOF\n").unwrap();
        assert!(df.instructions.iter().all(|i| i.heredocs.is_empty()));
        assert_eq!(df.instructions.len(), 4);
    }

    #[test]
    fn unterminated_heredoc() {
        let e = err("FROM a\nRUN <<EOF\necho\n");
        assert_eq!((e.line, e.end_line), (2, 3));
        assert!(e.message.starts_with("unterminated heredoc"), "{e}");
    }

    #[test]
    fn empty_files() {
        assert_eq!(err("").message, "file with no instructions");
        let e = err("# just\n# comments\n\n");
        assert_eq!(
            (e.line, e.message.as_str()),
            (3, "file with no instructions")
        );
    }

    #[test]
    fn bom_and_crlf() {
        let df = parse("\u{feff}FROM a\r\nRUN x \\\r\n  y\r\n").unwrap();
        assert_eq!(df.dump(), "(from \"a\")\n(run \"x   y\")\n");
    }

    #[test]
    fn healthcheck_shapes() {
        assert_eq!(one("HEALTHCHECK NONE").dump(), r#"healthcheck "NONE""#);
        assert_eq!(
            one("HEALTHCHECK --retries=3 CMD [\"curl\", \"-f\", \"http://x/\"]").dump(),
            r#"healthcheck ["--retries=3"] "CMD" "curl" "-f" "http://x/""#
        );
    }

    #[test]
    fn readable_summary() {
        let df = parse("FROM a AS b\nCOPY --from=b <<EOF /x\nhi\nEOF\nCMD [\"sh\"]\n").unwrap();
        let s: Vec<String> = df.instructions.iter().map(|i| i.summary()).collect();
        assert_eq!(
            s,
            [
                "FROM a AS b",
                "COPY --from=b <<EOF /x + heredoc EOF (1 line)",
                "CMD (exec) [\"sh\"]"
            ]
        );
    }
}
