//! Lab 03: cgroups. Not written yet.
