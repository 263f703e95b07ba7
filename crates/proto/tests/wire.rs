//! Pins the wire form of every request, reply and event: each sample is serialised and
//! compared byte for byte with its snapshot in `tests/snapshots/` (one line, as sent),
//! then decoded back. A change of the wire form fails here; if it is meant, rewrite the
//! snapshots with `UPDATE_SNAPSHOTS=1 cargo test -p vigil-proto --test wire` and review
//! the diff (and docs/status-socket.md).

#![allow(clippy::unwrap_used)] // a test: it panics on what it built itself

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use vigil_proto::*;

fn snapshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.json"))
}

/// Compares `line` (without its newline) with snapshot `name`.
fn check_line(name: &str, line: &[u8]) {
    let line = std::str::from_utf8(line).unwrap().trim_end_matches('\n');
    let path = snapshot_path(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, format!("{line}\n")).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "snapshot {} missing ({e}); create it with UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    assert_eq!(
        line,
        want.trim_end_matches('\n'),
        "wire form of {name} changed (snapshot {})",
        path.display()
    );
}

/// Pins `value`'s wire form and checks that it decodes back to itself.
fn pin<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, value: &T) {
    let line = serde_json::to_vec(value).unwrap();
    check_line(name, &line);
    let back: T = serde_json::from_slice(&line).unwrap();
    assert_eq!(&back, value, "{name} does not decode to itself");
}

/// Pins a whole reply line and checks that a client decodes its result.
fn pin_reply<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, result: T) {
    let line = reply_line(Ok(&result), Some(json!(1)));
    check_line(name, &line);
    let back: Reply<T> = serde_json::from_slice(&line).unwrap();
    assert_eq!(back.id, Some(json!(1)));
    assert_eq!(back.into_result().unwrap(), Some(result), "{name}");
}

#[test]
fn requests() {
    let rs = || Some("192.0.2.11:80".to_string());
    let all = [
        ("status", Request::Status),
        ("config", Request::Config),
        ("services", Request::Services),
        ("vrrp", Request::Vrrp),
        ("reload", Request::Reload),
        ("ping", Request::Ping),
        (
            "vrrp-handover",
            Request::VrrpHandover {
                instance: "web".into(),
            },
        ),
        (
            "vrrp-reclaim",
            Request::VrrpReclaim {
                instance: "web".into(),
            },
        ),
        ("vrrp-watch", Request::VrrpWatch),
        (
            "drain",
            Request::Drain {
                virtual_server: "web-http".into(),
                real_server: rs(),
            },
        ),
        (
            "enable",
            Request::Enable {
                virtual_server: "web-http".into(),
                real_server: rs(),
            },
        ),
        ("events", Request::Events),
    ];
    assert_eq!(all.len(), COMMANDS.len(), "a command without a sample");
    for (command, request) in all {
        assert_eq!(request.command(), command);
        pin(&format!("request-{command}"), &request);
        let (parsed, _) = parse_request(&request.to_line());
        assert_eq!(parsed, Ok(request));
    }
    // A whole virtual server: no `real_server`.
    let whole = Request::Drain {
        virtual_server: "web-http".into(),
        real_server: None,
    };
    pin("request-drain-whole", &whole);
    assert_eq!(parse_request(&whole.to_line()).0, Ok(whole));
}

#[test]
fn errors() {
    let line = reply_line(
        Err::<(), _>(ProtocolError::new(
            ErrorCode::UnknownCommand,
            format!(
                "unknown command \"reboot\"; commands: {}",
                COMMANDS.join(", ")
            ),
        )),
        None,
    );
    check_line("reply-error-unknown-command", &line);
    let line = reply_line(
        Err::<(), _>(ProtocolError::new(ErrorCode::Busy, "every slot is taken")),
        Some(json!("a")),
    );
    check_line("reply-error-busy", &line);
}

fn reload_record(ok: bool) -> ReloadRecord {
    ReloadRecord {
        at_unix: 1_795_003_000.5,
        trigger: if ok { Trigger::Sighup } else { Trigger::Socket },
        ok,
        generation: 3,
        duration_ms: 0.75,
        errors: if ok {
            vec![]
        } else {
            vec!["/etc/vigil/cluster.toml:3:1: error: unknown key".into()]
        },
        warnings: vec![],
    }
}

