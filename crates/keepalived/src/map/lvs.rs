//! `virtual_server` (and `virtual_server_group`) → `[[virtual_server]]`, `real_server` →
//! `real_server` entries, and the checkers → `check`.

use std::net::IpAddr;

use super::text::{Section, array, inline, one_line, q};
use super::vrrp::shorter_than;
use super::{Mapper, arg, boolean, dur, iface_name, int_in, ip, sanitize_name, secs_us};
use crate::reader::{Loc, Node, ReadError};

/// IPVS schedulers vigil knows (those of Linux 6.x).
const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
];

pub(super) const CHECKERS: &[&str] = &[
    "TCP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "DNS_CHECK",
    "MISC_CHECK",
    "UDP_CHECK",
    "SMTP_CHECK",
    "FILE_CHECK",
    "BFD_CHECK",
    "PING_CHECK",
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Key {
    Addr(IpAddr, u16),
    Fwmark(u32),
}

/// Checker settings a virtual or real server gives its checkers.
#[derive(Debug, Clone, Default)]
struct CheckDefaults {
    delay_loop_us: Option<u64>,
    retry: Option<i64>,
    delay_before_retry_us: Option<u64>,
    warmup_us: Option<u64>,
    connect_timeout_us: Option<u64>,
    alpha: Option<bool>,
    virtualhost: Option<String>,
}

impl CheckDefaults {
    /// Reads one of the shared keywords; false when `n` is not one.
    fn read(&mut self, n: &Node) -> Result<bool, ReadError> {
        match n.keyword() {
            "delay_loop" => self.delay_loop_us = Some(secs_us(n, 0)?),
            "retry" | "nb_get_retry" | "nb_sock_retry" => {
                self.retry = Some(int_in(n, 0, 0, 1_000_000)?)
            }
            "delay_before_retry" => self.delay_before_retry_us = Some(secs_us(n, 0)?),
            "warmup" => self.warmup_us = Some(secs_us(n, 0)?),
            "connect_timeout" => self.connect_timeout_us = Some(secs_us(n, 0)?),
            "alpha" => self.alpha = Some(boolean(n)?),
            "virtualhost" => self.virtualhost = Some(arg(n, 0)?.to_string()),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// One real server, ready to write.
struct Rs {
    fields: Vec<(String, String)>,
    weight: i64,
    /// Every checker's check (all must pass, as in keepalived).
    checks: Vec<Vec<(String, String)>>,
    inhibit: Option<bool>,
    comments: Section,
    /// Not written: only its comments are.
    dropped: bool,
}

/// `quorum_up` and the like: the program as an argv, or nothing (with a warning).
type Hook = Option<Vec<String>>;

impl Rs {
    fn dropped(comments: Section) -> Self {
        Rs {
            fields: Vec::new(),
            weight: 0,
            checks: Vec::new(),
            inhibit: None,
            comments,
            dropped: true,
        }
    }
}

impl Mapper<'_> {
    /// Records service `key` as defined at `n`; an error (its message starting with
    /// `context`) when another virtual server defined it first.
    fn claim_service(
        &mut self,
        key: Key,
        protocol: &str,
        n: &Node,
        context: &str,
    ) -> Result<(), ReadError> {
        let service = match key {
            Key::Addr(a, p) => format!("{protocol} {}", sockaddr(a, p)),
            Key::Fwmark(m) => format!("fwmark {m}"),
        };
        if let Some(first) = self.services.get(&service) {
            return Err(ReadError::new(
                &n.loc,
                format!("{context}{service} is defined twice (first at {first})"),
            ));
        }
        self.services.insert(service, n.loc.clone());
        Ok(())
    }

    /// `lvs_method TUN [type {ipip|gue port N|gre} [nocsum|csum|remcsum]]` as
    /// `tunnel_type`, `tunnel_port` and `tunnel_checksum` (none for plain IPIP). Options
    /// vigil would reject are dropped with a warning, whole: IPIP is used instead.
    fn tunnel_options(&mut self, sec: &mut Section, n: &Node) -> Vec<(String, String)> {
        let args = &n.args()[1.min(n.args().len())..];
        if args.is_empty() {
            return Vec::new();
        }
        let opts = args.join(" ");
        let mut fields = Vec::new();
        let mut rest = args.iter().map(String::as_str);
        let mut kind = "ipip";
        let mut why = None;
        match (rest.next(), rest.next()) {
            (Some("type"), Some(k @ ("ipip" | "gue" | "gre"))) => kind = k,
            _ => {
                why = Some("keepalived writes `TUN type ipip|gue port N|gre [nocsum|csum|remcsum]`")
            }
        }
        let mut tail: Vec<&str> = rest.collect();
        if why.is_none() && kind == "gue" {
            match tail.first().copied() {
                Some("port") => match tail
                    .get(1)
                    .and_then(|p| p.parse::<u16>().ok())
                    .filter(|p| *p > 0)
                {
                    Some(p) => {
                        fields.push(("tunnel_port".to_string(), p.to_string()));
                        tail.drain(..2);
                    }
                    None => why = Some("the GUE port is not 1 to 65535"),
                },
                _ => why = Some("GUE needs a port"),
            }
        }
        if why.is_none() {
            match (kind, tail.as_slice()) {
                (_, [] | ["nocsum"]) => {}
                ("gue" | "gre", ["csum"]) | ("gue", ["remcsum"]) => {
                    fields.push(("tunnel_checksum".to_string(), q(tail[0])));
                }
                ("ipip", ["csum" | "remcsum"]) => why = Some("IPIP has no checksum option"),
                (_, ["remcsum"]) => why = Some("remote checksum offload (remcsum) is GUE's only"),
                _ => {
                    why = Some(
                        "keepalived writes `TUN type ipip|gue port N|gre [nocsum|csum|remcsum]`",
                    )
                }
            }
        }
        if let Some(why) = why {
            self.warn(
                sec,
                n,
                n.keyword(),
                format!("`{opts}` dropped: {why}; the tunnel is IPIP"),
            );
            return Vec::new();
        }
        if kind != "ipip" {
            fields.insert(0, ("tunnel_type".to_string(), q(kind)));
        }
        fields
    }

    /// The top-level `SSL { ca certificate key password }` block: the https checks' CA file
    /// and client certificate (keepalived's SSL_GET presents it to every server).
    pub(super) fn ssl(&mut self, n: &Node, sec: &mut Section) -> Result<(), ReadError> {
        let mut cert = None;
        let mut key = None;
        for c in n.children() {
            let kw = c.keyword();
            let field = match kw {
                "ca" => "tls_ca_file",
                "certificate" => "tls_client_cert",
                "key" => "tls_client_key",
                _ => {
                    self.unhandled(sec, "SSL", c);
                    continue;
                }
            };
            let path = arg(c, 0)?;
            if !path.starts_with('/') {
                self.warn(
                    sec,
                    c,
                    kw,
                    format!("\"{path}\" dropped: vigil takes absolute paths only"),
                );
                continue;
            }
            match kw {
                "ca" => self.globals.ssl.push((field.into(), q(path))),
                "certificate" => cert = Some((q(path), c)),
                _ => key = Some((q(path), c)),
            }
        }
        match (cert, key) {
            (Some((cert, _)), Some((key, _))) => {
                self.globals.ssl.push(("tls_client_cert".into(), cert));
                self.globals.ssl.push(("tls_client_key".into(), key));
            }
            (Some((_, c)), None) | (None, Some((_, c))) => {
                self.warn(
                    sec,
                    c,
                    c.keyword(),
                    "dropped: vigil presents a client certificate with its key, both or neither",
                );
            }
            (None, None) => {}
        }
        Ok(())
    }

    pub(super) fn virtual_server(&mut self, n: &Node) -> Result<Vec<Section>, ReadError> {
        let args = n.args();
        let mut keys = Vec::new();
        // Services on every port (no port given, persistent in keepalived).
        let mut all_ports: Vec<(IpAddr, Loc)> = Vec::new();
        let mut group = None;
        match (args.first().map(String::as_str), args.get(1)) {
            (Some("fwmark"), Some(m)) => keys.push(Key::Fwmark(fwmark(n, m)?)),
            (Some("group"), Some(g)) => {
                let members = self.vs_groups.get(g).cloned().ok_or_else(|| {
                    ReadError::new(
                        &n.loc,
                        format!("virtual_server group {g}: there is no virtual_server_group {g}"),
                    )
                })?;
                for m in &members {
                    for member in group_member(m)? {
                        match member {
                            Ok(k) => keys.push(k),
                            Err(a) => all_ports.push((a, m.loc.clone())),
                        }
                    }
                }
                group = Some(g.clone());
            }
            (Some(a), Some(p)) => keys.push(Key::Addr(ip(n, a)?, port(n, p)?)),
            (Some(a), None) if a != "fwmark" && a != "group" => {
                all_ports.push((ip(n, a)?, n.loc.clone()));
            }
            _ => {
                return Err(ReadError::new(
                    &n.loc,
                    "virtual_server needs `IP PORT`, `fwmark N` or `group NAME`",
                ));
            }
        }
        let mut out = Vec::new();
        let mut first = Section::new("");
        for (a, loc) in &all_ports {
            self.warn_at(&mut first, loc, "virtual_server", format!("{a} without a port dropped: a service on every port has no vigil equivalent (mark the traffic and use a fwmark service)"));
        }
        if keys.is_empty() {
            return Ok(vec![first]);
        }
        if let Some(g) = &group {
            if let Some(mut sec) = self.group_virtual_server(n, g, &keys)? {
                sec.prepend(first);
                return Ok(vec![sec]);
            }
            self.warn(&mut first, n, "virtual_server", format!("group {g} approximated: vigil's group form holds one address family and at most {MAX_GROUP_SERVICES} services; written as {} virtual servers with the same settings (each checks its real servers and keeps its quorum on its own)", keys.len()));
        }
        for (i, key) in keys.iter().enumerate() {
            self.quiet = i > 0;
            let mut sec = self.one_virtual_server(n, *key, group.as_deref())?;
            if i == 0 {
                sec.prepend(std::mem::take(&mut first));
            }
            out.push(sec);
        }
        self.quiet = false;
        Ok(out)
    }

    /// A `virtual_server group NAME` as one virtual server in vigil's group form
    /// (`addresses`, `fwmarks`): one set of real servers, one check each, one quorum, as
    /// keepalived has it. `None` when the form cannot hold the group (both address
    /// families, too many services): then it is approximated.
    fn group_virtual_server(
        &mut self,
        n: &Node,
        g: &str,
        keys: &[Key],
    ) -> Result<Option<Section>, ReadError> {
        let v6: Vec<bool> = keys
            .iter()
            .filter_map(|k| match k {
                Key::Addr(a, _) => Some(a.is_ipv6()),
                Key::Fwmark(_) => None,
            })
            .collect();
        if v6.iter().any(|x| *x) && v6.iter().any(|x| !*x) || keys.len() > MAX_GROUP_SERVICES {
            return Ok(None);
        }
        // Addresses first (the first is the service vigil keys health by), then marks.
        let addrs: Vec<(IpAddr, u16)> = keys
            .iter()
            .filter_map(|k| match k {
                Key::Addr(a, p) => Some((*a, *p)),
                Key::Fwmark(_) => None,
            })
            .collect();
        let marks: Vec<u32> = keys
            .iter()
            .filter_map(|k| match k {
                Key::Fwmark(m) => Some(*m),
                Key::Addr(..) => None,
            })
            .collect();
        let first = match addrs.first() {
            Some((a, p)) => Key::Addr(*a, *p),
            None => Key::Fwmark(marks[0]),
        };
        let mut sec = self.one_virtual_server(n, first, Some(g))?;
        // The virtual server is the group: named after it.
        if let Some(old) = sec.get("name").map(|s| s.trim_matches('"').to_string()) {
            self.vs_names.remove(&old);
        }
        let name = super::unique_name(&mut self.vs_names, super::sanitize_name(g));
        sec.set_first("name", q(&name));
        let protocol = sec
            .get("protocol")
            .map_or("tcp".to_string(), |p| p.trim_matches('"').to_string());
        for k in keys.iter().filter(|k| **k != first) {
            self.claim_service(*k, &protocol, n, &format!("virtual_server group {g}: "))?;
        }
        if !addrs.is_empty() {
            let items: Vec<String> = address_ranges(&addrs).iter().map(|a| q(a)).collect();
            sec.set_after("addresses", array(&items), &["name"]);
            sec.remove("address");
        }
        if !marks.is_empty() {
            let items: Vec<String> = marks.iter().map(ToString::to_string).collect();
            sec.set_after("fwmarks", array(&items), &["addresses", "name"]);
            sec.remove("fwmark");
        }
        Ok(Some(sec))
    }

    fn one_virtual_server(
        &mut self,
        n: &Node,
        key: Key,
        group: Option<&str>,
    ) -> Result<Section, ReadError> {
        let mut sec = Section::new("");
        let mut defaults = CheckDefaults::default();
        let mut protocol = "tcp".to_string();
        let mut scheduler: Option<String> = None;
        let mut flags: Vec<(&str, &Node)> = Vec::new();
        let mut forwarding = "nat".to_string();
        let mut persistence: Option<u64> = None;
        let mut granularity: Option<(u8, bool)> = None;
        let mut quorum = 1i64;
        let mut hysteresis = 0i64;
        let mut sorry: Option<(IpAddr, Option<u16>, Node)> = None;
        let mut inhibit: Option<bool> = None;
        let mut quorum_up: Hook = None;
        let mut quorum_down: Hook = None;
        let mut omega = false;
        let mut ipv6_family = None;
        let mut real_servers = Vec::new();
        let mut vs_tunnel = Vec::new();
        let mut ops = None;
        for c in n.children() {
            let kw = c.keyword();
            if defaults.read(c)? {
                continue;
            }
            match kw {
                "lvs_sched" | "lb_algo" => {
                    let s = arg(c, 0)?.to_ascii_lowercase();
                    if SCHEDULERS.contains(&s.as_str()) {
                        scheduler = Some(s);
                    } else {
                        self.warn(
                            &mut sec,
                            c,
                            kw,
                            format!("\"{s}\" dropped: not a scheduler vigil knows; it uses wlc"),
                        );
                    }
                }
                "lvs_method" | "lb_kind" => {
                    forwarding = method(c)?;
                    vs_tunnel = self.tunnel_options(&mut sec, c);
                }
                "ops" => ops = Some(c),
                "persistence_timeout" => {
                    persistence = Some(match c.args().first() {
                        Some(_) => secs_us(c, 0)?,
                        None => 360_000_000,
                    });
                }
                "persistence_granularity" => {
                    let g = arg(c, 0)?;
                    granularity = Some(match g.parse::<u8>() {
                        Ok(p) => (p, true),
                        Err(_) => (netmask_len(c, g)?, false),
                    });
                }
                "protocol" => {
                    protocol = match arg(c, 0)?.to_ascii_uppercase().as_str() {
                        "TCP" => "tcp".into(),
                        "UDP" => "udp".into(),
                        "SCTP" => "sctp".into(),
                        other => {
                            return Err(ReadError::new(
                                &c.loc,
                                format!("protocol \"{other}\": keepalived knows TCP, UDP and SCTP"),
                            ));
                        }
                    };
                }
                "quorum" => quorum = int_in(c, 0, 0, u32::MAX.into())?,
                "hysteresis" => hysteresis = int_in(c, 0, 0, u32::MAX.into())?,
                "ip_family" => {
                    ipv6_family = Some(match arg(c, 0)? {
                        "inet" => false,
                        "inet6" => true,
                        other => {
                            return Err(ReadError::new(
                                &c.loc,
                                format!("ip_family \"{other}\": keepalived knows inet and inet6"),
                            ));
                        }
                    });
                }
                "sorry_server" => {
                    let a = ip(c, arg(c, 0)?)?;
                    let p = opt_port(c, c.args().get(1))?;
                    sorry = Some((a, p, c.clone()));
                }
                "sorry_server_lvs_method" => {
                    let m = method(c)?;
                    if m != forwarding {
                        self.warn(
                            &mut sec,
                            c,
                            kw,
                            format!(
                                "{} dropped: the sorry server takes the service's forwarding",
                                arg(c, 0)?
                            ),
                        );
                    }
                }
                "inhibit_on_failure" => inhibit = Some(boolean(c)?),
                "quorum_up" => quorum_up = self.hook(c, &mut sec)?,
                "quorum_down" => quorum_down = self.hook(c, &mut sec)?,
                "omega" => omega = true,
                "flag-1" | "sh-fallback" | "mh-fallback" => flags.push(("fallback", c)),
                "flag-2" | "sh-port" | "mh-port" => flags.push(("port", c)),
                "real_server" => real_servers.push(c),
                _ => self.unhandled(&mut sec, "virtual_server", c),
            }
        }

        // The key and the name first.
        self.claim_service(key, &protocol, n, "virtual_server ")?;
        let name = self.vs_name(key, &protocol, group);
        sec.set_first("name", q(&name));
        match key {
            Key::Addr(a, p) => {
                sec.set_after("address", q(&sockaddr(a, p)), &["name"]);
                if protocol != "tcp" {
                    sec.set_after("protocol", q(&protocol), &["address"]);
                }
            }
            Key::Fwmark(m) => {
                sec.set_after("fwmark", m.to_string(), &["name"]);
                // keepalived takes a fwmark service's family from ip_family, else from its
                // real servers.
                let v6 = ipv6_family.unwrap_or_else(|| {
                    real_servers
                        .first()
                        .and_then(|r| r.args().first()?.parse::<IpAddr>().ok())
                        .is_some_and(|a| a.is_ipv6())
                });
                if v6 {
                    sec.set_after("family", q("ipv6"), &["fwmark"]);
                }
                if protocol != "tcp" {
                    self.warn(
                        &mut sec,
                        n,
                        "protocol",
                        format!(
                            "{} dropped: a fwmark service takes whatever the firewall marked",
                            protocol.to_ascii_uppercase()
                        ),
                    );
                }
            }
        }
        let sched = scheduler.unwrap_or_else(|| "wlc".into());
        if sched != "wlc" {
            sec.set("scheduler", q(&sched));
        }
        let mut fl: Vec<String> = Vec::new();
        for (f, c) in flags {
            if sched == "sh" || sched == "mh" {
                if !fl.contains(&q(f)) {
                    fl.push(q(f));
                }
            } else {
                self.warn(
                    &mut sec,
                    c,
                    c.keyword(),
                    format!("dropped: scheduler flags apply to sh and mh only, not {sched}"),
                );
            }
        }
        if !fl.is_empty() {
            sec.set("scheduler_flags", array(&fl));
        }
        if forwarding != "nat" {
            sec.set("forwarding", q(&forwarding));
        }
        if forwarding == "tunnel" {
            for (k, v) in vs_tunnel {
                sec.set(&k, v);
            }
        }
        if let Some(c) = ops {
            // The kernel applies it to UDP only; a fwmark service may carry UDP.
            if matches!(key, Key::Fwmark(_)) || protocol == "udp" {
                sec.set("one_packet", "true".into());
            } else {
                self.warn(
                    &mut sec,
                    c,
                    "ops",
                    format!(
                        "dropped: one-packet scheduling applies to UDP only, not {}",
                        protocol.to_ascii_uppercase()
                    ),
                );
            }
        }
        let v6 = match key {
            Key::Addr(a, _) => a.is_ipv6(),
            Key::Fwmark(_) => sec.get("family").is_some(),
        };
        if let Some(p) = persistence {
            let secs = p.div_ceil(1_000_000).max(1);
            sec.set("persistence", format!("\"{secs}s\""));
            if let Some((len, _)) = granularity {
                let max = if v6 { 128 } else { 32 };
                if len < max {
                    sec.set("persistence_prefix", len.min(max).to_string());
                }
            }
        } else if let Some((_, _)) = granularity {
            self.warn(
                &mut sec,
                n,
                "persistence_granularity",
                "dropped: it needs persistence_timeout",
            );
        }

        let (svc_port, vs_ip) = match key {
            Key::Addr(a, p) => (Some(p), Some(a)),
            Key::Fwmark(_) => (None, None),
        };
        let mut all_rs = Vec::new();
        let mut endpoints = std::collections::HashSet::new();
        for r in real_servers {
            let mut rs = self.real_server(r, &defaults, svc_port, &forwarding, v6, vs_ip)?;
            if !rs.dropped {
                // The endpoint IPVS sees: a bare address takes the service's port.
                let addr = rs.fields[0].1.trim_matches('"').to_string();
                let endpoint = match (addr.parse::<IpAddr>(), svc_port) {
                    (Ok(a), Some(p)) => sockaddr(a, p),
                    _ => addr,
                };
                if !endpoints.insert(endpoint.clone()) {
                    self.warn(
                        &mut rs.comments,
                        r,
                        "real_server",
                        format!("{endpoint} dropped: the virtual server has it already"),
                    );
                    rs.dropped = true;
                }
            }
            all_rs.push(rs);
        }
        let rss: Vec<&Rs> = all_rs.iter().filter(|r| !r.dropped).collect();

        self.quorum(&mut sec, n, quorum, hysteresis, &rss);
        if let Some((a, p, c)) = sorry {
            let port_ok = forwarding == "nat" || svc_port.is_none() || p == svc_port;
            let text = match (p, port_ok) {
                (Some(p), true) => sockaddr(a, p),
                (Some(p), false) => {
                    self.warn(&mut sec, &c, "sorry_server", format!("port {p} dropped: {forwarding} forwarding cannot change ports, the service's is used"));
                    a.to_string()
                }
                (None, _) => a.to_string(),
            };
            if svc_port.is_none() && p.is_none() {
                self.warn(
                    &mut sec,
                    &c,
                    "sorry_server",
                    "dropped: a fwmark service's sorry server needs a port in vigil",
                );
            } else if a.is_ipv6() != v6 && forwarding != "tunnel" {
                self.warn(
                    &mut sec,
                    &c,
                    "sorry_server",
                    format!("{a} dropped: only tunnel forwarding mixes address families"),
                );
            } else if Some(a) == vs_ip {
                self.warn(&mut sec, &c, "sorry_server", format!("{a} dropped: it is the service's own address (the director would forward to itself)"));
            } else {
                sec.set("sorry_server", q(&text));
            }
        }

        // The service's own setting; a real server that differs says so itself.
        if inhibit == Some(true) {
            sec.set("inhibit_on_failure", "true".into());
        }
        for (key, argv) in [("quorum_up", &quorum_up), ("quorum_down", &quorum_down)] {
            if let Some(argv) = argv {
                let items: Vec<String> = argv.iter().map(|a| q(a)).collect();
                sec.set(key, array(&items));
            }
        }
        if omega {
            sec.set("omega", "true".into());
        }

        // One set of checks for all when every real server has the same ones.
        let shared = match rss.first().map(|r| r.checks.clone()) {
            Some(c) if !c.is_empty() && rss.iter().all(|r| r.checks == c) => Some(c),
            _ => None,
        };
        if let Some(c) = &shared {
            sec.set("check", checks_text(c));
        }
        if !all_rs.is_empty() {
            let mut lines = vec!["real_server = [".to_string()];
            for mut r in all_rs {
                lines.extend(r.comments.lines.iter().map(|l| format!("  {l}")));
                if r.dropped {
                    continue;
                }
                if let Some(own) = r.inhibit
                    && own != inhibit.unwrap_or(false)
                {
                    r.fields
                        .push(("inhibit_on_failure".into(), own.to_string()));
                }
                if shared.is_none() && !r.checks.is_empty() {
                    let text = checks_text(&r.checks);
                    r.fields.push(("check".into(), text));
                }
                lines.push(format!("  {},", inline(&r.fields)));
            }
            lines.push("]".to_string());
            sec.lines.push(lines.join("\n"));
        }
        let mut full = Section::new("[[virtual_server]]");
        full.absorb(sec);
        Ok(full)
    }

    fn vs_name(&mut self, key: Key, protocol: &str, group: Option<&str>) -> String {
        let base = match key {
            Key::Addr(a, p) => {
                let ip = a.to_string().replace(':', "_");
                let mut s = format!("{ip}-{p}");
                if protocol != "tcp" {
                    s.push('-');
                    s.push_str(protocol);
                }
                s
            }
            Key::Fwmark(m) => format!("fwmark-{m}"),
        };
        let base = match group {
            Some(g) => format!("{g}-{base}"),
            None => base,
        };
        super::unique_name(&mut self.vs_names, sanitize_name(&base))
    }

    /// keepalived's quorum is a sum of weights: written with `quorum_by = "weight"`, as it
    /// is, within what vigil accepts.
    fn quorum(&mut self, sec: &mut Section, n: &Node, quorum: i64, hysteresis: i64, rss: &[&Rs]) {
        if quorum <= 1 && hysteresis == 0 {
            // keepalived's default (any live weight) is vigil's default count of 1.
            if quorum == 0 {
                sec.set("quorum", "0".into());
            }
            return;
        }
        sec.set("quorum_by", q("weight"));
        let total: i64 = rss.iter().map(|r| r.weight).sum();
        let mut quorum = quorum;
        if !rss.is_empty() && quorum > total {
            self.warn(sec, n, "quorum", format!("{quorum} written as {total}, the sum of the real servers' weights: keepalived's could never be met"));
            quorum = total;
        }
        let mut hysteresis = hysteresis;
        if hysteresis > 0 && hysteresis >= quorum {
            hysteresis = (quorum - 1).max(0);
            self.warn(
                sec,
                n,
                "hysteresis",
                format!("written as {hysteresis}: vigil's must be smaller than the quorum"),
            );
        }
        sec.set("quorum", quorum.to_string());
        if hysteresis != 0 {
            sec.set("hysteresis", hysteresis.to_string());
        }
    }

    /// `quorum_up`, `notify_down`...: keepalived's script line as an argv; its user and
    /// group are dropped (vigil runs hooks as its own user, without capabilities).
    fn hook(&mut self, c: &Node, sec: &mut Section) -> Result<Hook, ReadError> {
        let Some(argv) = self.program(c, sec)? else {
            self.warn(sec, c, c.keyword(), "dropped: no program");
            return Ok(None);
        };
        if c.args().len() > 1 {
            self.warn(
                sec,
                c,
                c.keyword(),
                "user dropped: vigil runs hooks as its own user, without its capabilities",
            );
        }
        Ok(Some(argv))
    }

    fn real_server(
        &mut self,
        n: &Node,
        vs_defaults: &CheckDefaults,
        svc_port: Option<u16>,
        vs_forwarding: &str,
        vs_v6: bool,
        vs_ip: Option<IpAddr>,
    ) -> Result<Rs, ReadError> {
        let mut comments = Section::new("");
        let a = ip(n, arg(n, 0)?)?;
        let p = opt_port(n, n.args().get(1))?;
        let mut defaults = vs_defaults.clone();
        let mut weight = 1i64;
        let mut forwarding: Option<String> = None;
        let mut upper = None;
        let mut lower = None;
        let mut inhibit = None;
        let mut notify: Vec<(&str, Vec<String>)> = Vec::new();
        let mut checkers = Vec::new();
        let mut rs_tunnel = Vec::new();
        for c in n.children() {
            let kw = c.keyword();
            if defaults.read(c)? {
                continue;
            }
            match kw {
                "weight" => weight = int_in(c, 0, 0, 65_535)?,
                "lvs_method" | "lb_kind" => {
                    forwarding = Some(method(c)?);
                    rs_tunnel = self.tunnel_options(&mut comments, c);
                }
                "uthreshold" => upper = Some(int_in(c, 0, 0, u32::MAX.into())?),
                "lthreshold" => lower = Some(int_in(c, 0, 0, u32::MAX.into())?),
                "inhibit_on_failure" => inhibit = Some(boolean(c)?),
                "notify_up" | "notify_down" => {
                    // Given twice, the last one counts (as keepalived).
                    let key = if kw == "notify_up" {
                        "notify_up"
                    } else {
                        "notify_down"
                    };
                    notify.retain(|(k, _)| *k != key);
                    if let Some(argv) = self.hook(c, &mut comments)? {
                        notify.push((key, argv));
                    }
                }
                k if CHECKERS.contains(&k) => checkers.push(c),
                _ => self.unhandled(&mut comments, "real_server", c),
            }
        }
        let fwd = forwarding
            .clone()
            .unwrap_or_else(|| vs_forwarding.to_string());
        let address = match (p, svc_port) {
            (None, None) => {
                self.warn(
                    &mut comments,
                    n,
                    "real_server",
                    format!("{a} dropped: a real server of a fwmark service needs a port in vigil"),
                );
                return Ok(Rs::dropped(comments));
            }
            (None, Some(_)) => a.to_string(),
            (Some(p), Some(sp)) if p != sp && fwd != "nat" => {
                self.warn(&mut comments, n, "real_server", format!("port {p} dropped: {fwd} forwarding cannot change ports, so IPVS uses the service's ({sp})"));
                a.to_string()
            }
            (Some(p), _) => sockaddr(a, p),
        };
        if Some(a) == vs_ip {
            self.warn(&mut comments, n, "real_server", format!("{a} dropped: it is the service's own address (the director would forward to itself)"));
            return Ok(Rs::dropped(comments));
        }
        if a.is_ipv6() != vs_v6 && fwd != "tunnel" {
            self.warn(
                &mut comments,
                n,
                "real_server",
                format!("{a} dropped: only tunnel forwarding mixes address families"),
            );
            return Ok(Rs::dropped(comments));
        }
        let mut fields = vec![("address".to_string(), q(&address))];
        if weight != 1 {
            fields.push(("weight".into(), weight.to_string()));
        }
        if let Some(f) = forwarding.filter(|f| f != vs_forwarding) {
            fields.push(("forwarding".into(), q(&f)));
        }
        if fwd == "tunnel" {
            fields.extend(rs_tunnel);
        }
        if let Some(u) = upper {
            fields.push(("upper_threshold".into(), u.to_string()));
        }
        if let Some(l) = lower {
            let l = match upper {
                Some(u) if l > u => {
                    self.warn(
                        &mut comments,
                        n,
                        "lthreshold",
                        format!("{l} written as {u}: it may not exceed uthreshold"),
                    );
                    u
                }
                _ => l,
            };
            fields.push(("lower_threshold".into(), l.to_string()));
        }
        for (key, argv) in notify {
            let items: Vec<String> = argv.iter().map(|a| q(a)).collect();
            fields.push((key.into(), array(&items)));
        }
        // Every checker, each a check of its own: all must pass, as in keepalived.
        let mut checks = Vec::new();
        for c in &checkers {
            let rs_port = p.or(svc_port);
            if let Some(check) =
                self.checker(c, a, rs_port, &defaults, &mut comments, &mut inhibit)?
            {
                checks.push(check);
            }
        }
        Ok(Rs {
            fields,
            weight,
            checks,
            inhibit,
            comments,
            dropped: false,
        })
    }

    fn checker(
        &mut self,
        c: &Node,
        rs_ip: IpAddr,
        rs_port: Option<u16>,
        rs_defaults: &CheckDefaults,
        sec: &mut Section,
        inhibit: &mut Option<bool>,
    ) -> Result<Option<Vec<(String, String)>>, ReadError> {
        let kind = c.keyword();
        if kind == "FILE_CHECK" {
            return self.file_checker(c, sec);
        }
        let mut d = rs_defaults.clone();
        let mut f: Vec<(String, String)> = Vec::new();
        let mut dynamic_weight = false;
        let vigil_kind = match kind {
            "TCP_CHECK" => "tcp",
            "SMTP_CHECK" => "smtp",
            "HTTP_GET" => "http",
            "SSL_GET" => "https",
            "DNS_CHECK" => "dns",
            "MISC_CHECK" => "exec",
            "UDP_CHECK" => "udp",
            "PING_CHECK" => "icmp",
            _ => {
                self.warn(
                    sec,
                    c,
                    kind,
                    "dropped: vigil has no BFD checks (the real server is unchecked unless it has another check)",
                );
                return Ok(None);
            }
        };
        f.push(("kind".into(), q(vigil_kind)));
        let mut address = None;
        let mut port_v = None;
        let mut bind = None;
        let mut misc_timeout = None;
        let mut default_retry = 1;
        let mut dns_type = "SOA".to_string();
        let mut dns_name = ".".to_string();
        let mut urls = Vec::new();
        let mut sni: Option<String> = None;
        let mut sni_on = false;
        let mut helo: Option<(String, &Node)> = None;
        let mut bind_port: Option<(u16, &Node)> = None;
        let mut bind_if: Option<(String, &Node)> = None;
        let mut mark: Option<(u32, &Node)> = None;
        let mut misc_cmd = None;
        let mut misc_user = None;
        let mut payload: Option<String> = None;
        let mut reply: Option<String> = None;
        for o in c.children() {
            let kw = o.keyword();
            if d.read(o)? {
                continue;
            }
            match (kind, kw) {
                (_, "connect_ip") => address = Some(ip(o, arg(o, 0)?)?),
                (_, "connect_port") => port_v = Some(port(o, arg(o, 0)?)?),
                (_, "bindto" | "bind_to") => bind = Some(ip(o, arg(o, 0)?)?),
                (_, "inhibit_on_failure") => *inhibit = Some(boolean(o)?),
                (_, "bind_port") => bind_port = Some((port(o, arg(o, 0)?)?, o)),
                (_, "bind_if") => bind_if = Some((arg(o, 0)?.to_string(), o)),
                (_, "fwmark") => mark = Some((fwmark(o, arg(o, 0)?)?, o)),
                ("HTTP_GET" | "SSL_GET", "url") => urls.push(o),
                ("SSL_GET", "sni_name") => sni = Some(arg(o, 0)?.to_string()),
                ("SSL_GET", "enable_sni") => sni_on = boolean(o)?,
                ("HTTP_GET" | "SSL_GET", "http_protocol" | "fast_recovery" | "tls_compliant") => {
                    self.warn(sec, o, kw, "dropped: vigil sends HTTP/1.1 requests with SNI (https) and reads the whole response");
                }
                ("DNS_CHECK", "type") => dns_type = arg(o, 0)?.to_ascii_uppercase(),
                ("DNS_CHECK", "name") => dns_name = arg(o, 0)?.to_string(),
                ("MISC_CHECK", "misc_path") => misc_cmd = self.program(o, sec)?,
                ("MISC_CHECK", "misc_timeout") => misc_timeout = Some(secs_us(o, 0)?),
                ("MISC_CHECK", "user") => {
                    misc_user = Some(arg(o, 0)?.to_string());
                    if o.args().len() > 1 {
                        self.warn(sec, o, kw, "group dropped: vigil runs the check with the user's own group");
                    }
                }
                ("MISC_CHECK", "misc_dynamic") => dynamic_weight = true,
                ("UDP_CHECK", "payload") => payload = Some(o.args().join(" ")),
                ("UDP_CHECK", "require_reply") => reply = Some(o.args().join(" ")),
                ("SMTP_CHECK", "helo_name") => helo = Some((arg(o, 0)?.to_string(), o)),
                ("SMTP_CHECK", "host") => self.warn(sec, o, kw, "dropped: keepalived's deprecated host block (another address to check) is not mapped, the real server itself is checked; give that address a real server of its own"),
                _ => self.unhandled(sec, "checker", o),
            }
        }
        match kind {
            "HTTP_GET" | "SSL_GET" => {
                let mut host = d.virtualhost.clone();
                // A URL's own virtualhost: vigil sends one Host header for all URLs.
                let mut url_host: Option<(String, u32)> = None;
                let mut entries: Vec<Vec<(String, String)>> = Vec::new();
                for u in &urls {
                    let mut e: Vec<(String, String)> = Vec::new();
                    let mut has_regex = false;
                    let mut no_match = None;
                    for o in u.children() {
                        match o.keyword() {
                            "path" => {
                                let p = arg(o, 0)?;
                                if !p.starts_with('/')
                                    || p.chars().any(|c| c.is_whitespace() || c.is_control())
                                {
                                    self.warn(sec, o, "path", format!("\"{p}\" dropped: not a request path (it must start with '/' and have no spaces); \"/\" is asked"));
                                } else {
                                    e.push(("path".into(), q(p)));
                                }
                            }
                            "status_code" => {
                                let codes = self.status_codes(o)?;
                                if codes != ["\"200-299\""] {
                                    e.push(("expect_status".into(), one_line(&codes)));
                                }
                            }
                            "virtualhost" => {
                                let h = arg(o, 0)?.to_string();
                                match &url_host {
                                    None => url_host = Some((h, o.loc.line)),
                                    Some((first, line)) if *first != h => {
                                        let line = *line;
                                        self.warn(sec, o, "virtualhost", format!("\"{h}\" dropped: vigil sends one Host header for all URLs; the one at line {line} is kept"));
                                    }
                                    Some(_) => {}
                                }
                            }
                            // keepalived's digest is the MD5 of the body (as genhash prints it).
                            "digest" => {
                                let dg = arg(o, 0)?;
                                if dg.len() == 32 && dg.chars().all(|c| c.is_ascii_hexdigit()) {
                                    e.push(("body_md5".into(), q(&dg.to_ascii_lowercase())));
                                } else {
                                    self.warn(
                                        sec,
                                        o,
                                        "digest",
                                        format!(
                                            "\"{dg}\" dropped: not an MD5 digest (32 hex digits)"
                                        ),
                                    );
                                }
                            }
                            "regex" => {
                                let re = arg(o, 0)?;
                                if regex::Regex::new(re).is_ok() {
                                    e.push(("body_regex".into(), q(re)));
                                    has_regex = true;
                                } else {
                                    self.warn(sec, o, "regex", "dropped: not a regular expression vigil's (Rust) syntax accepts");
                                }
                            }
                            "regex_no_match" => no_match = Some(o),
                            _ => self.unhandled(sec, "url", o),
                        }
                    }
                    if let Some(o) = no_match {
                        if !boolean(o)? {
                        } else if has_regex {
                            e.push(("regex_no_match".into(), "true".into()));
                        } else {
                            self.warn(sec, o, "regex_no_match", "dropped: the URL has no regex (vigil's regex_no_match inverts body_regex)");
                        }
                    }
                    entries.push(e);
                }
                if let Some((h, _)) = url_host {
                    host = Some(h);
                }
                match entries.len() {
                    0 => {}
                    1 => {
                        for (k, v) in entries.remove(0) {
                            if k != "path" || v != "\"/\"" {
                                f.push((k, v));
                            }
                        }
                    }
                    _ => {
                        // All must pass, as keepalived's several url blocks.
                        let items: Vec<String> = entries
                            .into_iter()
                            .map(|mut e| {
                                if !e.iter().any(|(k, _)| k == "path") {
                                    e.insert(0, ("path".into(), q("/")));
                                }
                                inline(&e)
                            })
                            .collect();
                        f.push(("url".into(), one_line(&items)));
                    }
                }
                if let Some(h) = host {
                    if h.is_empty() || h.chars().any(|c| c.is_whitespace() || c.is_control()) {
                        self.warn(sec, c, "virtualhost", format!("\"{h}\" dropped: not a Host header (no spaces); the probed address is sent"));
                    } else {
                        f.insert(1, ("host".into(), q(&h)));
                    }
                }
                if kind == "SSL_GET" {
                    // keepalived's SSL_GET does not verify the certificate, and sends SNI
                    // only with enable_sni.
                    f.push(("tls_verify".into(), "false".into()));
                    if !sni_on {
                        f.push(("tls_sni".into(), "false".into()));
                    }
                    if let Some(n) = sni {
                        f.push(("tls_server_name".into(), q(&n)));
                    }
                    f.extend(self.globals.ssl.iter().cloned());
                }
            }
            "DNS_CHECK" => {
                default_retry = 3;
                if !valid_dns_name(&dns_name) {
                    self.warn(
                        sec,
                        c,
                        "name",
                        format!("\"{dns_name}\" written as \".\": not a DNS name"),
                    );
                    dns_name = ".".into();
                }
                f.push(("query_name".into(), q(&dns_name)));
                const TYPES: &[&str] = &["A", "AAAA", "SOA", "NS", "MX", "TXT", "CNAME"];
                if TYPES.contains(&dns_type.as_str()) {
                    if dns_type != "A" {
                        f.push(("query_type".into(), q(&dns_type)));
                    }
                } else {
                    self.warn(sec, c, "type", format!("{dns_type} written as SOA: vigil asks A, AAAA, SOA, NS, MX, TXT or CNAME"));
                    f.push(("query_type".into(), q("SOA")));
                }
            }
            "MISC_CHECK" => {
                default_retry = 0;
                let Some(cmd) = misc_cmd else {
                    self.warn(sec, c, kind, "dropped: no misc_path");
                    return Ok(None);
                };
                f.push((
                    "command".into(),
                    one_line(&cmd.iter().map(|a| q(a)).collect::<Vec<_>>()),
                ));
                let user = match misc_user {
                    Some(u) => Some(u),
                    None => self.default_user(sec, c),
                };
                if let Some(u) = user.filter(|u| u != "nobody") {
                    f.push(("user".into(), q(&u)));
                }
                if dynamic_weight {
                    f.push(("dynamic_weight".into(), "true".into()));
                }
            }
            "UDP_CHECK" => {
                if let Some(hex) = payload {
                    match hex_bytes(&hex) {
                        Some(b) if !b.is_empty() => f.push(("send_hex".into(), q(&hex_pairs(&b)))),
                        Some(_) => {}
                        None => self.warn(
                            sec,
                            c,
                            "payload",
                            "dropped: not hex bytes; an empty datagram is sent",
                        ),
                    }
                }
                match reply {
                    // keepalived passes a silent server unless require_reply is given.
                    None => f.push(("require_reply".into(), "false".into())),
                    Some(hex) if hex.is_empty() => {}
                    Some(hex) => match hex_bytes(&hex) {
                        Some(b) if !b.is_empty() => {
                            let re: String = b.iter().map(|x| format!("\\x{x:02x}")).collect();
                            f.push(("expect".into(), q(&format!("(?s-u)^{re}"))));
                        }
                        _ => self.warn(
                            sec,
                            c,
                            "require_reply",
                            "pattern dropped: not hex bytes; any reply passes",
                        ),
                    },
                }
            }
            "SMTP_CHECK" => {
                if let Some((h, o)) = helo {
                    if h.is_empty()
                        || h.len() > 255
                        || h.chars().any(|c| c.is_whitespace() || c.is_control())
                    {
                        self.warn(
                            sec,
                            o,
                            "helo_name",
                            format!(
                                "\"{h}\" dropped: not a HELO name (1–255 characters, no spaces)"
                            ),
                        );
                    } else {
                        f.push(("helo_name".into(), q(&h)));
                    }
                }
                // keepalived's SMTP_CHECK connects to port 25 unless connect_port is given.
                if port_v.is_none() && rs_port != Some(25) {
                    port_v = Some(25);
                }
            }
            "PING_CHECK" if port_v.take().is_some() => {
                self.warn(sec, c, "connect_port", "dropped: a ping has no port");
            }
            _ => {}
        }

        // Timing: keepalived checks every delay_loop and, after a failure, retries `retry`
        // times delay_before_retry apart before the server is down; one success is up.
        let interval = d.delay_loop_us.unwrap_or(60_000_000);
        let iv = interval.clamp(10_000, 3_600_000_000);
        if iv != interval {
            self.warn(
                sec,
                c,
                "delay_loop",
                format!(
                    "written as {}: vigil checks every 10ms to 1h",
                    dur(iv).trim_matches('"')
                ),
            );
        }
        f.push(("interval".into(), dur(iv)));
        let timeout = if kind == "MISC_CHECK" {
            misc_timeout.unwrap_or(iv)
        } else {
            d.connect_timeout_us.unwrap_or(5_000_000)
        };
        let to = if timeout >= iv || timeout == 0 {
            let fitted = shorter_than(iv);
            if misc_timeout.is_some() || d.connect_timeout_us.is_some() || kind != "MISC_CHECK" {
                let given = if kind == "MISC_CHECK" {
                    misc_timeout.is_some()
                } else {
                    d.connect_timeout_us.is_some()
                };
                let what = if given { "" } else { "keepalived's default " };
                self.warn(
                    sec,
                    c,
                    if kind == "MISC_CHECK" {
                        "misc_timeout"
                    } else {
                        "connect_timeout"
                    },
                    format!(
                        "{what}{} written as {}: vigil's timeout must be shorter than the interval",
                        dur(timeout).trim_matches('"'),
                        dur(fitted).trim_matches('"')
                    ),
                );
            }
            fitted
        } else {
            timeout
        };
        f.push(("timeout".into(), dur(to)));
        f.push(("rise".into(), "1".into()));
        let retry = d.retry.unwrap_or(default_retry);
        let fall = (retry + 1).min(100);
        if fall != retry + 1 {
            self.warn(
                sec,
                c,
                "retry",
                format!("{retry} written as fall = 100, vigil's most"),
            );
        }
        if fall != 3 {
            f.push(("fall".into(), fall.to_string()));
        }
        if retry > 0 {
            // keepalived's defaults: the delay_loop for DNS, 3 s for HTTP(S), else 1 s.
            let rd = d.delay_before_retry_us.unwrap_or(match kind {
                "DNS_CHECK" => iv,
                "HTTP_GET" | "SSL_GET" => 3_000_000,
                _ => 1_000_000,
            });
            let fitted = rd.clamp(10_000, iv);
            if fitted != rd {
                self.warn(
                    sec,
                    c,
                    "delay_before_retry",
                    format!(
                        "{} written as {}: vigil's retry delay is from 10ms to the interval",
                        dur(rd).trim_matches('"'),
                        dur(fitted).trim_matches('"')
                    ),
                );
            }
            if fitted != iv {
                f.push(("retry_delay".into(), dur(fitted)));
            }
        }
        if let Some(w) = d.warmup_us {
            let w = w.min(3_600_000_000);
            if w != iv {
                f.push(("start_spread".into(), dur(w)));
            }
        }
        // Without alpha keepalived starts a real server up; vigil's default is down.
        if !d.alpha.unwrap_or(false) {
            f.push(("initial_state".into(), q("up")));
        }
        if let Some(a) = address {
            f.push(("address".into(), q(&a.to_string())));
        }
        if let Some(p) = port_v {
            f.push(("port".into(), p.to_string()));
        }
        if let Some(b) = bind {
            // A probe's source must be of the family of what it probes; a program opens
            // its own connections.
            if kind == "MISC_CHECK" {
                self.warn(
                    sec,
                    c,
                    "bindto",
                    format!("{b} dropped: a MISC_CHECK program opens its own connections"),
                );
            } else if b.is_ipv6() == address.unwrap_or(rs_ip).is_ipv6() {
                f.push(("bind".into(), q(&b.to_string())));
            } else {
                self.warn(
                    sec,
                    c,
                    "bindto",
                    format!("{b} dropped: not of the family of the address probed"),
                );
            }
        }
        // keepalived's bind_port, bind_if and fwmark: a program opens its own sockets, and
        // a ping has no port.
        let program = kind == "MISC_CHECK";
        if let Some((p, o)) = bind_port {
            if program || kind == "PING_CHECK" {
                let why = if program {
                    "a MISC_CHECK program opens its own connections"
                } else {
                    "a ping has no port"
                };
                self.warn(sec, o, "bind_port", format!("{p} dropped: {why}"));
            } else {
                f.push(("bind_port".into(), p.to_string()));
            }
        }
        if let Some((i, o)) = bind_if {
            if program {
                self.warn(
                    sec,
                    o,
                    "bind_if",
                    format!("{i} dropped: a MISC_CHECK program opens its own connections"),
                );
            } else {
                let name = iface_name(self, sec, o, "bind_if", &i)?;
                f.push(("bind_interface".into(), q(&name)));
            }
        }
        if let Some((m, o)) = mark {
            if program {
                self.warn(
                    sec,
                    o,
                    "fwmark",
                    format!("{m} dropped: a MISC_CHECK program opens its own connections"),
                );
            } else {
                f.push(("fwmark".into(), m.to_string()));
            }
        }
        Ok(Some(f))
    }

    /// `FILE_CHECK { track_file NAME; weight W [reverse] }` → a file check of the file
    /// the `track_file` block NAME names. Its weight is the checker's, else the block's
    /// (default 1, as keepalived's); it has none of the timing options.
    fn file_checker(
        &mut self,
        c: &Node,
        sec: &mut Section,
    ) -> Result<Option<Vec<(String, String)>>, ReadError> {
        let mut name = None;
        let mut weight: Option<(i64, bool)> = None;
        for o in c.children() {
            match o.keyword() {
                "track_file" => name = Some(arg(o, 0)?.to_string()),
                "weight" => weight = Some(file_weight(o)?),
                // vigil adds a weighted file's value to the weight whenever weight != 0.
                "dynamic" => {}
                _ => self.unhandled(sec, "checker", o),
            }
        }
        let Some(name) = name else {
            self.warn(sec, c, "FILE_CHECK", "dropped: no track_file");
            return Ok(None);
        };
        let Some(def) = self.track_file_defs.get(&name).cloned() else {
            self.warn(
                sec,
                c,
                "FILE_CHECK",
                format!("dropped: no track_file block \"{name}\""),
            );
            return Ok(None);
        };
        let mut path = None;
        let mut def_weight = (1, false);
        for o in def.children() {
            match o.keyword() {
                "file" => path = Some(arg(o, 0)?.to_string()),
                "weight" => def_weight = file_weight(o)?,
                // init_file and the rest were warned about where the block was read.
                _ => {}
            }
        }
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            self.warn(
                sec,
                c,
                "FILE_CHECK",
                format!("dropped: track_file \"{name}\" has no absolute `file`"),
            );
            return Ok(None);
        };
        // keepalived: a checker weight of 0 (or none) takes the block's.
        let (w, reverse) = match weight {
            Some((w, r)) if w != 0 => (w, r),
            _ => def_weight,
        };
        let mut f = vec![
            ("kind".to_string(), q("file")),
            ("path".to_string(), q(&path)),
        ];
        if w != 0 {
            f.push(("weight".into(), w.to_string()));
        }
        if reverse {
            f.push(("reverse".into(), "true".into()));
        }
        Ok(Some(f))
    }

    /// `status_code 200 300-399`: codes and ranges.
    fn status_codes(&mut self, n: &Node) -> Result<Vec<String>, ReadError> {
        let mut out = Vec::new();
        for a in n.args() {
            let (lo, hi) = a.split_once('-').unwrap_or((a, a));
            let parse = |s: &str| s.parse::<u16>().ok().filter(|c| (100..=599).contains(c));
            match (parse(lo), parse(hi)) {
                (Some(l), Some(h)) if l == h => out.push(l.to_string()),
                (Some(l), Some(h)) if l < h => out.push(q(&format!("{l}-{h}"))),
                _ => {
                    return Err(ReadError::new(
                        &n.loc,
                        format!(
                            "status_code \"{a}\" is not a status code (100–599) or a range LOW-HIGH"
                        ),
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err(ReadError::new(&n.loc, "`status_code` needs a value"));
        }
        Ok(out)
    }
}

/// A real server's checks: one inline table, or an array of them for several.
fn checks_text(checks: &[Vec<(String, String)>]) -> String {
    match checks {
        [one] => inline(one),
        many => format!(
            "[{}]",
            many.iter()
                .map(|c| inline(c))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `weight W [reverse|noreverse]` of a track_file or FILE_CHECK.
fn file_weight(n: &Node) -> Result<(i64, bool), ReadError> {
    let w = int_in(n, 0, -2_147_483_647, 2_147_483_647)?;
    Ok((w, n.args().get(1).is_some_and(|a| a == "reverse")))
}

fn port(n: &Node, s: &str) -> Result<u16, ReadError> {
    s.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
        ReadError::new(
            &n.loc,
            format!("`{}`: \"{s}\" is not a port (1–65535)", n.keyword()),
        )
    })
}

/// A real or sorry server's port: none, or 0, means the service's (keepalived's alloc
/// of servers treats them the same).
fn opt_port(n: &Node, s: Option<&String>) -> Result<Option<u16>, ReadError> {
    match s.map(String::as_str) {
        None | Some("0") => Ok(None),
        Some(p) => port(n, p).map(Some),
    }
}

fn fwmark(n: &Node, s: &str) -> Result<u32, ReadError> {
    s.parse::<u32>().ok().filter(|m| *m > 0).ok_or_else(|| {
        ReadError::new(
            &n.loc,
            format!("fwmark \"{s}\" is not a number from 1 to 4294967295"),
        )
    })
}

/// `NAT`, `DR`, or `TUN [type ...]` (the tunnel options are not mapped: see the callers).
fn method(n: &Node) -> Result<String, ReadError> {
    Ok(match arg(n, 0)?.to_ascii_uppercase().as_str() {
        "NAT" => "nat",
        "DR" => "dr",
        "TUN" => "tunnel",
        other => {
            return Err(ReadError::new(
                &n.loc,
                format!(
                    "`{}` \"{other}\": keepalived knows NAT, DR and TUN",
                    n.keyword()
                ),
            ));
        }
    }
    .to_string())
}

fn netmask_len(n: &Node, s: &str) -> Result<u8, ReadError> {
    let bad = || {
        ReadError::new(
            &n.loc,
            format!("persistence_granularity \"{s}\" is not a netmask or prefix length"),
        )
    };
    let a: std::net::Ipv4Addr = s.parse().map_err(|_| bad())?;
    let m = u32::from(a);
    if m.leading_ones() + m.trailing_zeros() != 32 {
        return Err(bad());
    }
    Ok(m.leading_ones() as u8)
}

fn sockaddr(a: IpAddr, p: u16) -> String {
    match a {
        IpAddr::V4(_) => format!("{a}:{p}"),
        IpAddr::V6(_) => format!("[{a}]:{p}"),
    }
}

/// A `virtual_server_group` line: `IP PORT`, `IP-LAST PORT` (a range in the last byte of
/// IPv4, last group of IPv6) or `fwmark N`.
/// Group members that expand to more virtual servers than this are refused.
const MAX_GROUP_EXPANSION: u128 = 1024;

/// A `virtual_server_group` line: `IP [PORT]`, a range `IP-LAST [PORT]` (the last byte of
/// IPv4, last group of IPv6), `IP-IP [PORT]`, `IP/LEN [PORT]`, or `fwmark N [inet|inet6]`.
/// `Err(ip)` for an address without a port (a service on every port).
fn group_member(m: &Node) -> Result<Vec<Result<Key, IpAddr>>, ReadError> {
    let first = m.keyword();
    if first == "fwmark" {
        return Ok(vec![Ok(Key::Fwmark(fwmark(m, arg(m, 0)?)?))]);
    }
    let p = match m.args().first() {
        Some(p) => Some(port(m, p)?),
        None => None,
    };
    let bad = || {
        ReadError::new(
            &m.loc,
            format!("virtual_server_group: \"{first}\" is not an address, range or prefix"),
        )
    };
    let (lo, hi): (u128, u128);
    let v6;
    if let Some((a, len)) = first.split_once('/') {
        let a = ip(m, a)?;
        v6 = a.is_ipv6();
        let bits = if v6 { 128 } else { 32 };
        let len: u32 = len.parse().ok().filter(|l| *l <= bits).ok_or_else(bad)?;
        let base = to_u128(a);
        let host = if len == bits {
            0
        } else {
            (1u128 << (bits - len)) - 1
        };
        (lo, hi) = (base & !host, base | host);
    } else if let Some((a, b)) = first.split_once('-') {
        let start = ip(m, a)?;
        v6 = start.is_ipv6();
        let end = match b.parse::<IpAddr>() {
            Ok(e) if e.is_ipv6() == v6 => to_u128(e),
            Ok(_) => return Err(bad()),
            Err(_) => {
                // Only the last byte (IPv4) or group (IPv6) is given.
                let s = to_u128(start);
                if v6 {
                    (s & !0xffff) | u128::from(u16::from_str_radix(b, 16).map_err(|_| bad())?)
                } else {
                    (s & !0xff) | u128::from(b.parse::<u8>().map_err(|_| bad())?)
                }
            }
        };
        (lo, hi) = (to_u128(start), end);
    } else {
        let a = ip(m, first)?;
        v6 = a.is_ipv6();
        (lo, hi) = (to_u128(a), to_u128(a));
    }
    if hi < lo || hi - lo >= MAX_GROUP_EXPANSION {
        return Err(ReadError::new(
            &m.loc,
            format!(
                "virtual_server_group: \"{first}\" is empty or larger than {MAX_GROUP_EXPANSION} addresses"
            ),
        ));
    }
    Ok((lo..=hi)
        .map(|x| {
            let a = if v6 {
                IpAddr::V6(std::net::Ipv6Addr::from(x))
            } else {
                IpAddr::V4(std::net::Ipv4Addr::from(u32::try_from(x).unwrap_or(0)))
            };
            match p {
                Some(p) => Ok(Key::Addr(a, p)),
                None => Err(a),
            }
        })
        .collect())
}

/// The most services one vigil virtual server may expand to (vigil-config's limit).
const MAX_GROUP_SERVICES: usize = 1024;

/// `addresses` entries for a group's addresses, in order: runs of consecutive IPv4
/// addresses (last byte) or IPv6 addresses (last group) with one port as vigil's ranges
/// (`192.0.2.20-29:80`, `[2001:db8::10-1f]:80`), the others one by one.
fn address_ranges(addrs: &[(IpAddr, u16)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < addrs.len() {
        let (start, port) = addrs[i];
        let mut j = i;
        // Extend while the next is the same port and the next value in the last part.
        while let Some(&(next, p)) = addrs.get(j + 1) {
            let (a, b) = (to_u128(addrs[j].0), to_u128(next));
            let mask = if start.is_ipv6() { 0xffff } else { 0xff };
            if p != port || next.is_ipv6() != start.is_ipv6() || b != a + 1 || b & mask == 0 {
                break;
            }
            j += 1;
        }
        if j == i {
            out.push(sockaddr(start, port));
        } else {
            let last = addrs[j].0;
            match (start, last) {
                (IpAddr::V4(_), IpAddr::V4(l)) => {
                    out.push(format!("{start}-{}:{port}", l.octets()[3]));
                }
                (_, IpAddr::V6(l)) => out.push(format!("[{start}-{:x}]:{port}", l.segments()[7])),
                _ => out.push(sockaddr(start, port)),
            }
        }
        i = j + 1;
    }
    out
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// As vigil checks `query_name`: labels of letters, digits, `-`, `_`; the root is `.`.
fn valid_dns_name(n: &str) -> bool {
    let n = n.strip_suffix('.').unwrap_or(n);
    n.len() <= 253
        && (n.is_empty()
            || n.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            }))
}

/// Hex bytes in keepalived's free format: hex digit pairs within each word, a last odd
/// digit is a byte of its own ("Ab12f 3" is AB 12 0F 03); `None` when not hex.
fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    for word in hex.split_whitespace() {
        let digits: Vec<u32> = word
            .chars()
            .map(|c| c.to_digit(16))
            .collect::<Option<_>>()?;
        for pair in digits.chunks(2) {
            let b = match pair {
                [hi, lo] => hi * 16 + lo,
                [one] => *one,
                _ => return None,
            };
            bytes.push(u8::try_from(b).ok()?);
        }
    }
    Some(bytes)
}

/// Bytes as vigil's `send_hex`: pairs of lower-case hex digits.
fn hex_pairs(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_read_as_keepalived_reads_it() {
        assert_eq!(hex_bytes("70696e67").as_deref(), Some(&b"ping"[..]));
        assert_eq!(
            hex_bytes("7 0696e67").as_deref(),
            Some(&[0x07, 0x06, 0x96, 0xe6, 0x07][..])
        );
        assert_eq!(hex_bytes("41 4 42").as_deref(), Some(&b"A\x04B"[..]));
        assert_eq!(
            hex_pairs(&hex_bytes("Ab12f 3").unwrap_or_default()),
            "ab120f03"
        );
        assert_eq!(hex_bytes("zz"), None);
        assert_eq!(hex_bytes("4x"), None);
    }

    #[test]
    fn group_addresses_are_written_as_vigil_ranges() {
        let a = |s: &str, p| (s.parse::<IpAddr>().unwrap(), p);
        let addrs = [
            a("192.0.2.1", 80),
            a("192.0.2.2", 80),
            a("192.0.2.3", 80),
            a("192.0.2.4", 8080),
            a("192.0.2.255", 80),
            a("192.0.3.0", 80),
            a("2001:db8::fe", 53),
            a("2001:db8::ff", 53),
            a("2001:db8::100", 53),
            a("2001:db8::1", 53),
        ];
        assert_eq!(
            address_ranges(&addrs),
            [
                "192.0.2.1-3:80",
                "192.0.2.4:8080",
                // A run stops where the last byte wraps.
                "192.0.2.255:80",
                "192.0.3.0:80",
                "[2001:db8::fe-100]:53",
                "[2001:db8::1]:53",
            ]
        );
    }

    #[test]
    fn netmasks() {
        let n = Node {
            loc: crate::Loc {
                file: "f".into(),
                line: 1,
            },
            words: vec!["persistence_granularity".into()],
            block: None,
        };
        assert_eq!(netmask_len(&n, "255.255.255.0").ok(), Some(24));
        assert_eq!(netmask_len(&n, "0.0.0.0").ok(), Some(0));
        assert!(netmask_len(&n, "255.0.255.0").is_err());
    }
}
