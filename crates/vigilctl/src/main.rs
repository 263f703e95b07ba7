//! `vigilctl`: the operator's view of a running vigild, over its status socket.
//!
//! Owns: talking the status-socket protocol (docs/status-socket.md) and rendering replies
//! as tables (in the spirit of `ipvsadm -Ln`) or JSON. Must not: change anything except
//! through daemon requests, or read the daemon's files directly.
//!
//! Exit codes: 0 success; 1 the daemon refused or failed the request (for example a
//! reload of an invalid file); 2 usage error; 3 the daemon could not be reached.

mod render;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use serde_json::{Value, json};

const DEFAULT_SOCKET: &str = "/run/vigil/vigil.sock";

#[derive(Parser)]
#[command(
    name = "vigilctl",
    version,
    about = "Inspect and steer a running vigild"
)]
struct Cli {
    /// The daemon's status socket (director.status_socket in the cluster file).
    #[arg(long, short = 's', env = "VIGIL_SOCKET", default_value = DEFAULT_SOCKET, global = true)]
    socket: PathBuf,
    /// Print the daemon's reply as JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Director, uptime, loaded config and reload history.
    Status,
    /// Virtual servers and their real servers.
    Services,
    /// VRRP instances: state, priority, master, counters; or steer one.
    Vrrp {
        /// Keep printing every VRRP state change until interrupted.
        #[arg(long)]
        watch: bool,
        #[command(subcommand)]
        action: Option<VrrpAction>,
    },
    /// Re-read the cluster file; an invalid file changes nothing.
    Reload,
    /// Weight 0 for a real server: no new connections, existing ones finish. Kept across
    /// reloads and restarts until `enable`.
    Drain {
        /// The virtual server's name.
        virtual_server: String,
        /// The real server, as IP:PORT (or IP when that is unambiguous).
        real_server: String,
    },
    /// Follow every change as it happens (health, drains, quorum, reloads, VRRP states)
    /// until interrupted.
    Events,
    /// Undo `drain`: the real server gets its weight back (if healthy).
    Enable {
        virtual_server: String,
        real_server: String,
    },
}

#[derive(Subcommand)]
enum VrrpAction {
    /// Planned failover: this master announces priority 0 but keeps its addresses until
    /// the new master is heard (make-before-break), then stays backup until `reclaim`.
    Handover { instance: String },
    /// Lets an instance that handed over preempt again.
    Reclaim { instance: String },
}

/// Failures with their exit codes.
enum Failure {
    /// The daemon answered with an error.
    Refused(String),
    /// No daemon to talk to.
    Unreachable(String),
}

fn connect(socket: &PathBuf) -> Result<UnixStream, Failure> {
    UnixStream::connect(socket).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                "vigild is not running (or uses another socket: see --socket)".to_string()
            }
            std::io::ErrorKind::PermissionDenied => {
                "permission denied: run as root or as a member of the socket's group (director.status_socket_group)".to_string()
            }
            _ => e.to_string(),
        };
        Failure::Unreachable(format!("cannot connect to {}: {why}", socket.display()))
    })
}

fn request(socket: &PathBuf, command: &str) -> Result<Value, Failure> {
    request_with(socket, json!({ "command": command }))
}

fn request_with(socket: &PathBuf, body: Value) -> Result<Value, Failure> {
    let mut stream = connect(socket)?;
    // A reload of a very large file is the slowest request; anything beyond this is a
    // hung daemon.
    let timeout = Some(Duration::from_secs(30));
    let io_err = |e: std::io::Error| {
        Failure::Unreachable(format!("talking to vigild at {}: {e}", socket.display()))
    };
    stream.set_read_timeout(timeout).map_err(io_err)?;
    stream.set_write_timeout(timeout).map_err(io_err)?;
    let mut line = body.to_string();
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io_err)?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(io_err)?;
    parse_reply(&reply, socket)
}

fn parse_reply(reply: &str, socket: &std::path::Path) -> Result<Value, Failure> {
    if reply.is_empty() {
        return Err(Failure::Unreachable(format!(
            "vigild at {} closed the connection without replying",
            socket.display()
        )));
    }
    let v: Value = serde_json::from_str(reply)
        .map_err(|e| Failure::Unreachable(format!("vigild sent a reply that is not JSON: {e}")))?;
    if v.get("ok") == Some(&Value::Bool(true)) {
        Ok(v.get("result").cloned().unwrap_or(Value::Null))
    } else {
        let error = v.get("error");
        let code = error
            .and_then(|e| e.get("code"))
            .and_then(Value::as_str)
            .unwrap_or("error");
        let message = error
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("the daemon reported an error without a message");
        Err(Failure::Refused(format!("{code}: {message}")))
    }
}

