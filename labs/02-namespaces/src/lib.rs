//! Lab 02: namespaces. Not written yet.
