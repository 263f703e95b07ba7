//! `vigild check-once FILE [--json]`: every check of a cluster file run once, now,
//! against the real servers. Operators run it before deploying a new file.

use std::path::Path;
use std::process::ExitCode;

use vigil_check::{format_table, run_once, targets_from_config};

/// Probes at once: enough to finish a large cluster quickly, few enough not to look
/// like a flood to the real servers.
const MAX_IN_FLIGHT: usize = 256;

/// Exit 0 when the checks ran (whatever their verdicts), 1 when the file is invalid.
pub fn run(file: &Path, json: bool) -> ExitCode {
    if let Err(e) = crate::children::init_for_tool() {
        eprintln!("vigild: {e}");
        return ExitCode::FAILURE;
    }
    let loaded = match crate::children::load_config(file) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if !loaded.warnings.is_empty() {
        eprintln!("{}\n", loaded.warnings);
    }
    let targets = targets_from_config(&loaded.config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vigild: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let results = runtime.block_on(run_once(&targets, MAX_IN_FLIGHT));
    let unchecked = loaded.config.real_server_count() - targets.len();
    if json {
        match serde_json::to_string_pretty(&results) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("vigild: cannot encode the results: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", format_table(&results));
        let passed = results.iter().filter(|r| r.passed).count();
        println!(
            "{} checks: {passed} pass, {} fail{}",
            results.len(),
            results.len() - passed,
            if unchecked > 0 {
                format!(" ({unchecked} real servers have no check and count as up)")
            } else {
                String::new()
            }
        );
    }
    ExitCode::SUCCESS
}
