//! Lab 04: overlay. Not written yet.
