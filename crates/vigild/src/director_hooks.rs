//! The director's hooks, keepalived's `quorum_up` / `quorum_down` of a virtual server and
//! `notify_up` / `notify_down` of a real server, with `omega` (the down hooks at
//! shutdown). Which change runs which program with which environment is decided here,
//! purely ([`real_server_change`], [`command`], [`omega`]); [`Hooks`] only hands the
//! commands to vigil-child's hook runner, one runner per virtual server (quorum) and per
//! real server, so hooks of one source run in order and a flapping server cannot push
//! another's hook out of the bounded queue.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use vigil_child::hook::HookRunner;
use vigil_config::{Config, InitialState, RealServer, ServiceKey, VirtualServer};

use crate::table::Known;

/// How long one hook may run before its whole process tree is killed (as VRRP notify).
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(60);

/// Changes that may wait behind a running hook of the same source; beyond it the newest
/// waiting one is replaced, so the latest change is always delivered.
const HOOK_QUEUE: usize = 4;

/// Of a failing hook's stdout and stderr, this much is kept for the log.
const HOOK_OUTPUT: usize = 1024;

/// A change the director reports: where keepalived runs a quorum or real-server hook
/// (and writes its `VS ...` / `RS ...` notify FIFO line).
#[derive(Debug, Clone, Copy)]
pub enum Transition<'a> {
    /// The virtual server gained (`up`) or lost its quorum; `counted` is what counted
    /// (servers or weight, as its `quorum_by` says). `shutdown`: omega at daemon stop.
    Quorum {
        vs: &'a VirtualServer,
        up: bool,
        counted: u32,
        shutdown: bool,
    },
    /// A real server's health went up or down; `reason` is the check's last result, or
    /// `shutdown` for omega.
    RealServer {
        vs: &'a VirtualServer,
        rs: &'a RealServer,
        up: bool,
        reason: &'a str,
    },
}

/// Whose hook runner a hook goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Quorum(ServiceKey),
    RealServer(ServiceKey, SocketAddr),
}

/// Whether a server starts as up (before its checks' first verdicts): no check means up,
/// else every check must start up (all of them must pass), as the table assumes.
pub fn initially_up(rs: &RealServer) -> bool {
    rs.checks
        .iter()
        .all(|c| c.initial_state == InitialState::Up)
}

/// A real server's health change, if `before` -> `after` is one: `Some(true)` up,
/// `Some(false)` down. A pending server counts as its initial state, as keepalived
/// (without `alpha` a server starts alive and its first success is no change).
pub fn real_server_change(before: Known, initially_up: bool, after: Known) -> Option<bool> {
    let up = |k: Known| match k {
        Known::Up => true,
        Known::Down => false,
        Known::Pending => initially_up,
    };
    if after == Known::Pending || up(before) == up(after) {
        return None;
    }
    Some(up(after))
}

/// The hook a transition runs (with its source), if one is configured. The program gets
/// exactly its configured arguments (keepalived passes none of its own); what happened is
/// in `VIGIL_*` variables (docs/config.md, "Director hooks").
pub fn command(t: &Transition<'_>) -> Option<(Source, vigil_child::Command)> {
    let (source, argv, mut env) = match *t {
        Transition::Quorum {
            vs,
            up,
            counted,
            shutdown,
        } => {
            let argv = if up { &vs.quorum_up } else { &vs.quorum_down };
            let mut env = base_env(vs, if up { "quorum_up" } else { "quorum_down" });
            env.push(("VIGIL_QUORUM", vs.quorum.to_string()));
            env.push(("VIGIL_QUORUM_COUNTED", counted.to_string()));
            if shutdown {
                env.push(("VIGIL_REASON", "shutdown".to_string()));
            }
            (Source::Quorum(vs.key), argv.as_ref()?, env)
        }
        Transition::RealServer { vs, rs, up, reason } => {
            let argv = if up { &rs.notify_up } else { &rs.notify_down };
            let mut env = base_env(
                vs,
                if up {
                    "real_server_up"
                } else {
                    "real_server_down"
                },
            );
            env.push(("VIGIL_REAL_SERVER", rs.address.to_string()));
            env.push(("VIGIL_REASON", reason.to_string()));
            (Source::RealServer(vs.key, rs.address), argv.as_ref()?, env)
        }
    };
    let program = argv.first()?;
    let mut c = vigil_child::Command::new(program.clone());
    c.args = argv[1..].to_vec();
    c.env = env.drain(..).map(|(k, v)| (k.to_string(), v)).collect();
    c.timeout = HOOK_TIMEOUT;
    c.output_limit = HOOK_OUTPUT;
    Some((source, c))
}

fn base_env(vs: &VirtualServer, event: &str) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("VIGIL_EVENT", event.to_string()),
        ("VIGIL_VIRTUAL_SERVER", vs.name.clone()),
        ("VIGIL_SERVICE", vs.key.to_string()),
    ];
    // A group runs its hooks once (as keepalived does), naming all its services.
    if !vs.group.is_empty() {
        let all: Vec<String> = vs.keys().map(ToString::to_string).collect();
        env.push(("VIGIL_SERVICES", all.join(",")));
    }
    env
}

