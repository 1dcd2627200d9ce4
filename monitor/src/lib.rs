//! `monitor`: Probes hosts and services on schedules and runs alerts; one-shot probes for shell pipelines and cron.
//!
//! This crate holds the tool's logic as modules; `main.rs` only parses the command line and calls in:
//! [`probe`], the `monitor probe` command (every probe kind of `common::probe`, one line per
//! target, for the shell); [`daemon`], `monitor run` (the loop around the probe engine, the rules,
//! the alerts and the state file) with [`control`] (its socket's requests and how the clients show
//! the replies); [`config`] (`monitor.toml`, `monitor check`), [`rules`] (mon's suppression rules
//! as a pure state machine), [`service`] (a service's result from its hosts'), [`alert`] (alert
//! calls as mon makes them), [`state`] (the state file) and [`import`] (`monitor import mon.cf`).

pub mod alert;
pub mod config;
pub mod control;
pub mod daemon;
pub mod import;
pub mod probe;
pub mod rules;
pub mod service;
pub mod state;

/// One line saying what the tool is for, shown by `monitor --help`.
pub const ABOUT: &str = "Probes hosts and services on schedules and runs alerts; one-shot probes for shell pipelines and cron";
