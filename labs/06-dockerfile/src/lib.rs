//! Lab 06: dockerfile. Not written yet.
