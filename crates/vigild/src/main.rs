//! `vigild`: the vigil director daemon, and `vigild check-config` for operators.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vigild::logging::{self, LogFormat};

// jemalloc: a reload or a `services` call at 10,000 real servers no longer leaves
// vigild twice its size (docs/design.md, "Memory"; tuning in vigild::memory).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts: freed pages go back to the system after
/// 1 s (10 s by default), with `MADV_DONTNEED` (no "muzzy" pages, which the kernel
/// would keep counting in RSS until it is short of memory). Purging in the background is
/// turned on once `children::init` has dropped the children thread's capabilities
/// (`vigild::memory::start_background_purge`).
#[cfg(feature = "jemalloc")]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 37] = b"dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[derive(Parser)]
#[command(
    name = "vigild",
    version,
    about = "vigil load-balancer director daemon"
)]
struct Cli {
    /// The cluster file to run.
    #[arg(long, short = 'c', env = "VIGIL_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value = "human")]
    log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Start even when the state file and its copy are both corrupt: both are kept aside
    /// (PATH.corrupt-UNIXTIME) and vigild starts with no drains. Without it such a start
    /// is refused, because drained real servers would silently go back into rotation.
    #[arg(long)]
    discard_corrupt_state: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate cluster files and exit: 0 when all are valid, 1 otherwise.
    CheckConfig {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Run every check of a cluster file once, now, and print the verdicts: exit 0 when
    /// the checks ran (whatever they found), 1 when the file is invalid.
    CheckOnce {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Read a keepalived.conf and write the equivalent cluster file (stdout unless -o):
    /// a warning on stderr for everything that does not map; exit 0 when a file was
    /// written, 1 when the input cannot be read.
    ImportKeepalived {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Select `@ID` lines as keepalived's -i/--config-id (default: the node name up
        /// to its first dot, as keepalived).
        #[arg(short = 'i', long, value_name = "ID")]
        config_id: Option<String>,
        /// Write the cluster file here instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { files }) => vigild::check_config::run(&files),
        Some(Command::CheckOnce { file, json }) => vigild::check_once::run(&file, json),
        Some(Command::ImportKeepalived {
            file,
            config_id,
            output,
        }) => vigild::import_keepalived::run(&file, config_id, output.as_deref()),
        None => {
            let Some(config) = cli.config else {
                eprintln!("vigild: no cluster file: give --config FILE (or set VIGIL_CONFIG)");
                return ExitCode::from(2);
            };
            logging::init(cli.log_format, &cli.log_level);
            let options = vigild::daemon::StartOptions {
                discard_corrupt_state: cli.discard_corrupt_state,
            };
            match vigild::daemon::run(&config, options) {
                Ok(()) => ExitCode::SUCCESS,
                // Already logged by the daemon as it stopped.
                Err(e) if e.is::<vigild::daemon::WorkerEnded>() => ExitCode::FAILURE,
                Err(e) => {
                    tracing::error!("vigild cannot start: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