/// What `omega` runs at shutdown for `vs`: `notify_down` of each real server that is up
/// (`up`), then `quorum_down` if the service has quorum, as keepalived does when it stops.
pub fn omega<'a>(
    vs: &'a VirtualServer,
    up: impl Fn(&RealServer) -> bool,
    has_quorum: Option<bool>,
    counted: u32,
) -> Vec<Transition<'a>> {
    if !vs.omega {
        return Vec::new();
    }
    let mut out: Vec<Transition<'a>> = vs
        .real_servers
        .iter()
        .filter(|rs| up(rs))
        .map(|rs| Transition::RealServer {
            vs,
            rs,
            up: false,
            reason: "shutdown",
        })
        .collect();
    if has_quorum == Some(true) {
        out.push(Transition::Quorum {
            vs,
            up: false,
            counted,
            shutdown: true,
        });
    }
    out
}

/// Where each real server is in a config, to find its hooks and initial state from a
/// health event.
pub fn index(config: &Config) -> HashMap<(ServiceKey, SocketAddr), (usize, usize)> {
    let mut index = HashMap::new();
    for (vi, vs) in config.virtual_servers.iter().enumerate() {
        for (ri, rs) in vs.real_servers.iter().enumerate() {
            index.insert((vs.key, rs.address), (vi, ri));
        }
    }
    index
}

/// The runners, started on first use (most sources never run a hook).
#[derive(Default)]
pub struct Hooks {
    runners: HashMap<Source, HookRunner>,
}

impl Hooks {
    /// Queues the hook of `t`, if it has one. Must run inside the runtime.
    pub fn run(&mut self, t: &Transition<'_>) {
        let Some((source, c)) = command(t) else {
            return;
        };
        let runner = self.runners.entry(source).or_insert_with(|| {
            let name = match source {
                Source::Quorum(k) => format!("quorum {k}"),
                Source::RealServer(k, a) => format!("real server {a} of {k}"),
            };
            HookRunner::spawn(name, HOOK_QUEUE)
        });
        runner.submit(c);
    }

    /// Drops the runners of sources `config` (with its [`index`]) no longer has (their
    /// waiting hooks too).
    pub fn retain(
        &mut self,
        config: &Config,
        index: &HashMap<(ServiceKey, SocketAddr), (usize, usize)>,
    ) {
        self.runners.retain(|s, _| match s {
            Source::Quorum(k) => config.virtual_servers.iter().any(|v| v.key == *k),
            Source::RealServer(k, a) => index.contains_key(&(*k, *a)),
        });
    }

    /// Lets every queued hook run, all runners at once, for at most `within`; false when
    /// some were cut short.
    pub async fn finish(self, within: Duration) -> bool {
        let mut all = tokio::task::JoinSet::new();
        for (_, r) in self.runners {
            all.spawn(r.finish(within));
        }
        let mut complete = true;
        while let Some(r) = all.join_next().await {
            complete &= r.unwrap_or(false);
        }
        complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra_vs: &str, rs: &str) -> Config {
        let text = format!(
            "[director]\nname = \"t\"\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.1:80\"\n{extra_vs}\nreal_server = [{rs}]\n"
        );
        vigil_config::parse(std::path::Path::new("t.toml"), &text)
            .expect("valid")
            .config
    }

