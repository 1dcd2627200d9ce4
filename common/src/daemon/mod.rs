//! Daemon plumbing (being written).
