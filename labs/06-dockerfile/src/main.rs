//! `lab06-dockerfile`: read a Dockerfile the way the builder does.
//!
//! The mechanism lives in the library (`lab06_dockerfile`); this is only its front end.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Dockerfile parser and builder for Dockyard lab 06.
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
    /// Build an image from a Dockerfile and a context into the image store.
    Build {
        /// Name and optionally a tag (`name:tag`); repeatable.
        #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
        tags: Vec<String>,
        /// The Dockerfile (default: CONTEXT/Dockerfile; `-` reads standard input).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
        /// A build-time variable: NAME=VALUE, or NAME to take it from the environment.
        #[arg(long = "build-arg", value_name = "NAME=VALUE")]
        build_args: Vec<String>,
        /// Build every step again, ignoring the build cache.
        #[arg(long)]
        no_cache: bool,
        /// The build stage to stop at.
        #[arg(long, value_name = "STAGE")]
        target: Option<String>,
        /// The parent cgroup of the RUN steps' containers.
        #[arg(long, value_name = "PATH")]
        cgroup_parent: Option<String>,
        /// Print the image ID alone; the build's output only if it fails.
        #[arg(short = 'q', long)]
        quiet: bool,
        /// The image store (default: $DOCKYARD_ROOT, else /var/lib/dockyard: the engine's).
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
        /// A directory, a tar archive, or `-` (a Dockerfile or a tar archive on stdin).
        #[arg(value_name = "CONTEXT", allow_hyphen_values = true)]
        context: String,
    },
    /// Print an image's config, the JSON blob its manifest names; with --field, one field of
    /// its `config` as JSON (`--field Env` is `docker image inspect -f '{{json .Config.Env}}'`).
    Inspect {
        /// A field of the config's `config` object: Env, Cmd, Entrypoint, WorkingDir, ...
        #[arg(long, value_name = "NAME")]
        field: Option<String>,
        /// The image store (default: $DOCKYARD_ROOT, else /var/lib/dockyard: the engine's).
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
        #[arg(value_name = "IMAGE")]
        image: String,
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
        Command::Build {
            tags,
            file,
            build_args,
            no_cache,
            target,
            cgroup_parent,
            quiet,
            store,
            context,
        } => {
            let opts = lab06_dockerfile::BuildOptions {
                tags,
                dockerfile: file,
                context,
                build_args,
                no_cache,
                target,
                cgroup_parent,
                quiet,
                ..Default::default()
            };
            build(store, &opts)
        }
        Command::Inspect {
            field,
            store,
            image,
        } => inspect(store, field.as_deref(), &image),
    }
}

/// The store `--store` names, else `$DOCKYARD_ROOT`, else the engine's.
fn store_root(store: Option<PathBuf>) -> PathBuf {
    store
        .or_else(|| std::env::var_os("DOCKYARD_ROOT").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/lib/dockyard"))
}

/// Prints the image's config blob, or one field of its `config` (`null` when it has none).
fn inspect(store: Option<PathBuf>, field: Option<&str>, name: &str) -> ExitCode {
    let result = (|| -> anyhow::Result<String> {
        let store = lab04_overlay::Store::open(store_root(store))?;
        let image = store.image(name)?;
        let path = store.blob_path(&image.config_digest)?;
        let bytes = std::fs::read(&path)
            .map_err(|e| anyhow::anyhow!("reading the config blob {}: {e}", path.display()))?;
        let Some(field) = field else {
            return Ok(String::from_utf8_lossy(&bytes).into_owned());
        };
        let config: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("the config blob {} is not JSON: {e}", path.display()))?;
        Ok(config["config"][field].to_string())
    })();
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lab06-dockerfile: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Builds into the store; a failed build exits 1 (a failing RUN: its status), as `docker build` does.
fn build(store: Option<PathBuf>, opts: &lab06_dockerfile::BuildOptions) -> ExitCode {
    use lab04_overlay as overlay;
    // RUN steps start containers: run from a sealed copy of this binary (CVE-2019-5736),
    // as `dockyard run` does.
    let sealed = lab02_namespaces::security::ensure_sealed_binary();
    let result = sealed.and_then(|()| {
        let store = overlay::Store::open(store_root(store))?;
        lab06_dockerfile::build(&store, opts)
    });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            // A failing RUN: the command's own status, as `docker build` exits.
            let code = e
                .downcast_ref::<lab06_dockerfile::RunFailed>()
                .map_or(1, |f| f.code);
            ExitCode::from(u8::try_from(code).unwrap_or(1))
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
