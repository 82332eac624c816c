//! # Lab 06: Dockerfile builds
//!
//! `docker build` turns a text file into an image. Before any layer is made, the builder has
//! to *read* the file, and that is the first half of this lab:
//!
//! - [`parser`] turns the text into instructions (an AST): comments, line continuations,
//!   parser directives, exec versus shell form, flags, heredocs, `ONBUILD` nesting. Its
//!   [`parser::Dockerfile::dump`] prints buildkit's own AST format, so buildkit's test cases
//!   check it byte for byte.
//! - [`shell`] is the small shell-like lexer that expands `$VAR` and `${VAR:-default}` in
//!   the instructions that have no shell to do it (`WORKDIR`, `COPY`, `ENV`, ...).
//!
//! The second half, the builder (each `RUN` in a container from labs 01 to 05, each step an
//! overlay layer from lab 04, and the build cache), is not written yet; `lab06-dockerfile
//! build` says so and exits 125.
//!
//! The shell equivalent of this half is `docker buildx build --check .`: read and check the
//! Dockerfile, build nothing.

pub mod goquote;
pub mod parser;
pub mod shell;

pub use lab05_netns_veth;
pub use parser::{parse, Args, Dockerfile, Heredoc, Instruction, KeyValue, Keyword, ParseError};
pub use shell::{expands_variables, ExpandError, Lexer};
