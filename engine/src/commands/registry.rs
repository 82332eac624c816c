//! `dockyard pull`, `push`, `login`, `logout` and `tag`: docker's flags and
//! output over the core's `dockyard::distribution` (daemon.json's mirrors
//! and insecure registries, the credentials file), itself over lab 04's
//! distribution protocol. What is here is the front end's: progress bars
//! on a terminal, a line per event elsewhere, and asking for a password.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use lab04_overlay::reference::{Reference, DOCKER_HUB};
use lab04_overlay::registry::Platform;

use super::Code;
use crate::cli::{LoginArgs, LogoutArgs, PullArgs, PushArgs, TagArgs};
use dockyard::distribution;
use dockyard::Engine;
use lab04_overlay::registry::{Credentials, Event};

// ---- progress --------------------------------------------------------------

/// Prints pull/push events as docker does: a line each when the output is
/// not a terminal; a bar per layer when it is.
struct Progress {
    bars: Option<(
        indicatif::MultiProgress,
        Mutex<BTreeMap<String, indicatif::ProgressBar>>,
    )>,
}

impl Progress {
    fn new() -> Progress {
        let bars = std::io::stdout()
            .is_terminal()
            .then(|| (indicatif::MultiProgress::new(), Mutex::new(BTreeMap::new())));
        Progress { bars }
    }

    fn event(&self, e: Event) {
        let (id, text) = match &e {
            Event::Waiting { id, .. } => (id, "Pulling fs layer".to_string()),
            Event::Downloading { id, done, total } => {
                if let Some((_, bars)) = &self.bars {
                    if let Some(b) = bars.lock().expect("bars").get(id) {
                        b.set_length(*total);
                        b.set_position(*done);
                        b.set_message("Downloading");
                    }
                }
                return;
            }
            Event::Downloaded { id } => (id, "Download complete".to_string()),
            Event::Extracted { id } => (id, "Pull complete".to_string()),
            Event::AlreadyExists { id } => (id, "Already exists".to_string()),
            Event::Preparing { id } => (id, "Preparing".to_string()),
            Event::Pushed { id } => (id, "Pushed".to_string()),
            Event::LayerExists { id } => (id, "Layer already exists".to_string()),
            Event::Mounted { id, from } => (id, format!("Mounted from {from}")),
        };
        match &self.bars {
            None => println!("{id}: {text}"),
            Some((multi, bars)) => {
                let mut bars = bars.lock().expect("bars");
                let bar = bars.entry(id.clone()).or_insert_with(|| {
                    let b = multi.add(indicatif::ProgressBar::new(0));
                    b.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{prefix}: {msg:<18} [{bar:40}] {bytes}/{total_bytes}",
                        )
                        .expect("a valid template")
                        .progress_chars("=> "),
                    );
                    b.set_prefix(id.clone());
                    b
                });
                if let Event::Waiting { total, .. } = e {
                    bar.set_length(total);
                }
                let done = matches!(
                    e,
                    Event::Extracted { .. }
                        | Event::AlreadyExists { .. }
                        | Event::Pushed { .. }
                        | Event::LayerExists { .. }
                        | Event::Mounted { .. }
                );
                if done {
                    bar.finish_with_message(text);
                } else {
                    bar.set_message(text);
                }
            }
        }
    }
}

// ---- the commands ----------------------------------------------------------

/// `docker pull [--platform P] REF`.
pub fn pull(engine: &Engine, args: &PullArgs) -> Result<Code> {
    let reference = Reference::parse(&args.image)?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    if !args.image.contains(':') && !args.image.contains('@') {
        println!("Using default tag: latest");
    }
    if let Some(tag) = &reference.tag {
        if reference.digest.is_none() {
            println!("{tag}: Pulling from {}", reference.path);
        }
    }
    let progress = Progress::new();
    let pulled = distribution::pull(
        engine,
        &reference,
        &platform,
        &|e: Event| progress.event(e),
        &mut |warning| eprintln!("{warning}"),
    )?;
    println!("Digest: {}", pulled.digest);
    if pulled.up_to_date {
        println!("Status: Image is up to date for {}", pulled.name);
    } else {
        println!("Status: Downloaded newer image for {}", pulled.name);
    }
    println!("{reference}");
    Ok(0)
}

/// `docker push REF`: the image must exist locally under that name
/// (`dockyard tag` gives it one).
pub fn push(engine: &Engine, args: &PushArgs) -> Result<Code> {
    let reference = Reference::parse(&args.image)?;
    let image = distribution::image_to_push(engine, &reference)?;
    let chunk = distribution::push_chunk_size()?;
    println!(
        "The push refers to repository [{}]",
        if reference.domain == DOCKER_HUB {
            reference.repository()
        } else {
            reference.familiar_repository()
        }
    );
    let progress = Progress::new();
    let pushed = distribution::push(engine, &image, &reference, chunk, &|e: Event| {
        progress.event(e)
    })?;
    println!(
        "{}: digest: {} size: {}",
        pushed.tag, pushed.digest, pushed.size
    );
    Ok(0)
}

/// `docker tag SOURCE TARGET`.
pub fn tag(engine: &Engine, args: &TagArgs) -> Result<Code> {
    distribution::tag(engine, &args.source, &args.target)?;
    Ok(0)
}

/// `docker login [-u USER] [-p PASS | --password-stdin] [SERVER]`: checks
/// the credentials against the registry (`GET /v2/`), then stores them.
pub fn login(engine: &Engine, args: &LoginArgs) -> Result<Code> {
    if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let stdin = std::io::stdin();
    let username = match &args.username {
        Some(u) => u.clone(),
        None if args.password_stdin => {
            bail!("Must provide --username with --password-stdin")
        }
        None => {
            if !stdin.is_terminal() {
                return Err(no_tty_login());
            }
            print!("Username: ");
            std::io::stdout().flush()?;
            let mut line = String::new();
            stdin.lock().read_line(&mut line)?;
            line.trim().to_string()
        }
    };
    let password = match (&args.password, args.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => p.clone(),
        (None, true) => {
            let mut p = String::new();
            std::io::Read::read_to_string(&mut stdin.lock(), &mut p)?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => read_password()?,
    };
    if username.is_empty() {
        bail!("Error: Non-null Username Required");
    }
    if password.is_empty() {
        bail!("Error: Password Required");
    }
    let creds = Credentials { username, password };
    let stored = distribution::login(engine, args.server.as_deref(), creds, &mut |warning| {
        eprintln!("{warning}")
    })?;
    println!(
        "WARNING! Your password will be stored unencrypted in {}.",
        stored.display()
    );
    println!("Login Succeeded");
    Ok(0)
}

/// docker's client refuses to prompt without a terminal: its words, with
/// its `Error: `, and exit 1.
fn no_tty_login() -> anyhow::Error {
    super::ClientRefusal("Error: Cannot perform an interactive login from a non TTY device".into())
        .into()
}

/// Reads a password from the terminal without echoing it.
fn read_password() -> Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(no_tty_login());
    }
    print!("Password: ");
    std::io::stdout().flush()?;
    let saved = tcgetattr(&stdin).context("reading the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("turning echo off")?;
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    println!();
    r.context("reading the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// `docker logout [SERVER]`.
pub fn logout(_engine: &Engine, args: &LogoutArgs) -> Result<Code> {
    let (removed, shown) = distribution::logout(args.server.as_deref())?;
    if removed {
        println!("Removing login credentials for {shown}");
    } else {
        println!("Not logged in to {shown}");
    }
    Ok(0)
}
