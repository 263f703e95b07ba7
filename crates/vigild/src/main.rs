//! `vigild`: the vigil director daemon, and `vigild check-config` for operators.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
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

/// The man page's own sections: what the generated option list cannot say.
const MAN_EXTRA: &[vigil_manual::Section<'static>] = &[
    vigil_manual::Section {
        title: "EXIT STATUS",
        text: &[
            "0 on a clean stop, and when check-config finds every file valid. 1 when the \
             daemon cannot start or a worker ended unexpectedly (systemd restarts it), and \
             when a checked file is invalid. 2 on a usage error.",
        ],
        items: &[],
    },
    vigil_manual::Section {
        title: "SIGNALS",
        text: &[],
        items: &[
            (
                "SIGHUP",
                "reload the cluster file; an invalid file changes nothing",
            ),
            ("SIGTERM, SIGINT", "stop: VRRP masters hand over first"),
            (
                "SIGUSR1, SIGUSR2, SIGRTMIN+2",
                "write the data, stats and JSON dumps beside the status socket",
            ),
        ],
    },
    vigil_manual::Section {
        title: "FILES",
        text: &[],
        items: &[
            (
                "/etc/vigil/cluster.toml",
                "the cluster file the systemd unit runs (VIGIL_CONFIG)",
            ),
            (
                "/run/vigil/vigil.sock",
                "the status socket vigilctl talks to (director.status_socket)",
            ),
            (
                "/var/lib/vigil/state.json",
                "drains and owned IPVS services, kept across restarts (director.state_file)",
            ),
            (
                "/usr/share/doc/vigil/",
                "the operations guide and the other references",
            ),
        ],
    },
];

/// `vigild generate-manual DIR [--config-reference docs/config.md]`, for packaging
/// (deploy/build-deb): vigild's man pages and completions, and vigil.toml(5) when asked.
fn generate_manual(request: Result<vigil_manual::Request, String>) -> ExitCode {
    let vigil_manual::Request {
        out,
        config_reference,
    } = match request {
        Ok(request) => request,
        Err(usage) => {
            eprintln!("vigild generate-manual: {usage}");
            return ExitCode::from(2);
        }
    };
    let source = format!("vigil {}", env!("CARGO_PKG_VERSION"));
    let page = vigil_manual::Page {
        section: "8",
        source: &source,
        manual: "vigil manual",
        extra: MAN_EXTRA,
        see_also: &["vigilctl(8)", "vigil.toml(5)", "systemctl(1)", "ipvsadm(8)"],
    };
    let mut written = match vigil_manual::write_command(Cli::command(), &page, &out) {
        Ok(written) => written,
        Err(e) => {
            eprintln!("vigild: writing the manual to {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
    };
    if let Some(reference) = &config_reference {
        let markdown = match std::fs::read_to_string(reference) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("vigild: {}: {e}", reference.display());
                return ExitCode::FAILURE;
            }
        };
        let page = vigil_manual::markdown::Page {
            name: "vigil.toml",
            section: "5",
            summary: "the vigil cluster file",
            source: &source,
            manual: "vigil manual",
            see_also: &["vigild(8)", "vigilctl(8)"],
        };
        let path = out.join("man/vigil.toml.5");
        if let Err(e) = std::fs::write(&path, vigil_manual::markdown::to_man(&markdown, &page)) {
            eprintln!("vigild: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        written.push(path);
    }
    for path in written {
        println!("{}", path.display());
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(request) = vigil_manual::request(&args) {
        return generate_manual(request);
    }
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
