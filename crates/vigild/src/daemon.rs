//! The daemon's main loop: start, serve, reload on request, stop cleanly.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{error, info, warn};
use vigil_config::{Config, ConfigError};

use crate::check_config::summary;
use crate::director::{Command as DirectorCommand, Director, Notice};
use crate::dumps::{self, Dump};
use crate::protocol::{ErrorCode, ProtocolError};
use crate::state::{ReloadRecord, Shared, unix_now};
use crate::state_file::{Restored, StateFile};
use crate::status::{Control, StatusSocket};
use crate::supervise::{Supervisor, TestFaults};
use crate::vrrp::VrrpManager;
use crate::{caps, systemd};
use vigil_proto::{Event, ReloadEvent, Trigger};

/// How the daemon was asked to start.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// Start even when the state file and its copy are both corrupt (both kept aside).
    pub discard_corrupt_state: bool,
}

/// What keeps a valid config from running here, checked alike at start and on reload.
struct Unrunnable {
    /// Capabilities this process lacks, a message each.
    capabilities: Vec<String>,
    /// VRRP instances whose adverts would not fit their interface's MTU.
    adverts: Vec<String>,
}

impl Unrunnable {
    fn of(config: &Config) -> Unrunnable {
        Unrunnable {
            capabilities: caps::missing(config),
            adverts: crate::vrrp::adverts_over_mtu(config, &crate::vrrp::interface_mtu),
        }
    }

    fn all(self) -> Vec<String> {
        let mut out = self.capabilities;
        out.extend(self.adverts);
        out
    }
}

/// Loads the file and starts serving; returns when asked to stop.
pub fn run(config_path: &Path, options: StartOptions) -> anyhow::Result<()> {
    // First, while this is the only thread: the children thread keeps the capabilities
    // children need and every later thread is created without them.
    crate::children::init()?;
    crate::supervise::install_panic_hook();
    if let Err(e) = crate::memory::no_huge_pages() {
        warn!("transparent huge pages stay on for vigild (its memory may be larger): {e}");
    }
    if let Err(e) = crate::memory::start_background_purge() {
        warn!("memory freed after a reload may stay with vigild: {e}");
    }
    let loaded = match crate::children::load_config(config_path) {
        Ok(l) => l,
        Err(ConfigError::Invalid(d)) => bail!("invalid cluster file:\n{d}"),
        Err(e) => return Err(e.into()),
    };
    for d in loaded.warnings.warnings() {
        warn!("{}", loaded.warnings.one_line(d));
    }
    let config = loaded.config;
    let unrunnable = Unrunnable::of(&config);
    if !unrunnable.capabilities.is_empty() {
        bail!(
            "missing capabilities: {}.\nRun vigild as root, or grant them (systemd: AmbientCapabilities=, Delegate=; see deploy/vigild.service and docs/operations.md)",
            unrunnable.capabilities.join("; ")
        );
    }
    if !unrunnable.adverts.is_empty() {
        bail!(
            "VRRP adverts that cannot be sent: {}",
            unrunnable.adverts.join("; ")
        );
    }
    if caps::icmp_checks_without_raw(&config) {
        warn!(
            "ICMP checks without CAP_NET_RAW need unprivileged ping sockets (net.ipv4.ping_group_range)"
        );
    }

    // Before anything runs: a corrupt state file must stop the start, not lose drains.
    let state = StateFile::load(&config.director.state_file, options.discard_corrupt_state)?;

    raise_open_files_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(serve(config_path, config, state));
    // Nothing a check, track program or hook started outlives the daemon.
    vigil_child::kill_all(Duration::from_secs(2));
    served
}

/// The daemon stopped because a worker ended: the process exits non-zero so that it is
/// restarted.
#[derive(Debug, thiserror::Error)]
#[error("stopped because worker {worker} ended unexpectedly: {why}")]
pub struct WorkerEnded {
    pub worker: String,
    pub why: String,
}

/// A reload bigger than this is abandoned (its result, if it ever comes, is dropped):
/// files are capped at 64 MiB and validated in linear time, so only a stuck read (a
/// hung network filesystem) gets here.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// The reload running on its task: abandoned (never aborted while it may commit) after
/// [`RELOAD_TIMEOUT`]; `id` tells its end from that of an earlier, abandoned one.
struct RunningReload {
    task: tokio::task::JoinHandle<()>,
    abandoned: Arc<AtomicBool>,
    since: Instant,
    id: u64,
}

