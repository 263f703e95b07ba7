//! `vigilctl`: the operator's view of a running vigild, over its status socket.
//!
//! Owns: talking the status-socket protocol (docs/status-socket.md; its types are
//! `vigil_proto`'s) and rendering replies as tables (in the spirit of `ipvsadm -Ln`) or
//! JSON. Must not: change anything except
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
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use vigil_proto::{Event, Reply, Request, VrrpReply};

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
    /// reloads and restarts until `enable`. Without a real server, every real server of
    /// the virtual server: an announced one is withdrawn first and its weights follow
    /// after `withdraw_delay` (the graceful drain of a director).
    Drain {
        /// The virtual server's name.
        virtual_server: String,
        /// The real server, as IP:PORT (or IP when that is unambiguous); none: all.
        real_server: Option<String>,
    },
    /// Follow every change as it happens (health, drains, quorum, reloads, VRRP states)
    /// until interrupted.
    Events,
    /// Undo `drain`: the real server (none: every one of the virtual server) gets its
    /// weight back (if healthy).
    Enable {
        virtual_server: String,
        real_server: Option<String>,
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

/// Sends `request` and reads its reply line.
fn call(socket: &PathBuf, request: &Request) -> Result<String, Failure> {
    let mut stream = connect(socket)?;
    // A reload of a very large file is the slowest request; anything beyond this is a
    // hung daemon.
    let timeout = Some(Duration::from_secs(30));
    let io_err = |e: std::io::Error| {
        Failure::Unreachable(format!("talking to vigild at {}: {e}", socket.display()))
    };
    stream.set_read_timeout(timeout).map_err(io_err)?;
    stream.set_write_timeout(timeout).map_err(io_err)?;
    stream.write_all(&request.to_line()).map_err(io_err)?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(io_err)?;
    Ok(reply)
}

/// The `result` of reply line `reply`, decoded as `T`, or why the daemon refused.
fn parse_reply<T: DeserializeOwned>(reply: &str, socket: &std::path::Path) -> Result<T, Failure> {
    if reply.is_empty() {
        return Err(Failure::Unreachable(format!(
            "vigild at {} closed the connection without replying",
            socket.display()
        )));
    }
    let reply: Reply<T> = serde_json::from_str(reply).map_err(|e| {
        if e.is_data() {
            Failure::Unreachable(format!(
                "vigild sent a reply this vigilctl cannot read: {e}"
            ))
        } else {
            Failure::Unreachable(format!("vigild sent a reply that is not JSON: {e}"))
        }
    })?;
    match reply.into_result() {
        Ok(Some(result)) => Ok(result),
        Ok(None) => Err(Failure::Unreachable(
            "vigild sent a reply without a result".to_string(),
        )),
        Err(error) => {
            let code = match error.code.as_str() {
                "" => "error",
                code => code,
            };
            let message = match error.message.as_str() {
                "" => "the daemon reported an error without a message",
                message => message,
            };
            Err(Failure::Refused(format!("{code}: {message}")))
        }
    }
}

/// Sends `request` and prints its result: as JSON (as the daemon sent it) with
/// `--json`, else as `render` shows the typed reply.
fn show<T: DeserializeOwned>(
    cli: &Cli,
    request: &Request,
    render: fn(&T) -> String,
) -> Result<(), Failure> {
    let reply = call(&cli.socket, request)?;
    if cli.json {
        let result: Value = parse_reply(&reply, &cli.socket)?;
        println!(
            "{}",
            serde_json::to_string_pretty(&result).unwrap_or_default()
        );
    } else {
        let result: T = parse_reply(&reply, &cli.socket)?;
        print!("{}", render(&result));
    }
    Ok(())
}

/// A streaming request: sends `request`, hands the first reply's line to `first`, then
/// prints every following line (as it came with `--json`, else rendered by `each`, or as
/// it came for an event this vigilctl does not know) until the daemon goes away (exit 3)
/// or the user interrupts.
fn stream(
    socket: &PathBuf,
    as_json: bool,
    request: &Request,
    first: impl FnOnce(&str) -> Result<(), Failure>,
    each: fn(&Event) -> Option<String>,
) -> Result<(), Failure> {
    let mut stream = connect(socket)?;
    let io_err = |e: std::io::Error| {
        Failure::Unreachable(format!("talking to vigild at {}: {e}", socket.display()))
    };
    stream.write_all(&request.to_line()).map_err(io_err)?;
    let mut lines = BufReader::new(stream).lines();
    let reply = lines
        .next()
        .transpose()
        .map_err(io_err)?
        .unwrap_or_default();
    first(&reply)?;
    let _ = std::io::stdout().flush();
    for line in lines {
        let line = line.map_err(io_err)?;
        if as_json {
            println!("{line}");
        } else {
            // What this vigilctl cannot read or render is shown as it came.
            match serde_json::from_str::<Event>(&line)
                .ok()
                .as_ref()
                .and_then(each)
            {
                Some(text) => println!("{text}"),
                None => println!("{line}"),
            }
        }
        let _ = std::io::stdout().flush();
    }
    Err(Failure::Unreachable(format!(
        "vigild at {} closed the connection",
        socket.display()
    )))
}

/// `vigilctl events`: one line per event.
fn events(socket: &PathBuf, as_json: bool) -> Result<(), Failure> {
    let first = |reply: &str| {
        parse_reply::<Value>(reply, socket)?;
        if !as_json {
            eprintln!("following events of {} (Ctrl-C to stop)", socket.display());
        }
        Ok(())
    };
    stream(socket, as_json, &Request::Events, first, render::event)
}

/// `vrrp --watch`: the current table, then one line per state change.
fn watch(socket: &PathBuf, as_json: bool) -> Result<(), Failure> {
    let first = |reply: &str| {
        if as_json {
            let table: Value = parse_reply(reply, socket)?;
            println!("{}", serde_json::to_string(&table).unwrap_or_default());
        } else {
            let table: VrrpReply = parse_reply(reply, socket)?;
            print!("{}", render::vrrp(&table));
        }
        Ok(())
    };
    stream(
        socket,
        as_json,
        &Request::VrrpWatch,
        first,
        render::vrrp_event,
    )
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
    let outcome = match &cli.command {
        Command::Status => show(&cli, &Request::Status, render::status),
        Command::Services => show(&cli, &Request::Services, render::services),
        Command::Vrrp { watch: true, .. } => watch(&cli.socket, cli.json),
        Command::Events => events(&cli.socket, cli.json),
        Command::Vrrp {
            action: Some(VrrpAction::Handover { instance }),
            ..
        } => show(
            &cli,
            &Request::VrrpHandover {
                instance: instance.clone(),
            },
            render::vrrp_control,
        ),
        Command::Vrrp {
            action: Some(VrrpAction::Reclaim { instance }),
            ..
        } => show(
            &cli,
            &Request::VrrpReclaim {
                instance: instance.clone(),
            },
            render::vrrp_control,
        ),
        Command::Vrrp { .. } => show(&cli, &Request::Vrrp, render::vrrp),
        Command::Reload => show(&cli, &Request::Reload, render::reload),
        Command::Drain {
            virtual_server,
            real_server,
        } => show(
            &cli,
            &Request::Drain {
                virtual_server: virtual_server.clone(),
                real_server: real_server.clone(),
            },
            render::drain,
        ),
        Command::Enable {
            virtual_server,
            real_server,
        } => show(
            &cli,
            &Request::Enable {
                virtual_server: virtual_server.clone(),
                real_server: real_server.clone(),
            },
            render::drain,
        ),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
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
