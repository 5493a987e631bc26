//! `fkvs-cli`: the command-line client (PROTOCOL.md §5, with the §7.2
//! decisions Q20–Q25).
//!
//! The pure pieces: a typed line becomes tokens ([`tokenize`]), tokens
//! become a request or a client-side usage error ([`command`]), and a reply
//! is printed exactly as upstream prints it ([`print`]).

pub mod command;
pub mod print;
pub mod tokenize;