    fn env(c: &vigil_child::Command) -> Vec<String> {
        c.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    #[test]
    fn a_group_runs_its_quorum_hook_once_naming_all_its_services() {
        let text = "[director]\nname = \"t\"\n[[virtual_server]]\nname = \"g\"\naddresses = [\"192.0.2.1-2:80\"]\nfwmarks = [9]\nquorum_down = [\"/bin/q\"]\nreal_server = [{ address = \"10.0.0.1\" }]\n";
        let c = vigil_config::parse(std::path::Path::new("t.toml"), text)
            .expect("valid")
            .config;
        let vs = &c.virtual_servers[0];
        let t = Transition::Quorum {
            vs,
            up: false,
            counted: 0,
            shutdown: false,
        };
        let (source, cmd) = command(&t).expect("configured");
        // One source (the group's first service), as keepalived runs one per group.
        assert_eq!(source, Source::Quorum(vs.key));
        let env = env(&cmd);
        assert!(env.contains(&"VIGIL_SERVICE=tcp 192.0.2.1:80".to_string()));
        assert!(env.contains(
            &"VIGIL_SERVICES=tcp 192.0.2.1:80,tcp 192.0.2.2:80,fwmark 9 IPv4".to_string()
        ));
    }

    #[test]
    fn real_server_changes_count_pending_as_the_initial_state() {
        use Known::*;
        // Starts up (keepalived without alpha): a first pass is no change.
        assert_eq!(real_server_change(Pending, true, Up), None);
        assert_eq!(real_server_change(Pending, true, Down), Some(false));
        // Starts down (keepalived's alpha): a first pass is up.
        assert_eq!(real_server_change(Pending, false, Up), Some(true));
        assert_eq!(real_server_change(Pending, false, Down), None);
        assert_eq!(real_server_change(Up, true, Down), Some(false));
        assert_eq!(real_server_change(Down, true, Up), Some(true));
        assert_eq!(real_server_change(Up, false, Up), None);
        assert_eq!(real_server_change(Up, false, Pending), None);
    }

    #[test]
    fn quorum_hooks_get_their_own_args_and_vigil_variables() {
        let c = config(
            "quorum = 2\nquorum_up = [\"/bin/q\", \"up\"]\nquorum_down = [\"/bin/q\", \"down\"]",
            "{ address = \"10.0.0.1\" }, { address = \"10.0.0.2\" }",
        );
        let vs = &c.virtual_servers[0];
        let t = Transition::Quorum {
            vs,
            up: false,
            counted: 1,
            shutdown: false,
        };
        let (source, cmd) = command(&t).expect("configured");
        assert_eq!(source, Source::Quorum(vs.key));
        assert_eq!(
            (cmd.program.as_str(), &cmd.args[..]),
            ("/bin/q", &["down".to_string()][..])
        );
        assert_eq!(cmd.timeout, HOOK_TIMEOUT);
        assert_eq!(
            env(&cmd),
            [
                "VIGIL_EVENT=quorum_down",
                "VIGIL_VIRTUAL_SERVER=web",
                "VIGIL_SERVICE=tcp 192.0.2.1:80",
                "VIGIL_QUORUM=2",
                "VIGIL_QUORUM_COUNTED=1"
            ]
        );
        let up = Transition::Quorum {
            vs,
            up: true,
            counted: 2,
            shutdown: false,
        };
        assert_eq!(command(&up).expect("configured").1.args, ["up"]);
    }

    #[test]
    fn real_server_hooks_and_none_where_none_is_configured() {
        let c = config(
            "",
            "{ address = \"10.0.0.1\", notify_down = [\"/bin/rs\", \"-d\"] }, { address = \"10.0.0.2\" }",
        );
        let vs = &c.virtual_servers[0];
        let (a, b) = (&vs.real_servers[0], &vs.real_servers[1]);
        let down = |rs| Transition::RealServer {
            vs,
            rs,
            up: false,
            reason: "connect refused",
        };
        let (source, cmd) = command(&down(a)).expect("configured");
        assert_eq!(source, Source::RealServer(vs.key, a.address));
        assert_eq!(cmd.args, ["-d"]);
        assert_eq!(
            env(&cmd),
            [
                "VIGIL_EVENT=real_server_down",
                "VIGIL_VIRTUAL_SERVER=web",
                "VIGIL_SERVICE=tcp 192.0.2.1:80",
                "VIGIL_REAL_SERVER=10.0.0.1:80",
                "VIGIL_REASON=connect refused"
            ]
        );
        assert!(command(&down(b)).is_none());
        let up = Transition::RealServer {
            vs,
            rs: a,
            up: true,
            reason: "ok",
        };
        assert!(command(&up).is_none(), "no notify_up configured");
        let none = Transition::Quorum {
            vs,
            up: false,
            counted: 0,
            shutdown: false,
        };
        assert!(command(&none).is_none());
    }

    #[test]
    fn omega_runs_real_server_downs_then_quorum_down_only_when_set() {
        let text = "quorum_down = [\"/bin/q\"]\nomega = true";
        let rs = "{ address = \"10.0.0.1\", notify_down = [\"/bin/d\"] }, { address = \"10.0.0.2\", notify_down = [\"/bin/d\"] }";
        let c = config(text, rs);
        let vs = &c.virtual_servers[0];
        let only_first = |r: &RealServer| r.address.ip().to_string() == "10.0.0.1";
        let ts = omega(vs, only_first, Some(true), 1);
        let cmds: Vec<_> = ts
            .iter()
            .map(|t| command(t).expect("configured").1)
            .collect();
        assert_eq!(cmds.len(), 2);
        assert!(env(&cmds[0]).contains(&"VIGIL_REAL_SERVER=10.0.0.1:80".to_string()));
        assert!(env(&cmds[0]).contains(&"VIGIL_REASON=shutdown".to_string()));
        assert!(env(&cmds[1]).contains(&"VIGIL_EVENT=quorum_down".to_string()));
        assert!(env(&cmds[1]).contains(&"VIGIL_REASON=shutdown".to_string()));
        // Without quorum, no quorum_down; without omega, nothing.
        assert_eq!(omega(vs, only_first, Some(false), 0).len(), 1);
        let plain = config("quorum_down = [\"/bin/q\"]", rs);
        assert!(omega(&plain.virtual_servers[0], |_| true, Some(true), 2).is_empty());
    }
}
