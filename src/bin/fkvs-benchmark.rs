//! `fkvs-benchmark`: see [`fkvs::bench`] for the design and
//! [`fkvs::bench::args::Args`] for the flags.

fn main() -> std::process::ExitCode {
    fkvs::bench::main()
}
