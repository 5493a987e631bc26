//! `fkvs-cli`: see [`fkvs::cli`] for the flags, modes and exit statuses.

fn main() -> std::process::ExitCode {
    fkvs::cli::main()
}
