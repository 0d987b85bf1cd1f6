//! The `bftembed` command line: a thin layer over the library.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    bftembed::alloc_tuning::tune_allocator_for_tensors();
    bftembed::device::pin_cpu_thread_count();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
