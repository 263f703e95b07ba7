//! `vigild import-keepalived FILE`: a keepalived.conf as a cluster file, through
//! `vigil-keepalived`. This shell reads the files, the host name (keepalived's default
//! config id and router_id), prints the warnings and writes the result.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use vigil_keepalived::{FsFiles, Options, import};

/// The node name, as keepalived takes it from uname.
fn node_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

pub fn run(file: &Path, config_id: Option<String>, out: Option<&Path>) -> ExitCode {
    let hostname = node_name();
    // keepalived's default config id is the first part of the node name.
    let config_id = config_id.or_else(|| {
        hostname
            .as_deref()
            .and_then(|h| h.split('.').next())
            .map(str::to_string)
    });
    let options = Options {
        config_id,
        hostname,
    };
    // An absolute path, so that relative includes and script paths resolve as keepalived
    // resolves them, from the file's directory.
    let file = &std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let imported = match import(file, &FsFiles, &options) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    for w in &imported.warnings {
        eprintln!("{w}");
    }
    // The importer's promise is a valid file; say so loudly if it ever is not.
    let name = out.unwrap_or(Path::new("cluster.toml"));
    let invalid = vigil_config::parse(name, &imported.toml).err();
    let written = match out {
        Some(path) => std::fs::write(path, &imported.toml),
        None => std::io::stdout().write_all(imported.toml.as_bytes()),
    };
    if let Err(e) = written {
        eprintln!(
            "{}: cannot write: {e}",
            out.unwrap_or(Path::new("stdout")).display()
        );
        return ExitCode::FAILURE;
    }
    if let Some(d) = invalid {
        eprintln!(
            "{d}\n\nvigild import-keepalived: the cluster file written does not validate; this is a bug in the importer: please report it with the input"
        );
        return ExitCode::FAILURE;
    }
    let n = imported.warnings.len();
    eprintln!(
        "{}: imported{}",
        file.display(),
        match n {
            0 => String::new(),
            1 => " with 1 warning".to_string(),
            _ => format!(" with {n} warnings"),
        }
    );
    ExitCode::SUCCESS
}
