//! Shared helpers for the end-to-end tests.
pub mod booktest;
pub mod dockyard;
pub mod fixtures;
pub mod pace;
pub mod subids;
