//! `vigild check-config FILE...`: validate without running anything.

use std::path::PathBuf;
use std::process::ExitCode;

use vigil_config::{Config, ConfigError};

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One line that says what a valid file describes.
pub fn summary(config: &Config) -> String {
    format!(
        "director {}, {}, {}, {}",
        config.director.name,
        plural(config.vrrp.len(), "VRRP instance", "VRRP instances"),
        plural(
            config.virtual_servers.len(),
            "virtual server",
            "virtual servers"
        ),
        plural(config.real_server_count(), "real server", "real servers"),
    )
}

pub fn run(files: &[PathBuf]) -> ExitCode {
    let mut failed = 0;
    for file in files {
        match crate::children::load_config(file) {
            Ok(loaded) => {
                if !loaded.warnings.is_empty() {
                    eprintln!("{}\n", loaded.warnings);
                }
                let warnings = loaded.warnings.warnings().count();
                let note = if warnings > 0 {
                    format!(" ({})", plural(warnings, "warning", "warnings"))
                } else {
                    String::new()
                };
                println!("{}: ok: {}{note}", file.display(), summary(&loaded.config));
            }
            Err(e) => {
                failed += 1;
                eprintln!("{e}\n");
                let n = e.error_count();
                let what = match e {
                    ConfigError::Invalid(_) => plural(n, "error", "errors"),
                    _ => "cannot be read".to_string(),
                };
                eprintln!("{}: {what}", file.display());
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
