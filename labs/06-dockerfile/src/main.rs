//! `lab06-dockerfile`: read a Dockerfile the way the builder does.
//!
//! The mechanism lives in the library (`lab06_dockerfile`); this is only its front end.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Dockerfile parser (and, later, builder) for Dockyard lab 06.
#[derive(Parser, Debug)]
#[command(name = "lab06-dockerfile", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse FILE and print its instructions, one per line with their line span.
    Parse {
        /// Print buildkit's AST dump format instead: `(instr ["--flag" ...] "arg" ...)`.
        #[arg(long)]
        dump: bool,
        /// The Dockerfile; `-` reads standard input.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Expand WORD as the builder expands WORKDIR, COPY or ENV arguments, and print it.
    Expand {
        /// A variable, NAME=VALUE (repeatable). Nothing else is set.
        #[arg(long = "env", short = 'e', value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// The escape character: a backslash (the default) or a backtick, as after an escape directive.
        #[arg(long, default_value_t = '\\')]
        escape: char,
        /// Print each word on its own line, split as EXPOSE or VOLUME split them.
        #[arg(long)]
        words: bool,
        #[arg(value_name = "WORD", allow_hyphen_values = true)]
        word: String,
    },
    /// Build an image from a Dockerfile (not implemented yet).
    Build {
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and --version are not errors; bad usage exits 125 as in docker.
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Parse { dump, file } => parse(&file, dump),
        Command::Expand {
            env,
            escape,
            words,
            word,
        } => expand(&env, escape, words, &word),
        Command::Build { .. } => {
            eprintln!(
                "lab06-dockerfile: build is not implemented yet (it needs the overlay layers of \
                 lab 04 and the network of lab 05); `parse` works"
            );
            ExitCode::from(125)
        }
    }
}

fn parse(file: &PathBuf, dump: bool) -> ExitCode {
    let shown = file.display();
    let mut bytes = Vec::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_end(&mut bytes).map(|_| ()))
    };
    if let Err(e) = read {
        eprintln!("lab06-dockerfile: reading {shown}: {e}");
        return ExitCode::from(1);
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = upto.iter().filter(|b| **b == b'\n').count() + 1;
            eprintln!("lab06-dockerfile: {shown}:{line}: the file is not valid UTF-8");
            return ExitCode::from(1);
        }
    };
    let df = match lab06_dockerfile::parse(&text) {
        Ok(df) => df,
        Err(e) => {
            eprintln!("lab06-dockerfile: {shown}:{}: {}", e.line, e.message);
            return ExitCode::from(1);
        }
    };
    for w in &df.warnings {
        eprintln!("lab06-dockerfile: warning: {shown}: {w}");
    }
    if dump {
        print!("{}", df.dump());
    } else {
        for ins in &df.instructions {
            let span = format!("{}-{}", ins.start_line, ins.end_line);
            println!("{span:<8}{}", ins.summary());
        }
    }
    ExitCode::SUCCESS
}

fn expand(env: &[String], escape: char, words: bool, word: &str) -> ExitCode {
    if escape != '\\' && escape != '`' {
        eprintln!("lab06-dockerfile: invalid escape character {escape:?}: use \\ or `");
        return ExitCode::from(125);
    }
    let mut vars = std::collections::BTreeMap::new();
    for e in env {
        // NAME alone sets it to the empty string, as ENV NAME= does.
        let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
        vars.insert(k.to_string(), v.to_string());
    }
    let lexer = lab06_dockerfile::Lexer::new(escape);
    let result = if words {
        lexer.expand_words(word, &vars)
    } else {
        lexer.expand_word(word, &vars).map(|w| vec![w])
    };
    match result {
        Ok(out) => {
            for w in out {
                println!("{w}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lab06-dockerfile: {e}");
            ExitCode::from(1)
        }
    }
}
