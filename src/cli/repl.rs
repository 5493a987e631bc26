//! The interactive loop (PROTOCOL.md §5.3): rustyline line editing, a
//! history file, one command per line.
//!
//! * Banner: with `verbose true`, `Connected to server <host> on port <port>`
//!   (TCP) or `Connected to server via unix domain socket ` (Unix); then
//!   always `Type 'exit' to quit.`.
//! * Prompt: `<host>:<port>> ` (an IPv6 host in brackets), or
//!   `<socket path>> ` over a Unix socket (Q23: upstream showed a constant
//!   `localhost:5995`).
//! * `exit` quits (any case, surrounding blanks ignored); so do end of input
//!   and Ctrl-C, with status 0 (Q24: upstream spun forever). Blank lines are
//!   skipped and not kept in the history.
//! * History: `$HOME/.fkvs_cli_history`, or `./.fkvs_cli_history` when HOME
//!   is unset or empty, at most [`HISTORY_ENTRIES_MAX`] entries, rewritten
//!   after every command line. The file is linenoise's format, one entry per
//!   line, mode 0600, so upstream's client and ours can share it.
//! * When stdin is not a terminal, rustyline reads plain lines with no
//!   prompt and no editing, so lines can be piped in.
//! * A malformed reply is reported on stderr and the loop goes on (the frame
//!   was consumed whole, so the stream stays in step); a broken connection
//!   ends the REPL with status 1.

use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use rustyline::error::ReadlineError;
use rustyline::history::{DefaultHistory, History};
use rustyline::{Config, Editor};

use super::command;
use super::tokenize::tokenize;
use super::{Failure, Invocation};
use crate::client::{Client, ClientError, Endpoint};
use crate::config_file::is_c_space;

/// History entries kept in memory and in the file, as upstream.
pub const HISTORY_ENTRIES_MAX: usize = 50;

/// The history file's name, in HOME or the working directory.
pub const HISTORY_FILE_NAME: &str = ".fkvs_cli_history";

type LineEditor = Editor<(), DefaultHistory>;

/// Connects, prints the banner, then runs typed lines until `exit` or EOF.
pub fn run(invocation: &Invocation) -> Result<(), Failure> {
    let mut client = super::connect(&invocation.endpoint)?;
    let config = Config::builder()
        .max_history_size(HISTORY_ENTRIES_MAX)
        .map_err(|err| Failure::Input(err.to_string()))?
        .auto_add_history(false)
        .build();
    let mut editor = LineEditor::with_config(config).map_err(|err| Failure::Input(err.to_string()))?;
    let mut history = HistoryFile::locate();
    history.load(&mut editor);

    write_banner(&invocation.endpoint, invocation.verbose).map_err(Failure::Output)?;
    let prompt = format!("{}> ", invocation.endpoint);
    loop {
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => return Ok(()),
            Err(ReadlineError::Io(err)) if err.kind() == io::ErrorKind::InvalidData => {
                eprintln!("fkvs-cli: skipped a line that is not valid UTF-8");
                continue;
            }
            Err(err) => return Err(Failure::Input(err.to_string())),
        };
        if is_exit(&line) {
            return Ok(());
        }
        let tokens = tokenize(line.as_bytes());
        if tokens.is_empty() {
            continue;
        }
        history.add(&mut editor, &line);
        execute(&mut client, &tokens)?;
    }
}

fn write_banner(endpoint: &Endpoint, verbose: bool) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if verbose {
        match endpoint {
            Endpoint::Tcp { host, port } => writeln!(out, "Connected to server {host} on port {port}")?,
            Endpoint::Unix(_) => out.write_all(b"Connected to server via unix domain socket \n")?,
        }
    }
    out.write_all(b"Type 'exit' to quit.\n")?;
    out.flush()
}

fn is_exit(line: &str) -> bool {
    line.trim_matches(|c: char| c.is_ascii() && is_c_space(c as u8)).eq_ignore_ascii_case("exit")
}

/// Runs one typed line. Usage errors are printed and the loop goes on.
fn execute(client: &mut Client, tokens: &[&[u8]]) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    let result = match command::recognize(tokens) {
        Ok(request) => super::call_and_print(client, &request, &mut out),
        Err(err) => err.write_to(&mut out).and_then(|()| out.flush()).map_err(Failure::Output),
    };
    match result {
        Err(Failure::Session(ClientError::Malformed(err))) => {
            eprintln!("fkvs-cli: malformed reply: {err}");
            Ok(())
        }
        other => other,
    }
}

/// The history file, in linenoise's plain format.
struct HistoryFile {
    path: PathBuf,
    /// A failed save is reported once, not after every line.
    save_failed: bool,
}

impl HistoryFile {
    fn locate() -> HistoryFile {
        let path = match std::env::var_os("HOME") {
            Some(home) if !home.is_empty() => PathBuf::from(home).join(HISTORY_FILE_NAME),
            _ => PathBuf::from(HISTORY_FILE_NAME),
        };
        HistoryFile { path, save_failed: false }
    }

    /// Loads earlier entries; a missing or unreadable file is an empty history.
    fn load(&self, editor: &mut LineEditor) {
        let Ok(bytes) = std::fs::read(&self.path) else { return };
        for line in String::from_utf8_lossy(&bytes).lines() {
            if !line.is_empty() {
                let _ = editor.add_history_entry(line);
            }
        }
    }

    fn add(&mut self, editor: &mut LineEditor, line: &str) {
        let _ = editor.add_history_entry(line);
        if let Err(err) = self.save(editor.history()) {
            if !self.save_failed {
                eprintln!("fkvs-cli: cannot save the history to {}: {err}", self.path.display());
            }
            self.save_failed = true;
        }
    }

    fn save(&self, history: &DefaultHistory) -> io::Result<()> {
        let mut text = Vec::with_capacity(history.len() * 16);
        for entry in history.iter() {
            text.extend_from_slice(entry.as_bytes());
            text.push(b'\n');
        }
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&self.path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_in_any_case_with_blanks() {
        for line in ["exit", "EXIT", "  Exit\t", "exit\r"] {
            assert!(is_exit(line), "{line:?}");
        }
        for line in ["exit now", "exits", "'exit'", ""] {
            assert!(!is_exit(line), "{line:?}");
        }
    }
}