#[test]
fn status_config_reload_drain_ping() {
    pin_reply(
        "reply-status",
        StatusReply {
            director: "lb-a".into(),
            version: "0.1.0".into(),
            pid: 4242,
            started_at_unix: 1_795_000_000.125,
            uptime_secs: 3600.5,
            config_file: "/etc/vigil/cluster.toml".into(),
            config_generation: 3,
            config_loaded_at_unix: 1_795_003_000.5,
            counts: Counts {
                vrrp_instances: 1,
                virtual_servers: 2,
                real_servers: 6,
            },
            reloads: vec![reload_record(true), reload_record(false)],
            status_socket: SocketStatus {
                connections: 3,
                accepted: 120,
                subscribers: 1,
                refused: Refused {
                    idle: 2,
                    forbidden: 1,
                    ..Refused::default()
                },
            },
            alerts: vec![AlertStatus {
                name: "ops".into(),
                url: "https://alerts.example/hook".into(),
                format: "alertmanager".into(),
                queued: 1,
                firing: 2,
                sent: 40,
                requests: AlertRequests { ok: 38, failed: 3 },
                dropped: AlertDropped {
                    failed: 1,
                    ..AlertDropped::default()
                },
                last_ok_at_unix: Some(1_795_003_500.25),
                last_error: Some("HTTP 503".into()),
                last_error_at_unix: Some(1_795_003_400.5),
            }],
            datapath: Some(DatapathStatus {
                name: "nftables".into(),
                reason: "datapath = \"auto\": no IPVS (IPVS is not available in this kernel: load ip_vs)".into(),
            }),
        },
    );
    pin_reply(
        "reply-config",
        ConfigReply {
            generation: 3,
            file: "/etc/vigil/cluster.toml".into(),
            config: json!({"director": {"name": "lb-a"}}),
        },
    );
    pin_reply("reply-reload", reload_record(true));
    pin_reply(
        "reply-drain",
        DrainReply {
            virtual_server: "web-http".into(),
            real_server: Some("192.0.2.11:80".parse().unwrap()),
            real_servers: vec![],
            drained: true,
            changed: true,
            warnings: vec![],
        },
    );
    pin_reply(
        "reply-drain-whole",
        DrainReply {
            virtual_server: "web-http".into(),
            real_server: None,
            real_servers: vec![
                "192.0.2.11:80".parse().unwrap(),
                "192.0.2.12:80".parse().unwrap(),
            ],
            drained: true,
            changed: true,
            warnings: vec!["the virtual server is drained whole: its route is withdrawn now, the drain reaches IPVS in 3s".into()],
        },
    );
    pin_reply("reply-ping", PONG.to_string());
}

