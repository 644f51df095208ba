//! The `traceform` binary: parses the command line, runs it, and turns every failure into one
//! `error:` line and the exit status of `shared/spec/cli.md` (2: the user's input, 1: a bug).
//! Panics are caught and reported as internal errors, without a backtrace.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use traceform::cli::{run_command, Cli};

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error: {what}{place} (please report this)");
    }));
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_command(cli, &mut out)));
    let _ = out.flush();
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) if e.exit_code() == 0 => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {}", e.message());
            ExitCode::from(e.exit_code() as u8)
        }
        Err(_) => ExitCode::from(1),
    }
}
