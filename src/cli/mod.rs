//! `fkvs-cli`: the command-line client (PROTOCOL.md §5, with the §7.2
//! decisions Q20–Q25).
//!
//! One line through the room: arguments and the client config resolve to an
//! [`Invocation`] (where to connect, what to run); a command, given as
//! command-line words or as a line typed or passed with `-c`, becomes tokens
//! ([`tokenize`]), then a request or a client-side usage error
//! ([`command`]); the blocking [`Client`] sends it and reads one reply, which
//! [`print`] writes exactly as upstream does. [`repl`] loops over typed
//! lines; one-shot mode runs one command and exits.
//!
//! Files: [`config`] reads `client.conf`; this file owns the flags, the
//! endpoint choice, one-shot mode and the mapping of every failure to a
//! message and an exit status:
//!
//! | status | when |
//! |---|---|
//! | 0 | the server answered (any reply, FAIL included), or the REPL ended by `exit`, EOF or Ctrl-C |
//! | 1 | cannot connect, the connection broke, a malformed reply, stdout or stdin failed |
//! | 2 | bad flags or config, an unknown command or wrong arguments in one-shot mode (nothing is sent) |

pub mod command;
pub mod config;
pub mod print;
pub mod repl;
pub mod tokenize;

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser};

use crate::client::{Client, ClientError, Endpoint};
use crate::protocol::Request;
use command::LineError;
use config::{ClientConfig, ConfigError};

/// The Unix socket used by `-u` when neither the flag nor the config names one.
pub const DEFAULT_UNIX_SOCKET: &str = "/tmp/fkvs/fkvs.sock";

/// Exit status when the server answered, or the REPL ended normally.
pub const EXIT_OK: u8 = 0;
/// Exit status for connection, I/O and reply errors.
pub const EXIT_IO: u8 = 1;
/// Exit status for usage and config errors.
pub const EXIT_USAGE: u8 = 2;

const EXAMPLES: &str = "\
Examples:
  fkvs-cli                          interactive, 127.0.0.1:5995 (or ./client.conf)
  fkvs-cli GET k                    run one command and exit
  fkvs-cli SET k \"a b\" EX 60        one shell word per token, so values may hold spaces
  fkvs-cli -p 6000 INCRBY n -5
  fkvs-cli -c \"SET k 'a b'\"         one line, quoted as in the REPL
  fkvs-cli -u /tmp/fkvs/fkvs.sock   interactive over a Unix socket
  fkvs-cli --non-interactive        one PING (prints \"PONG\"), for health checks";

/// `fkvs-cli [-d PATH] [-h HOST] [-p PORT] [-u [PATH]] [-c CMD] [-n] [COMMAND...]`
///
/// `-h` is the host, as upstream, so help is `--help` only (also `--h` and
/// any case of either, as upstream accepts).
#[derive(Debug, Parser)]
#[command(
    name = "fkvs-cli",
    version,
    about = "fkvs command-line client: an interactive prompt, or one command and exit",
    long_about = None,
    disable_help_flag = true,
    after_help = EXAMPLES
)]
struct Args {
    /// Client config file [default: ./client.conf when present]
    #[arg(short = 'd', value_name = "PATH")]
    config: Option<PathBuf>,
    /// Server host: IPv4 or IPv6 literal, or a name [default: config bind, 127.0.0.1]
    #[arg(short = 'h', value_name = "HOST")]
    host: Option<String>,
    /// Server port, 1..65535 [default: config port, 5995]
    #[arg(short = 'p', value_name = "PORT", allow_hyphen_values = true)]
    port: Option<String>,
    /// Use a Unix socket: PATH, else config unixsocket, else /tmp/fkvs/fkvs.sock. The path follows as
    /// `-u=PATH`, or as `-u PATH` when it contains a '/'
    #[arg(short = 'u', value_name = "PATH", num_args = 0..=1, require_equals = true, conflicts_with_all = ["host", "port"])]
    unix: Option<Option<PathBuf>>,
    /// Run this command line once and exit (quoted as in the REPL)
    #[arg(short = 'c', value_name = "CMD", conflicts_with = "command")]
    command_line: Option<OsString>,
    /// Run the command once and exit; PING when none is given
    #[arg(short = 'n', long = "non-interactive")]
    non_interactive: bool,
    /// Print help
    #[arg(long = "help", action = ArgAction::Help)]
    help: Option<bool>,
    /// A command to run once, one argument per token: GET k, SET k "a b" EX 10, ...
    #[arg(value_name = "COMMAND", trailing_var_arg = true)]
    command: Vec<OsString>,
}