/// Who asked for a reload; a socket client waits for the outcome.
enum ReloadRequest {
    Signal,
    Socket(tokio::sync::oneshot::Sender<Result<ReloadRecord, ProtocolError>>),
}

async fn serve(
    config_path: &Path,
    config: Config,
    state: (StateFile, Restored),
) -> anyhow::Result<()> {
    let socket_path = config.director.status_socket.clone();
    let socket = Arc::new(
        StatusSocket::bind(
            &socket_path,
            config.director.status_socket_group.as_deref(),
            config.director.status_socket_admin_group.as_deref(),
        )
        .with_context(|| format!("status socket {}", socket_path.display()))?,
    );
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    // keepalived's dump signals: their default action would end the daemon (a failover).
    let mut sigusr1 = signal(SignalKind::user_defined1()).context("cannot handle SIGUSR1")?;
    let mut sigusr2 = signal(SignalKind::user_defined2()).context("cannot handle SIGUSR2")?;
    let mut sigjson =
        signal(SignalKind::from_raw(libc::SIGRTMIN() + 2)).context("cannot handle SIGRTMIN+2")?;

    let faults = TestFaults::from_env();
    let (supervisor, mut ended) = Supervisor::new(systemd::watchdog_interval());
    let main_guard = supervisor.guard("main", Duration::ZERO);
    let what = summary(&config);
    let shared = Shared::new(config, config_path.to_path_buf());
    shared.fifos.configure(&shared.snapshot().config.director)?;
    let alerts = start_alerts(&shared, &supervisor)?;
    let (control_tx, mut control_rx) = mpsc::channel::<Control>(16);
    let mut server = tokio::spawn(socket.clone().serve(shared.clone(), control_tx));
    // Why IPVS cannot be programmed, from the IPVS thread to VRRP (which then holds the
    // instances that carry virtual servers in fault).
    let (ipvs_programmable, ipvs_fault) = tokio::sync::watch::channel(None);
    let vrrp = VrrpManager::spawn(
        shared.snapshot().config.clone(),
        shared.vrrp.clone(),
        supervisor.clone(),
        &faults,
        ipvs_fault,
        shared.events.clone(),
        shared.fifos.clone(),
    );
    // Chosen once: reloads are checked against it, a change of datapath needs a restart.
    let datapath = crate::datapath::choose(
        shared.snapshot().config.director.datapath,
        crate::datapath::probe_ipvs,
    );
    info!("datapath: {} ({})", datapath.kind.name(), datapath.reason);
    crate::datapath::set_running(datapath.clone());
    let (director, mut notices) = Director::spawn(
        shared.snapshot().config.clone(),
        state,
        &shared,
        &supervisor,
        &faults,
        ipvs_programmable,
        &datapath,
    );
    let dns = crate::dns_real_servers::DnsWorker::spawn(
        shared.snapshot().config.clone(),
        director.clone(),
        &supervisor,
    );
    let metrics = shared
        .snapshot()
        .config
        .director
        .metrics_listen
        .map(|addr| tokio::spawn(crate::metrics::serve(addr, shared.clone())));
    supervisor
        .start()
        .context("cannot start the supervisor thread")?;
    info!(
        config = %config_path.display(),
        socket = %socket.path().display(),
        "vigild {} started: {what}",
        env!("CARGO_PKG_VERSION")
    );
    systemd::ready(&what);

    // One reload at a time, on a task of its own: the loop goes on serving drains and
    // status meanwhile. A SIGHUP during one is remembered and run after it (the file may
    // have changed since it was read); a socket request during one is refused.
    let mut reloading: Option<RunningReload> = None;
    let mut reload_id = 0u64;
    let (reloaded_tx, mut reloaded_rx) = mpsc::unbounded_channel::<u64>();
    let mut hup_pending = false;
    let mut heartbeat = tokio::time::interval(crate::supervise::HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut start_reload = |request: ReloadRequest| {
        reload_id += 1;
        let id = reload_id;
        let abandoned = Arc::new(AtomicBool::new(false));
        let (shared, done, gone) = (shared.clone(), reloaded_tx.clone(), abandoned.clone());
        let (director, vrrp, alerts) = (director.clone(), vrrp.clone(), alerts.clone());
        let dns = dns.clone();
        let handle = tokio::spawn(async move {
            let trigger = match request {
                ReloadRequest::Signal => Trigger::Sighup,
                ReloadRequest::Socket(_) => Trigger::Socket,
            };
            let outcome = reload(&shared, trigger, gone).await;
            let ok = outcome.is_ok();
            if ok {
                // Handed over before the reply, so that what the client asks next sees
                // the new config; each apply is queued behind the ones before it (one
                // reload runs at a time).
                let config = shared.snapshot().config.clone();
                let _ = director.send(DirectorCommand::Reload(config.clone())).await;
                dns.apply(config.clone());
                vrrp.apply(config.clone());
                // Reads token and CA files: off the runtime's workers.
                let _ = tokio::task::spawn_blocking(move || {
                    alerts.apply(&config.alerts, &config.director.name)
                })
                .await;
            }
            if let ReloadRequest::Socket(reply) = request {
                let _ = reply.send(outcome);
            }
            // The parse tree and the config replaced are freed by now or soon after.
            crate::memory::trim_soon();
            let _ = done.send(id);
        });
        RunningReload {
            task: handle,
            abandoned,
            since: Instant::now(),
            id,
        }
    };

    // At most one dump of each kind at a time: a burst of signals must not queue
    // `services` walks of the whole table on the director.
    let mut dumping: [Option<tokio::task::JoinHandle<()>>; 3] = [None, None, None];
    let mut failure = None;
    loop {
        main_guard.beat();
        tokio::select! {
            _ = sigterm.recv() => { info!("SIGTERM: stopping"); break; }
            _ = sigint.recv() => { info!("SIGINT: stopping"); break; }
            Some(e) = ended.recv() => {
                failure = Some(WorkerEnded { worker: e.worker, why: e.why });
                break;
            }
            r = &mut server => {
                let why = match r {
                    Err(e) if e.is_panic() => format!("panicked: {e}"),
                    other => format!("{other:?}"),
                };
                error!("the status socket server ended unexpectedly: {why}");
                failure = Some(WorkerEnded { worker: "status socket".into(), why });
                break;
            }
            _ = sigusr1.recv() => dump(Dump::Data, &shared, &director, &mut dumping),
            _ = sigusr2.recv() => dump(Dump::Stats, &shared, &director, &mut dumping),
            _ = sigjson.recv() => dump(Dump::Json, &shared, &director, &mut dumping),
            _ = sighup.recv() => {
                if reloading.is_some() {
                    info!("SIGHUP during a reload: reloading again once it is done");
                    hup_pending = true;
                } else {
                    reloading = Some(start_reload(ReloadRequest::Signal));
                }
            }
            Some(id) = reloaded_rx.recv() => {
                // An abandoned reload that finished after all is not the current one.
                if reloading.as_ref().is_some_and(|r| r.id == id) {
                    reloading = None;
                }
                if reloading.is_none() && std::mem::take(&mut hup_pending) {
                    reloading = Some(start_reload(ReloadRequest::Signal));
                }
            }
            _ = heartbeat.tick() => {
                if let Some(r) = &reloading
                    && r.since.elapsed() > RELOAD_TIMEOUT
                {
                    // Not aborted: once it has committed a config, it must hand it on.
                    // Before that, it sees the flag and commits nothing.
                    r.abandoned.store(true, Ordering::Relaxed);
                    error!("reload abandoned: still reading and validating after {RELOAD_TIMEOUT:?}; the running config stays");
                    reloading = None;
                }
            }
            Some(control) = control_rx.recv() => match control {
                Control::Reload(reply) => {
                    if let Some(r) = &reloading {
                        let _ = reply.send(Err(ProtocolError::new(
                            ErrorCode::ReloadInProgress,
                            format!(
                                "a reload started {:.1} s ago is still running; try again when it is done",
                                r.since.elapsed().as_secs_f64()
                            ),
                        )));
                    } else {
                        reloading = Some(start_reload(ReloadRequest::Socket(reply)));
                    }
                }
                Control::Director(command) => {
                    let _ = director.send(command).await;
                }
            },
            Some(notice) = notices.recv() => match notice {
                Notice::Quorum(name, up) => vrrp.virtual_server_health(&name, up),
            },
        }
    }
    supervisor.stopping();
    systemd::stopping();
    if let Some(r) = reloading.take() {
        r.abandoned.store(true, Ordering::Relaxed);
        r.task.abort();
    }
    // Masters hand over make-before-break: each keeps its addresses until the new
    // master is heard, which the runner bounds by the slowest backup's
    // Master_Down_Interval (< 4 advert intervals); the outer bound is a safety net.
    let slowest = shared
        .snapshot()
        .config
        .vrrp
        .iter()
        .map(|v| v.advert_interval)
        .max()
        .unwrap_or_default();
    let bound = slowest * 5 + Duration::from_secs(2);
    if tokio::time::timeout(bound, vrrp.shutdown()).await.is_err() {
        warn!("VRRP instances did not stop within {bound:?}");
    }
    // The IPVS table stays as it is: a restart adopts it without a gap. Announced
    // routes are withdrawn first, and the director waits `withdraw_delay` for that.
    let withdraw = shared
        .snapshot()
        .config
        .announce
        .as_ref()
        .map_or(Duration::ZERO, |a| a.withdraw_delay);
    let (stopped, done) = tokio::sync::oneshot::channel();
    if director.send(DirectorCommand::Stop(stopped)).await.is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(10) + withdraw, done).await;
    }
    // What is queued (the stop's own VRRP transitions too) gets one last attempt.
    let _ = tokio::task::spawn_blocking(move || alerts.shutdown(Duration::from_secs(2))).await;
    server.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    drop(socket);
    main_guard.finish();
    if let Some(f) = failure {
        error!("vigild stopped: {f}");
        return Err(f.into());
    }
    info!("vigild stopped");
    Ok(())
}

