//! Loading TOML configuration with error messages a user can act on.
//!
//! [`load_file`] reads one file, [`load_dir`] every `*.toml` file of a directory, and [`parse_str`]
//! parses text that is already in memory; all three deserialize with serde into the caller's schema
//! type and then run its [`Validate`] checks. Every problem of every file is collected into one
//! [`ConfigErrors`], which displays one problem per line as
//! `{file}:{line}:{column}: {field path}: {message}`, for example
//! `/etc/ldir/web.toml:7:11: virtual[0].real[0].weight: must be 0..=65535, got -1`.
//! Lines and columns are 1-based, columns count characters, not bytes. Within one file serde stops
//! at the first error that does not fit the schema; the semantic checks of [`Validate`] run only
//! once the file fits and then report every problem they find, each at its own place, which is why
//! schema fields that a check may complain about are kept as [`Spanned<T>`](toml::Spanned).
//!
//! The module also holds the value types that the tools' configurations share, each parsed from a
//! TOML string with a precise message: [`Duration`] (`"2s"`, `"1m30s"`), [`IpAddr`], [`Cidr`]
//! (`"192.0.2.100/24"`), [`SocketAddr`] (`"[2001:db8::13]:80"`) and [`IfName`].
//!
//! It deliberately does not know any tool's schema, search default locations such as
//! `/etc/<tool>/`, merge several files into one value, expand environment variables, or check
//! anything across files (the caller gets every file's value from [`load_dir`] and may do that).
//! It performs no I/O besides reading the files it is given, and it never panics on any input.
//!
//! # Example
//!
//! ```
//! use common::config::{self, Duration, SocketAddr, Validate, Validator};
//! use serde::Deserialize;
//! use toml::Spanned;
//!
//! #[derive(Debug, Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Check {
//!     target: SocketAddr,
//!     interval: Spanned<Duration>,
//!     timeout: Spanned<Duration>,
//! }
//!
//! impl Validate for Check {
//!     fn validate(&self, v: &mut Validator) {
//!         if self.timeout.get_ref() >= self.interval.get_ref() {
//!             v.error("timeout", &self.timeout, format_args!(
//!                 "must be shorter than interval ({})", self.interval.get_ref()
//!             ));
//!         }
//!     }
//! }
//!
//! let ok: Check = config::parse_str(
//!     "check.toml",
//!     "target = \"192.0.2.13:80\"\ninterval = \"2s\"\ntimeout = \"500ms\"\n",
//! )?;
//! assert_eq!(ok.timeout.get_ref().as_std(), std::time::Duration::from_millis(500));
//!
//! let bad = config::parse_str::<Check>(
//!     "check.toml",
//!     "target = \"192.0.2.13:80\"\ninterval = \"2s\"\ntimeout = \"5s\"\n",
//! )
//! .unwrap_err();
//! assert_eq!(
//!     bad.to_string(),
//!     "check.toml:3:11: timeout: must be shorter than interval (2s)"
//! );
//!
//! let bad = config::parse_str::<Check>("check.toml", "target = \"2001:db8::13:80\"\n")
//!     .unwrap_err();
//! assert_eq!(
//!     bad.to_string(),
//!     "check.toml:1:10: target: an IPv6 address needs brackets before the port: \
//!      write \"[2001:db8::13]:80\""
//! );
//! # Ok::<(), config::ConfigErrors>(())
//! ```

mod error;
mod fast;
mod load;
mod validate;
mod values;

pub use error::{ConfigError, ConfigErrors, Location, Position, did_you_mean};
pub use load::{from_value, load_dir, load_file, parse_str};
pub use validate::{Validate, Validator};
pub use values::{Cidr, Duration, IfName, IpAddr, SocketAddr, ValueError};