/// What one run of `fkvs-cli` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub endpoint: Endpoint,
    pub verbose: bool,
    /// `None`: the REPL.
    pub command: Option<CommandSource>,
}

/// Where a one-shot command comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandSource {
    /// `-c CMD`: one line, tokenized as typed lines are (§5.5).
    Line(Vec<u8>),
    /// Trailing words: each is one token as given, never re-split, so values
    /// may hold spaces, quotes and any non-NUL bytes, with no length cut.
    Words(Vec<Vec<u8>>),
}

impl CommandSource {
    pub fn tokens(&self) -> Vec<&[u8]> {
        match self {
            CommandSource::Line(line) => tokenize::tokenize(line),
            CommandSource::Words(words) => words.iter().map(Vec::as_slice).collect(),
        }
    }
}

/// Everything that ends a run early, each with its message and status.
#[derive(Debug)]
pub enum Failure {
    /// clap's own error, help or version output.
    Args(clap::Error),
    /// A flag value that cannot be used.
    Usage(String),
    Config(ConfigError),
    /// An unknown command or wrong arguments; upstream's text is already on
    /// stdout.
    Rejected,
    Connect {
        endpoint: Endpoint,
        source: io::Error,
    },
    /// The connection broke, or the server's reply was malformed.
    Session(ClientError),
    /// Reading typed lines failed.
    Input(String),
    /// Writing to stdout failed.
    Output(io::Error),
}

impl Failure {
    /// Prints the message (if any) on stderr and gives the exit status.
    pub fn report(&self) -> u8 {
        let mut stderr = io::stderr().lock();
        // Nothing sensible is left to do when stderr itself fails.
        let _ = match self {
            Failure::Args(err) => {
                let _ = err.print();
                return u8::try_from(err.exit_code()).unwrap_or(EXIT_USAGE);
            }
            Failure::Rejected => return EXIT_USAGE,
            Failure::Output(err) if err.kind() == io::ErrorKind::BrokenPipe => return EXIT_IO,
            Failure::Usage(message) => writeln!(stderr, "fkvs-cli: {message}"),
            Failure::Config(err) => writeln!(stderr, "fkvs-cli: {err}"),
            Failure::Connect { endpoint, source } => {
                let hint = match source.kind() {
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => " (is fkvs-server running?)",
                    _ => "",
                };
                writeln!(stderr, "Could not connect to fkvs at {endpoint}: {}{hint}", os_reason(source))
            }
            Failure::Session(ClientError::Closed) => writeln!(stderr, "fkvs-cli: the server closed the connection"),
            Failure::Session(ClientError::Io(err)) => {
                writeln!(stderr, "fkvs-cli: connection error: {}", os_reason(err))
            }
            Failure::Session(err) => writeln!(stderr, "fkvs-cli: {err}"),
            Failure::Input(message) => writeln!(stderr, "fkvs-cli: cannot read input: {message}"),
            Failure::Output(err) => writeln!(stderr, "fkvs-cli: cannot write to stdout: {}", os_reason(err)),
        };
        match self {
            Failure::Usage(_) | Failure::Config(_) => EXIT_USAGE,
            _ => EXIT_IO,
        }
    }
}