#[test]
fn services() {
    let http_check = CheckSummary {
        kind: "http".into(),
        target: "GET /healthz".into(),
        interval: "1s".into(),
        timeout: "500ms".into(),
        rise: 2,
        fall: 3,
        port: None,
    };
    let rs = |address: &str, health: Health| RealServerView {
        dynamic_weight: None,
        checks: vec![CheckView {
            summary: http_check.clone(),
            health: health.clone(),
            passed: Some(health == Health::Up),
            reason: Some("HTTP 200 from 192.0.2.11:80 GET /healthz".into()),
            last_latency_us: Some(1830),
            last_failure: Some("refused".into()),
            last_failure_unix_ms: Some(1_765_000_000_000),
        }],
        address: address.parse().unwrap(),
        weight: 100,
        kernel_weight: Some(100),
        forwarding: "dr".into(),
        health,
        drained: false,
        reason: Some("HTTP 200 from 192.0.2.11:80 GET /healthz".into()),
        since_unix_ms: Some(1_795_000_000_123),
        last_latency_us: Some(1830),
        last_failure: Some("refused".into()),
        last_failure_unix_ms: Some(1_765_000_000_000),
        active_conns: Some(12),
        inactive_conns: Some(40),
        check: Some(CheckSummary {
            kind: "http".into(),
            target: "GET /healthz".into(),
            interval: "1s".into(),
            timeout: "500ms".into(),
            rise: 2,
            fall: 3,
            port: None,
        }),
    };
    let unchecked = RealServerView {
        kernel_weight: None,
        health: Health::Unchecked,
        reason: None,
        since_unix_ms: None,
        last_latency_us: None,
        last_failure: None,
        last_failure_unix_ms: None,
        active_conns: None,
        inactive_conns: None,
        check: None,
        checks: Vec::new(),
        ..rs("192.0.2.13:80", Health::Unchecked)
    };
    // Two checks, the second a file check that sets the weight.
    let mut two = rs("192.0.2.14:80", Health::Up);
    two.dynamic_weight = Some(30);
    two.checks.push(CheckView {
        summary: CheckSummary {
            kind: "file".into(),
            target: "/run/web.weight weight 10".into(),
            interval: "1s".into(),
            timeout: "500ms".into(),
            rise: 1,
            fall: 1,
            port: None,
        },
        health: Health::Up,
        passed: Some(true),
        reason: Some("/run/web.weight reads 2: weight +20".into()),
        last_latency_us: Some(40),
        last_failure: None,
        last_failure_unix_ms: None,
    });
    pin_reply(
        "reply-services",
        ServicesReply {
            virtual_servers: vec![
                VirtualServerView {
                    name: "web-http".into(),
                    protocol: Some("tcp".into()),
                    address: Some("192.0.2.100:80".into()),
                    fwmark: None,
                    family: Family::Ipv4,
                    scheduler: "wrr".into(),
                    forwarding: "dr".into(),
                    persistence: None,
                    quorum: 2,
                    has_quorum: Some(true),
                    quorum_by: "weight".into(),
                    quorum_counted: 200,
                    sorry_server: Some("192.0.2.50:80".parse().unwrap()),
                    sorry_active: false,
                    in_kernel: Some(true),
                    announce: Some(AnnounceView {
                        address: "192.0.2.100".parse().unwrap(),
                        announced: true,
                        reason: "healthy".into(),
                        since_unix_ms: Some(1_795_000_000_200),
                    }),
                    real_servers: vec![
                        rs("192.0.2.11:80", Health::Up),
                        rs("192.0.2.12:80", Health::Down),
                        unchecked,
                        two,
                    ],
                    dns: vec![DnsSourceView {
                        name: "_http._tcp.web.example.internal".into(),
                        record: "SRV".into(),
                        real_servers: vec!["192.0.2.12:80".parse().unwrap()],
                        last_success_unix_ms: Some(1_795_000_000_000),
                        ttl_s: Some(30),
                        last_error: Some("no answer from 127.0.0.1:53 within 2s".into()),
                        last_error_unix_ms: Some(1_795_000_030_000),
                        next_resolution_unix_ms: Some(1_795_000_035_000),
                        resolutions: 3,
                        failures: 1,
                    }],
                    group: Vec::new(),
                },
                VirtualServerView {
                    name: "mail".into(),
                    protocol: None,
                    address: None,
                    fwmark: Some(7),
                    family: Family::Ipv6,
                    scheduler: "rr".into(),
                    forwarding: "nat".into(),
                    persistence: Some("300s".into()),
                    quorum: 1,
                    has_quorum: None,
                    quorum_by: "servers".into(),
                    quorum_counted: 0,
                    sorry_server: None,
                    sorry_active: false,
                    in_kernel: None,
                    announce: None,
                    real_servers: vec![RealServerView {
                        health: Health::Pending,
                        ..rs("[2001:db8::1]:25", Health::Pending)
                    }],
                    dns: vec![],
                    group: vec![GroupServiceView {
                        service: "fwmark 8 IPv6".into(),
                        in_kernel: None,
                    }],
                },
            ],
            ipvs: IpvsView {
                available: true,
                error: None,
                writes: 31,
                write_errors: 0,
                pending_retries: false,
                sync_daemon: Some("master eth0 id 51".into()),
            },
        },
    );
}

fn transition() -> TransitionView {
    TransitionView {
        from: VrrpState::Backup,
        to: VrrpState::Master,
        reason: TransitionReason::MasterDown,
        priority: 150,
        at_unix: 1_795_000_000.5,
    }
}

