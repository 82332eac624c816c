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
//! The shell equivalent of this half is `docker buildx build --check .`: read and check the
//! Dockerfile, build nothing.
//!
//! The second half *carries out* the instructions, into lab 04's image store:
//!
//! - [`builder`] runs the steps in order and prints Docker's classic `Step N/M :` output;
//! - [`runstep`] is a `RUN`: a container from labs 02 to 04 on the image so far, whose
//!   upper dir becomes the step's layer;
//! - [`layers`] makes the layers of `COPY`, `ADD` and `WORKDIR` without a container, reading
//!   the image's layers as overlayfs would;
//! - [`context`] is the build context and `.dockerignore`; [`archive`] reads the tar
//!   archives (gzip, bzip2, xz, zstd) that contexts and `ADD` sources may be;
//! - [`cache`] is the build cache: a step built before on the same parent is reused;
//! - [`change`] applies Dockerfile lines to an image's config without a build, for
//!   `docker commit --change`.
//!
//! The shell equivalent of this half is `docker build -t NAME .` with the classic builder
//! (`DOCKER_BUILDKIT=0`), whose output format it follows.

pub mod archive;
pub mod builder;
pub mod cache;
pub mod change;
pub mod context;
pub mod goquote;
pub mod layers;
pub mod parser;
pub mod runstep;
pub mod shell;

pub use builder::{build, BuildOptions, Built, Network, RunFailed};
pub use parser::{parse, Args, Dockerfile, Heredoc, Instruction, KeyValue, Keyword, ParseError};
pub use shell::{expands_variables, ExpandError, Lexer};