/// An I/O error's text without the trailing ` (os error N)`.
fn os_reason(err: &io::Error) -> String {
    let text = err.to_string();
    match err.raw_os_error() {
        Some(code) => text.strip_suffix(&format!(" (os error {code})")).map_or(text.clone(), str::to_owned),
        None => text,
    }
}

/// The whole `fkvs-cli` program.
pub fn main() -> ExitCode {
    let status = match parse(std::env::args_os()).and_then(|invocation| run(&invocation)) {
        Ok(()) => EXIT_OK,
        Err(failure) => failure.report(),
    };
    ExitCode::from(status)
}

/// Resolves the arguments (program name first) and the client config.
pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Invocation, Failure> {
    let args = Args::try_parse_from(normalize(argv.into_iter().collect())).map_err(Failure::Args)?;
    let config = ClientConfig::load(args.config.as_deref()).map_err(Failure::Config)?;
    let endpoint = endpoint(&args, &config)?;
    let command = if let Some(line) = args.command_line {
        Some(CommandSource::Line(line.into_vec()))
    } else if !args.command.is_empty() {
        Some(CommandSource::Words(args.command.into_iter().map(OsString::into_vec).collect()))
    } else if args.non_interactive {
        Some(CommandSource::Words(vec![b"PING".to_vec()]))
    } else {
        None
    };
    Ok(Invocation { endpoint, verbose: config.verbose, command })
}

/// Rewrites what clap cannot express, up to the first command word:
/// `--help`/`--h` in any case become `--help`, and `-u PATH` becomes
/// `-u=PATH` when PATH contains a `/` (so `-u GET k` still means "-u, then
/// the command GET k", as upstream's `-u` takes no value).
fn normalize(argv: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(argv.len());
    let mut rest = argv.into_iter();
    out.extend(rest.next());
    while let Some(arg) = rest.next() {
        let text = arg.to_str().unwrap_or("");
        if text.eq_ignore_ascii_case("--help") || text.eq_ignore_ascii_case("--h") {
            out.push("--help".into());
        } else if matches!(text, "-d" | "-h" | "-p" | "-c") {
            out.push(arg);
            out.extend(rest.next());
        } else if text == "-u" {
            match rest.as_slice().first().filter(|next| looks_like_path(next.as_bytes())) {
                Some(path) => {
                    let mut joined = OsString::from("-u=");
                    joined.push(path);
                    out.push(joined);
                    rest.next();
                }
                None => out.push(arg),
            }
        } else if text.starts_with('-') && text != "-" && text != "--" {
            out.push(arg);
        } else {
            out.push(arg);
            out.extend(rest);
            break;
        }
    }
    out
}

fn looks_like_path(word: &[u8]) -> bool {
    word.contains(&b'/') && word.first() != Some(&b'-')
}

/// `-u` wins, then the config's `unixsocket` (unless `-h` or `-p` ask for
/// TCP), then TCP to `-h`/`-p` over the config's `bind`/`port`.
fn endpoint(args: &Args, config: &ClientConfig) -> Result<Endpoint, Failure> {
    if let Some(flag_path) = &args.unix {
        let path = flag_path.clone().filter(|p| !p.as_os_str().is_empty());
        let path = path.or_else(|| config.unixsocket.clone()).unwrap_or_else(|| DEFAULT_UNIX_SOCKET.into());
        return Ok(Endpoint::Unix(path));
    }
    if let (Some(path), None, None) = (&config.unixsocket, &args.host, &args.port) {
        return Ok(Endpoint::Unix(path.clone()));
    }
    let host = match &args.host {
        Some(host) => config::parse_host(host).map_err(|problem| Failure::Usage(format!("-h: {problem}")))?,
        None => config.bind.clone(),
    };
    let port = match &args.port {
        Some(port) => crate::config_file::parse_int(port.as_bytes(), 1, 65_535)
            .map_err(|problem| Failure::Usage(format!("-p: {problem}")))? as u16,
        None => config.port,
    };
    Ok(Endpoint::Tcp { host, port })
}