#[test]
fn vrrp() {
    let running = InstanceView {
        name: "web".into(),
        interface: "eth0".into(),
        vrid: 51,
        version: 3,
        priority: 150,
        effective_priority: 150,
        state: VrrpState::Master,
        advert_interval: "100ms".into(),
        preempt: true,
        vips: vec!["192.0.2.100/24".into()],
        vips_excluded: vec![],
        unicast_peers: vec![],
        sync_group: None,
        track: vec![
            TrackView {
                virtual_server: Some("web-http".into()),
                weight: -60,
                ..TrackView::default()
            },
            TrackView {
                interface: Some("eth1".into()),
                weight: 0,
                ..TrackView::default()
            },
            TrackView {
                exec: Some(vec!["/usr/bin/check".into(), "-q".into()]),
                weight: -10,
                ..TrackView::default()
            },
        ],
        live: Some(LiveStatus {
            master: Some("192.0.2.1".parse().unwrap()),
            primary_address: Some("192.0.2.1".parse().unwrap()),
            holds_vips: true,
            standing_down: false,
            own_fault: false,
            transitions: 2,
            last_transition: Some(transition()),
            adverts_sent: 1200,
            adverts_received: 3,
            replies_limited: 0,
            send_errors: 0,
            drops: BTreeMap::from([("checksum".into(), 1), ("vrid".into(), 12)]),
            error: None,
        }),
        fault_reason: None,
    };
    // Not running (for a moment during a restart): no live fields at all.
    let stopped = InstanceView {
        name: "dns".into(),
        interface: "eth0".into(),
        vrid: 52,
        version: 2,
        priority: 100,
        effective_priority: 100,
        state: VrrpState::Init,
        advert_interval: "1s".into(),
        preempt: false,
        vips: vec!["192.0.2.53/24".into()],
        vips_excluded: vec!["192.0.2.54/24".into()],
        unicast_peers: vec!["192.0.2.2".parse().unwrap()],
        sync_group: Some("edge".into()),
        track: vec![],
        live: None,
        fault_reason: Some("IPVS cannot be programmed: load ip_vs".into()),
    };
    let line = reply_line(
        Ok(&VrrpReply {
            instances: vec![running.clone(), stopped.clone()],
        }),
        None,
    );
    check_line("reply-vrrp", &line);
    let back: Reply<VrrpReply> = serde_json::from_slice(&line).unwrap();
    let back = back.into_result().unwrap().unwrap();
    assert_eq!(back.instances[0], running);
    // A client cannot tell "no runner" from "a runner with every live field at its
    // default" once decoded: what it sees is the same.
    assert_eq!(back.instances[1].name, "dns");
    assert_eq!(back.instances[1].state, VrrpState::Init);
    assert_eq!(back.instances[1].fault_reason, stopped.fault_reason);
    pin_reply(
        "reply-vrrp-handover",
        VrrpControlReply {
            instance: "web".into(),
            action: VrrpAction::Handover,
            state_before: VrrpState::Master,
        },
    );
}

#[test]
fn events() {
    let rs: std::net::SocketAddr = "10.0.0.11:80".parse().unwrap();
    let all = [
        ("subscribed", Event::Subscribed),
        (
            "health",
            Event::Health(HealthEvent {
                virtual_server: "web".into(),
                real_server: rs,
                health: Health::Down,
                reason: "connect to 10.0.0.11:80 refused".into(),
                latency_us: 210,
                at_unix_ms: 1_795_000_000_123,
            }),
        ),
        (
            "quorum",
            Event::Quorum(QuorumEvent {
                virtual_server: "web".into(),
                has_quorum: false,
                at_unix_ms: 1_795_000_000_124,
            }),
        ),
        (
            "drain",
            Event::Drain(DrainEvent {
                virtual_server: "web".into(),
                real_server: "10.0.0.12:80".parse().unwrap(),
                drained: true,
                at_unix_ms: 1_795_000_001_000,
            }),
        ),
        (
            "reload-ok",
            Event::Reload(ReloadEvent {
                ok: true,
                trigger: Trigger::Socket,
                generation: 4,
                errors: vec![],
                at_unix_ms: 1_795_000_002_500,
            }),
        ),
        (
            "reload-failed",
            Event::Reload(ReloadEvent {
                ok: false,
                trigger: Trigger::Sighup,
                generation: 3,
                errors: vec!["cluster.toml:1:1: error: expected a table".into()],
                at_unix_ms: 1_795_000_002_500,
            }),
        ),
        (
            "vrrp-state",
            Event::VrrpState(VrrpStateEvent {
                instance: "web".into(),
                from: VrrpState::Backup,
                to: VrrpState::Master,
                reason: TransitionReason::MasterDown,
                priority: 100,
                at_unix_ms: 1_795_000_000_500,
            }),
        ),
        (
            "ipvs-fault",
            Event::IpvsFault(IpvsFaultEvent {
                reason: Some("IPVS cannot be programmed: load ip_vs".into()),
                held: vec!["web".into()],
                released: vec![],
                at_unix_ms: 1_795_000_003_000,
            }),
        ),
        (
            "ipvs-fault-cleared",
            Event::IpvsFault(IpvsFaultEvent {
                reason: None,
                held: vec![],
                released: vec!["web".into()],
                at_unix_ms: 1_795_000_004_000,
            }),
        ),
        (
            "dns-resolution",
            Event::DnsResolution(DnsResolutionEvent {
                virtual_server: "web".into(),
                name: "web.example.internal".into(),
                record: "A".into(),
                ok: true,
                real_servers: vec![rs, "10.0.0.13:80".parse().unwrap()],
                added: vec!["10.0.0.13:80".parse().unwrap()],
                removed: vec!["10.0.0.12:80".parse().unwrap()],
                error: None,
                at_unix_ms: 1_795_000_005_000,
            }),
        ),
        (
            "announce",
            Event::Announce(AnnounceEvent {
                virtual_server: "web".into(),
                address: "192.0.2.100".parse().unwrap(),
                announced: true,
                reason: "healthy".into(),
                at_unix_ms: 1_795_000_005_000,
            }),
        ),
        (
            "dns-resolution-failed",
            Event::DnsResolution(DnsResolutionEvent {
                virtual_server: "web".into(),
                name: "web.example.internal".into(),
                record: "A".into(),
                ok: false,
                real_servers: vec![rs],
                added: vec![],
                removed: vec![],
                error: Some("no answer from 127.0.0.1:53 within 2s".into()),
                at_unix_ms: 1_795_000_006_000,
            }),
        ),
        (
            "withdraw",
            Event::Announce(AnnounceEvent {
                virtual_server: "web".into(),
                address: "192.0.2.100".parse().unwrap(),
                announced: false,
                reason: "quorum lost".into(),
                at_unix_ms: 1_795_000_006_000,
            }),
        ),
        ("lagged", Event::Lagged(LaggedEvent { missed: 12 })),
    ];
    for (name, event) in all {
        pin(&format!("event-{name}"), &event);
        assert_eq!(event.to_line().last(), Some(&b'\n'));
    }
    // `events`' first reply carries `subscribed` as its result.
    pin_reply("reply-events", Event::Subscribed);
}

