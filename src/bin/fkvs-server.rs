//! `fkvs-server`: see [`fkvs::server::Args`] for the flags.

fn main() -> std::process::ExitCode {
    fkvs::server::main()
}
