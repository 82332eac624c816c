//! Flag values that docker's CLI parses itself, while it reads the command
//! line (a pflag `Value` whose `Set` fails): their refusal is the client's,
//! before anything is asked of the engine, and `cli_errors` words it as
//! docker does: `invalid argument "12x" for "--shm-size" flag: invalid
//! suffix: 'x'`, exit 125. A module of its own, which both `cli` (the
//! parsers) and `cli_errors` (the report) use.

/// A flag's value that docker's CLI refuses while it parses the command
/// line (its pflag `Set` failed), with docker's reason (`invalid size:
/// 'abc'`): [`crate::cli_errors::parse_error_report`] words it as docker does.
#[derive(Debug)]
pub struct FlagValue(pub String);

impl std::fmt::Display for FlagValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FlagValue {}

/// A size flag of docker's `opts.MemBytes` kind (`--shm-size 128m`), parsed
/// as its CLI parses it (go-units' `RAMInBytes`), in bytes.
pub fn mem_bytes(value: &str) -> Result<i64, FlagValue> {
    dockyard::units::ram_in_bytes(value).map_err(FlagValue)
}
