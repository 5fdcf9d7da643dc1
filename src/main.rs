//! The `tiltrs` binary: parses the command line and hands over to [`tiltrs::cli`].

fn main() -> std::process::ExitCode {
    tiltrs::cli::main()
}