/// Runs the invocation: one command, or the REPL.
pub fn run(invocation: &Invocation) -> Result<(), Failure> {
    match &invocation.command {
        Some(source) => run_once(&invocation.endpoint, source),
        None => repl::run(invocation),
    }
}

/// One-shot mode. The command is checked before connecting, so a usage error
/// needs no server and sends nothing.
fn run_once(endpoint: &Endpoint, source: &CommandSource) -> Result<(), Failure> {
    let tokens = source.tokens();
    let request = match command::recognize(&tokens) {
        Ok(request) => request,
        Err(LineError::Empty) => return Err(Failure::Usage("the command is empty".into())),
        Err(err) => {
            let mut out = io::stdout().lock();
            err.write_to(&mut out).and_then(|()| out.flush()).map_err(Failure::Output)?;
            return Err(Failure::Rejected);
        }
    };
    let mut client = connect(endpoint)?;
    call_and_print(&mut client, &request, &mut io::stdout().lock())
}

pub(crate) fn connect(endpoint: &Endpoint) -> Result<Client, Failure> {
    Client::connect(endpoint).map_err(|err| match err {
        ClientError::Connect { endpoint, source } => Failure::Connect { endpoint, source },
        other => Failure::Session(other),
    })
}

/// Sends one request, waits for its reply and prints it.
pub(crate) fn call_and_print(client: &mut Client, request: &Request<'_>, out: &mut dyn Write) -> Result<(), Failure> {
    let reply = client.call(request).map_err(Failure::Session)?;
    print::write_reply(out, &reply).and_then(|()| out.flush()).map_err(Failure::Output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        std::iter::once("fkvs-cli").chain(words.iter().copied()).map(OsString::from).collect()
    }

    fn parsed(words: &[&str]) -> Args {
        Args::try_parse_from(normalize(argv(words))).unwrap()
    }

    fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint::Tcp { host: host.into(), port }
    }

    fn words(words: &[&str]) -> Option<CommandSource> {
        Some(CommandSource::Words(words.iter().map(|w| w.as_bytes().to_vec()).collect()))
    }

    #[test]
    fn flags_then_command_words() {
        let args = parsed(&["-h", "10.0.0.1", "-p", "6000", "SET", "k", "a b", "EX", "10"]);
        assert_eq!(args.host.as_deref(), Some("10.0.0.1"));
        assert_eq!(args.port.as_deref(), Some("6000"));
        assert_eq!(args.command, ["SET", "k", "a b", "EX", "10"]);
        let config = ClientConfig::default();
        assert_eq!(endpoint(&args, &config).unwrap(), tcp("10.0.0.1", 6000));
    }

    #[test]
    fn words_after_the_verb_may_look_like_flags() {
        assert_eq!(parsed(&["INCRBY", "n", "-5"]).command, ["INCRBY", "n", "-5"]);
        assert_eq!(parsed(&["SET", "k", "-p"]).command, ["SET", "k", "-p"]);
        assert_eq!(parsed(&["GET", "--help"]).command, ["GET", "--help"], "a key, not a flag");
    }

    #[test]
    fn unknown_flags_are_errors() {
        assert!(Args::try_parse_from(normalize(argv(&["--bogus"]))).is_err());
        assert!(Args::try_parse_from(normalize(argv(&["-x", "GET", "k"]))).is_err());
    }

    #[test]
    fn help_in_any_case() {
        for flag in ["--help", "--HELP", "--Help", "--h", "--H"] {
            let err = Args::try_parse_from(normalize(argv(&["-p", "1", flag]))).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp, "{flag}");
            assert_eq!(err.exit_code(), 0);
        }
    }

    #[test]
    fn u_takes_a_path_only_when_it_looks_like_one() {
        assert_eq!(parsed(&["-u"]).unix, Some(None));
        assert_eq!(parsed(&["-u", "GET", "k"]).unix, Some(None));
        assert_eq!(parsed(&["-u", "GET", "k"]).command, ["GET", "k"]);
        let args = parsed(&["-u", "/run/fkvs.sock", "GET", "k"]);
        assert_eq!(args.unix, Some(Some(PathBuf::from("/run/fkvs.sock"))));
        assert_eq!(args.command, ["GET", "k"]);
        assert_eq!(parsed(&["-u=fkvs.sock"]).unix, Some(Some(PathBuf::from("fkvs.sock"))));
        assert_eq!(parsed(&["-u", "./fkvs.sock"]).unix, Some(Some(PathBuf::from("./fkvs.sock"))));
        assert!(Args::try_parse_from(normalize(argv(&["-u", "-p", "5"]))).is_err(), "-u conflicts with -p");
        assert!(Args::try_parse_from(normalize(argv(&["-h", "x", "-u"]))).is_err(), "-u conflicts with -h");
    }

    #[test]
    fn c_conflicts_with_command_words() {
        assert!(Args::try_parse_from(normalize(argv(&["-c", "GET k", "GET", "j"]))).is_err());
        assert_eq!(parsed(&["-c", "GET 'a b'"]).command_line, Some(OsString::from("GET 'a b'")));
    }

    #[test]
    fn endpoint_precedence() {
        let unix_config = ClientConfig { unixsocket: Some("/cfg.sock".into()), ..ClientConfig::default() };
        let tcp_config = ClientConfig { bind: "10.1.1.1".into(), port: 7000, ..ClientConfig::default() };
        let check = |words: &[&str], config: &ClientConfig| endpoint(&parsed(words), config).unwrap();
        assert_eq!(check(&[], &ClientConfig::default()), tcp("127.0.0.1", 5995));
        assert_eq!(check(&[], &tcp_config), tcp("10.1.1.1", 7000));
        assert_eq!(check(&["-p", "7001"], &tcp_config), tcp("10.1.1.1", 7001));
        assert_eq!(check(&["-h", "[::1]"], &tcp_config), tcp("::1", 7000));
        assert_eq!(check(&[], &unix_config), Endpoint::Unix("/cfg.sock".into()), "unixsocket alone selects Unix");
        assert_eq!(check(&["-p", "7001"], &unix_config), tcp("127.0.0.1", 7001), "-p asks for TCP");
        assert_eq!(check(&["-u"], &unix_config), Endpoint::Unix("/cfg.sock".into()));
        assert_eq!(check(&["-u", "/flag.sock"], &unix_config), Endpoint::Unix("/flag.sock".into()));
        assert_eq!(check(&["-u"], &ClientConfig::default()), Endpoint::Unix(DEFAULT_UNIX_SOCKET.into()), "Q22");
    }

    #[test]
    fn bad_ports_and_hosts_are_usage_errors() {
        for port in ["0", "65536", "x", "", "-1"] {
            let failure = endpoint(&parsed(&["-p", port]), &ClientConfig::default()).unwrap_err();
            assert!(matches!(&failure, Failure::Usage(m) if m.contains("1..65535")), "{port}: {failure:?}");
        }
        assert!(endpoint(&parsed(&["-h", ""]), &ClientConfig::default()).is_err());
    }

    #[test]
    fn what_runs() {
        let invocation = |words: &[&str]| parse(argv(&[&["-d", "/dev/null"], words].concat())).unwrap().command;
        assert_eq!(invocation(&[]), None);
        assert_eq!(invocation(&["--non-interactive"]), words(&["PING"]));
        assert_eq!(invocation(&["-n"]), words(&["PING"]));
        assert_eq!(invocation(&["-n", "GET", "k"]), words(&["GET", "k"]));
        assert_eq!(invocation(&["GET", "k"]), words(&["GET", "k"]));
        assert_eq!(invocation(&["-c", "ping"]), Some(CommandSource::Line(b"ping".to_vec())), "Q25: -c runs once");
    }

    #[test]
    fn os_reason_drops_the_errno_suffix() {
        let err = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(os_reason(&err), "Connection refused");
    }
}