/// A streaming request: sends `command`, hands the first reply's result to `first`, then
/// prints every following line (as JSON, or rendered by `each`) until the daemon goes
/// away (exit 3) or the user interrupts.
fn stream(
    socket: &PathBuf,
    as_json: bool,
    command: &str,
    first: impl FnOnce(&Value),
    each: impl Fn(&Value) -> String,
) -> Result<Value, Failure> {
    let mut stream = connect(socket)?;
    let io_err = |e: std::io::Error| {
        Failure::Unreachable(format!("talking to vigild at {}: {e}", socket.display()))
    };
    let request = format!("{}\n", json!({ "command": command }));
    stream.write_all(request.as_bytes()).map_err(io_err)?;
    let mut lines = BufReader::new(stream).lines();
    let reply = lines
        .next()
        .transpose()
        .map_err(io_err)?
        .unwrap_or_default();
    first(&parse_reply(&reply, socket)?);
    let _ = std::io::stdout().flush();
    for line in lines {
        let line = line.map_err(io_err)?;
        if as_json {
            println!("{line}");
        } else if let Ok(event) = serde_json::from_str::<Value>(&line) {
            println!("{}", each(&event));
        }
        let _ = std::io::stdout().flush();
    }
    Err(Failure::Unreachable(format!(
        "vigild at {} closed the connection",
        socket.display()
    )))
}

/// `vigilctl events`: one line per event.
fn events(socket: &PathBuf, as_json: bool) -> Result<Value, Failure> {
    let first = |_: &Value| {
        if !as_json {
            eprintln!("following events of {} (Ctrl-C to stop)", socket.display());
        }
    };
    stream(socket, as_json, "events", first, render::event)
}

/// `vrrp --watch`: the current table, then one line per state change.
fn watch(socket: &PathBuf, as_json: bool) -> Result<Value, Failure> {
    let first = |table: &Value| {
        if as_json {
            println!("{}", serde_json::to_string(table).unwrap_or_default());
        } else {
            print!("{}", render::vrrp(table));
        }
    };
    stream(socket, as_json, "vrrp-watch", first, render::vrrp_event)
}

/// `vigilctl generate-manual DIR`, for packaging (deploy/build-deb): vigilctl's man pages
/// and completions.
fn generate_manual(request: Result<vigil_manual::Request, String>) -> ExitCode {
    let out = match request {
        Ok(vigil_manual::Request {
            out,
            config_reference: None,
        }) => out,
        Ok(_) => {
            eprintln!("vigilctl generate-manual: --config-reference is vigild's");
            return ExitCode::from(2);
        }
        Err(usage) => {
            eprintln!("vigilctl generate-manual: {usage}");
            return ExitCode::from(2);
        }
    };
    let source = format!("vigil {}", env!("CARGO_PKG_VERSION"));
    let page = vigil_manual::Page {
        section: "8",
        source: &source,
        manual: "vigil manual",
        extra: &[
            vigil_manual::Section {
                title: "EXIT STATUS",
                text: &[],
                items: &[
                    ("0", "success"),
                    (
                        "1",
                        "the daemon refused or failed the request (e.g. a reload of an invalid file)",
                    ),
                    ("2", "usage error"),
                    ("3", "the daemon could not be reached"),
                ],
            },
            vigil_manual::Section {
                title: "FILES",
                text: &[],
                items: &[(
                    DEFAULT_SOCKET,
                    "vigild's status socket: readable by the members of director.status_socket_group (vigil under the packaged unit)",
                )],
            },
        ],
        see_also: &["vigild(8)", "vigil.toml(5)"],
    };
    match vigil_manual::write_command(Cli::command(), &page, &out) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigilctl: writing the manual to {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(request) = vigil_manual::request(&args) {
        return generate_manual(request);
    }
    let cli = Cli::parse();
    let (command, outcome) = match cli.command {
        Command::Status => ("status", request(&cli.socket, "status")),
        Command::Services => ("services", request(&cli.socket, "services")),
        Command::Vrrp { watch: true, .. } => ("watch", watch(&cli.socket, cli.json)),
        Command::Events => ("watch", events(&cli.socket, cli.json)),
        Command::Vrrp {
            action: Some(VrrpAction::Handover { instance }),
            ..
        } => (
            "vrrp-control",
            request_with(
                &cli.socket,
                json!({"command": "vrrp-handover", "instance": instance}),
            ),
        ),
        Command::Vrrp {
            action: Some(VrrpAction::Reclaim { instance }),
            ..
        } => (
            "vrrp-control",
            request_with(
                &cli.socket,
                json!({"command": "vrrp-reclaim", "instance": instance}),
            ),
        ),
        Command::Vrrp { .. } => ("vrrp", request(&cli.socket, "vrrp")),
        Command::Reload => ("reload", request(&cli.socket, "reload")),
        Command::Drain {
            virtual_server,
            real_server,
        } => (
            "drain",
            request_with(
                &cli.socket,
                json!({"command": "drain", "virtual_server": virtual_server, "real_server": real_server}),
            ),
        ),
        Command::Enable {
            virtual_server,
            real_server,
        } => (
            "drain",
            request_with(
                &cli.socket,
                json!({"command": "enable", "virtual_server": virtual_server, "real_server": real_server}),
            ),
        ),
    };
    match outcome {
        Ok(result) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&result).unwrap_or_default()
                );
            } else {
                let text = match command {
                    "status" => render::status(&result),
                    "services" => render::services(&result),
                    "vrrp" => render::vrrp(&result),
                    "vrrp-control" => render::vrrp_control(&result),
                    "drain" => render::drain(&result),
                    _ => render::reload(&result),
                };
                print!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(Failure::Refused(message)) => {
            if cli.json {
                println!("{}", json!({ "ok": false, "error": message }));
            }
            eprintln!("vigilctl: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Unreachable(message)) => {
            eprintln!("vigilctl: {message}");
            ExitCode::from(3)
        }
    }
}