/// Starts the `alerts` thread (supervised) with the file's webhooks, fed with the
/// daemon's events and VRRP state changes: what `events` clients see.
fn start_alerts(
    shared: &Arc<Shared>,
    supervisor: &Supervisor,
) -> anyhow::Result<vigil_alert::Alerts> {
    let alerts = vigil_alert::Alerts::start().context("cannot start the alerts thread")?;
    let config = shared.snapshot().config.clone();
    if let Some(e) = alerts.apply(&config.alerts, &config.director.name).first() {
        bail!("{e}");
    }
    supervisor.watch(
        "alerts",
        Some(alerts.heartbeat()),
        alerts.end(),
        Duration::ZERO,
    );
    alerts.follow(shared.events.subscribe(), event_json);
    alerts.follow(shared.vrrp.subscribe(), |e| {
        event_json(&crate::vrrp::state_event(e))
    });
    let _ = shared.alerts.set(alerts.clone());
    Ok(alerts)
}

/// An event as `events` clients read it, for the webhooks' payloads.
fn event_json(e: &vigil_proto::Event) -> serde_json::Value {
    serde_json::to_value(e).unwrap_or(serde_json::Value::Null)
}

/// [`reload_now`] on a blocking thread: reading and validating a cluster file of 10,000
/// real servers takes tens of milliseconds (far more under emulation), and a runtime
/// worker held that long would delay VRRP adverts and checks queued behind it.
async fn reload(
    shared: &Arc<Shared>,
    trigger: Trigger,
    abandoned: Arc<AtomicBool>,
) -> Result<ReloadRecord, ProtocolError> {
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || reload_now(&shared, trigger, &abandoned))
        .await
        .unwrap_or_else(|e| {
            Err(ProtocolError::new(
                ErrorCode::Internal,
                format!("the reload failed: {e}"),
            ))
        })
}

