//! Code shared by the toolkit's binaries (`hbeat`, `ldir`, `fakeip`, `monitor`), split by subject:
//! [`config`] (TOML loading and error reporting), [`daemon`] (logging, signals, systemd notify,
//! exit codes) and [`control`] (the control socket's JSON request/reply). Later subjects (IPVS netlink,
//! addresses and ARP, probes) join as their own modules. Nothing here starts threads or touches the
//! system on its own: callers decide.

pub mod blocking;
pub mod config;
pub mod control;
pub mod daemon;
pub mod ipvs;
pub mod net;
pub mod netlink;
pub mod probe;
