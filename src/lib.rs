//! fkvs: a fast single-node in-memory key-value server.
//!
//! The request path is one line through the rooms below:
//! bytes in → [`io`] → [`protocol`] frames → [`commands`] → [`store`] →
//! replies → [`io`] → bytes out. `protocol`, `store` and `commands` are pure
//! (no I/O); the I/O backends know nothing of command semantics; the
//! [`server`] room wires config, lifecycle and metrics around them; [`cli`]
//! is the `fkvs-cli` program on top of [`client`], and [`bench`] the load
//! generator behind `fkvs-benchmark`.

pub mod bench;
pub mod cli;
pub mod client;
pub mod clock;
pub mod commands;
pub mod config_file;
pub mod io;
pub mod log;
pub mod protocol;
pub mod server;
pub mod store;
