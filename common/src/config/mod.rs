//! TOML configuration loading (being written).