/// An older client reads a newer daemon: fields it does not know are ignored, names it
/// does not know are kept, events it does not know decode as `Other`.
#[test]
fn newer_daemons_are_read() {
    let e: Event = serde_json::from_str(
        r#"{"event":"vrrp_state","instance":"web","from":"backup","to":"standby","reason":"maintenance","priority":1,"at_unix_ms":5,"extra":{"x":1}}"#,
    )
    .unwrap();
    let Event::VrrpState(e) = e else {
        panic!("{e:?}")
    };
    assert_eq!(e.to, VrrpState::Other("standby".into()));
    assert_eq!(e.reason, TransitionReason::Other("maintenance".into()));
    assert_eq!(e.to.as_str(), "standby");
    let e: Event =
        serde_json::from_str(r#"{"event":"certificate_expiry","days":3,"at_unix_ms":1}"#).unwrap();
    assert_eq!(e, Event::Other);
    let r: Reply<ServicesReply> = serde_json::from_str(
        r#"{"ok":true,"result":{"virtual_servers":[{"name":"w","family":"ipx","weight_sum":3,
            "real_servers":[{"address":"10.0.0.1:80","health":"degraded","reason_kind":"timeout"}]}],
            "ipvs":{"available":true},"nft":{}}}"#,
    )
    .unwrap();
    let s = r.into_result().unwrap().unwrap();
    assert_eq!(s.virtual_servers[0].family, Family::Other("ipx".into()));
    assert_eq!(
        s.virtual_servers[0].real_servers[0].health,
        Health::Other("degraded".into())
    );
    let r: Reply<StatusReply> = serde_json::from_str(
        r#"{"ok":true,"result":{"director":"a","status_socket":{"refused":{"idle":2,"tarpit":5}}}}"#,
    )
    .unwrap();
    let s = r.into_result().unwrap().unwrap();
    let refused: Vec<_> = s
        .status_socket
        .refused
        .iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(refused, [("idle", 2), ("tarpit", 5)]);
    let r: Reply<()> =
        serde_json::from_str(r#"{"ok":false,"error":{"code":"quota","message":"m"}}"#).unwrap();
    assert_eq!(
        r.into_result().unwrap_err().code,
        ErrorCode::Other("quota".into())
    );
}

/// A newer client reads an older daemon: fields it did not send read as defaults.
#[test]
fn older_daemons_are_read() {
    let r: Reply<VrrpReply> = serde_json::from_str(
        r#"{"ok":true,"result":{"instances":[{"name":"web","state":"master","adverts_sent":3}]}}"#,
    )
    .unwrap();
    let v = r.into_result().unwrap().unwrap();
    let live = v.instances[0].live.clone().unwrap();
    assert_eq!(live.adverts_sent, 3);
    assert_eq!(live.replies_limited, 0);
    assert!(v.instances[0].vips_excluded.is_empty());
    let s: StatusReply = serde_json::from_str("{}").unwrap();
    assert_eq!(s, StatusReply::default());
}