/// Validates the file again and, only if it is valid, makes it the running config. A bad
/// file changes nothing.
fn reload_now(
    shared: &Shared,
    trigger: Trigger,
    abandoned: &AtomicBool,
) -> Result<ReloadRecord, ProtocolError> {
    systemd::reloading();
    let started = Instant::now();
    let snap = shared.snapshot();
    let path = snap.config_file.clone();
    let outcome = crate::children::load_config(&path);
    if abandoned.load(Ordering::Relaxed) {
        return Err(ProtocolError::new(
            ErrorCode::ReloadTimeout,
            format!("the reload took longer than {RELOAD_TIMEOUT:?} and was abandoned"),
        ));
    }
    let duration_ms = started.elapsed().as_secs_f64() * 1e3;
    // The parse's temporaries (the toml tokens, events and document tree: most of a
    // reload's heap) are freed: give their pages back before the director, on another
    // thread, builds its part of the reload on top of them.
    crate::memory::release_now();
    let mut record = ReloadRecord {
        at_unix: unix_now(),
        trigger,
        ok: false,
        generation: snap.generation,
        duration_ms,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let result = match outcome {
        Ok(loaded) => {
            let config = loaded.config;
            let mut missing = Unrunnable::of(&config).all();
            // New FIFO paths are opened now; on an error the old ones stay.
            if missing.is_empty()
                && let Err(e) = shared.fifos.configure(&config.director)
            {
                missing.push(e.to_string());
            }
            record.warnings = loaded
                .warnings
                .warnings()
                .map(|d| loaded.warnings.one_line(d))
                .collect();
            if let Some(w) = crate::datapath::reload_warning(config.director.datapath) {
                warn!("{w}");
                record.warnings.push(w);
            }
            if let Some(w) = crate::datapath::nftables::reload_warning(&config.director) {
                warn!("{w}");
                record.warnings.push(w);
            }
            if !missing.is_empty() {
                record.errors = missing;
                error!(file = %path.display(), "reload refused, keeping generation {}: {}", snap.generation, record.errors.join("; "));
                shared.record_reload(record.clone(), None);
                Err(record)
            } else {
                if config.director.status_socket != snap.config.director.status_socket
                    || config.director.status_socket_group
                        != snap.config.director.status_socket_group
                    || config.director.status_socket_admin_group
                        != snap.config.director.status_socket_admin_group
                {
                    record.warnings.push(format!(
                        "status socket changes take effect at the next restart (still serving {})",
                        snap.config.director.status_socket.display()
                    ));
                }
                record.ok = true;
                record.generation = snap.generation + 1;
                info!(
                    file = %path.display(),
                    generation = record.generation,
                    "reloaded in {:.1} ms: {}",
                    duration_ms,
                    summary(&config)
                );
                for w in &record.warnings {
                    warn!("{w}");
                }
                shared.record_reload(record.clone(), Some(config));
                Ok(record)
            }
        }
        Err(e) => {
            record.errors = match &e {
                ConfigError::Invalid(d) => d
                    .errors()
                    .map(|x| d.one_line(x))
                    .chain(d.omitted_note())
                    .collect(),
                other => vec![other.to_string()],
            };
            error!(
                file = %path.display(),
                "reload rejected, keeping generation {}:\n{e}",
                snap.generation
            );
            shared.record_reload(record.clone(), None);
            Err(record)
        }
    };
    systemd::ready("reloaded");
    let r = match &result {
        Ok(r) | Err(r) => r,
    };
    shared.publish(Event::Reload(ReloadEvent {
        ok: r.ok,
        trigger: r.trigger.clone(),
        generation: r.generation,
        errors: r.errors.clone(),
        at_unix_ms: (r.at_unix * 1e3).round().max(0.0) as u64,
    }));
    match result {
        Ok(r) => Ok(r),
        Err(r) => Err(ProtocolError {
            code: ErrorCode::ReloadFailed,
            message: format!(
                "{} is invalid; still running generation {}:\n{}",
                path.display(),
                r.generation,
                r.errors.join("\n")
            ),
        }),
    }
}

/// Writes a state dump on a task of its own (keepalived's SIGUSR1/SIGUSR2/JSON signals),
/// unless the previous one of that kind is still being written.
fn dump(
    which: Dump,
    shared: &Arc<Shared>,
    director: &mpsc::Sender<DirectorCommand>,
    running: &mut [Option<tokio::task::JoinHandle<()>>; 3],
) {
    let running = &mut running[which as usize];
    let path = dumps::path(shared, which);
    if running.as_ref().is_some_and(|t| !t.is_finished()) {
        warn!(
            "{}: a dump is still being written; {} is not written for this signal",
            which.signal_name(),
            path.display()
        );
        return;
    }
    info!("{}: writing {}", which.signal_name(), path.display());
    *running = Some(tokio::spawn(dumps::write(
        which,
        shared.clone(),
        director.clone(),
    )));
}

/// Every probe in flight holds a socket (up to 4,096 at once), plus the status socket's
/// clients and netlink: the usual soft limit of 1,024 open files makes checks fail with
/// EMFILE at scale, which would mark healthy servers down. Raise the soft limit to the
/// hard limit (systemd's unit sets the hard limit: deploy/vigild.service).
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                warn!("cannot raise the open-files limit from {soft} to {hard}: {e}");
            }
        }
        Ok((soft, _)) if soft < 8192 => {
            warn!(
                "open-files limit is only {soft}: large clusters will see checks fail with EMFILE"
            );
        }
        Ok(_) => {}
        Err(e) => warn!("cannot read the open-files limit: {e}"),
    }
}
