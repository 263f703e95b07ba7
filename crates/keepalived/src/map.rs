//! From the keyword tree to cluster-file text: block by block, keyword by keyword. What
//! vigil has is written; what it lacks is dropped or approximated with a [`Warning`] and
//! the same words as a TOML comment where it would have gone. vigil's defaults are left
//! out, except where they differ from keepalived's (then the keepalived value is written).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::reader::{Loc, Node, ReadError};
use crate::{Options, Warning};

mod keywords;
mod lvs;
mod text;
mod vrrp;
mod vrrp_routes;

pub use keywords::{KeywordStatus, keyword_status, manpage_keywords};
use text::{Section, q};

/// The cluster file's text and the warnings, in input order.
pub struct Mapped {
    pub toml: String,
    pub warnings: Vec<Warning>,
}

/// A `vrrp_script`, kept until an instance tracks it.
#[derive(Debug, Clone)]
struct Script {
    command: Vec<String>,
    interval_us: u64,
    timeout_us: Option<u64>,
    weight: i32,
    reverse: bool,
    user: Option<String>,
    rise: i64,
    fall: i64,
    init_fail: bool,
}

/// A `track_file` / `vrrp_track_file` or `vrrp_track_process` block, kept until an
/// instance tracks it: its fields in the cluster file, and its default weight.
#[derive(Debug, Clone)]
struct TrackDef {
    fields: Vec<(String, String)>,
    weight: i32,
    reverse: bool,
}

/// What a `vrrp_sync_group` gives its members.
#[derive(Debug, Clone, Default)]
struct SyncGroup {
    name: String,
    /// Tracking lines of the group, applied to every member.
    tracks: Vec<Node>,
    /// `sync_group_tracking_weight`: the members' weighted tracks count.
    tracking_weight: bool,
}

/// Settings of `global_defs` that are defaults for the blocks after it.
#[derive(Debug, Default)]
struct Globals {
    router_id: Option<String>,
    script_user: Option<String>,
    vrrp_version: Option<u8>,
    garp_repeat: Option<u32>,
    garp_refresh_us: Option<u64>,
    garp_interval_us: Option<u64>,
    gna_interval_us: Option<u64>,
    lvs_sync: Option<Node>,
    lvs_timeouts: Option<Node>,
    /// The top-level `SSL` block as https check fields (`tls_ca_file`, client certificate).
    ssl: Vec<(String, String)>,
}

pub(crate) struct Mapper<'a> {
    options: &'a Options,
    warnings: Vec<Warning>,
    /// While expanding a virtual server group, the second and later copies say nothing.
    quiet: bool,
    globals: Globals,
    scripts: HashMap<String, Script>,
    track_files: HashMap<String, TrackDef>,
    /// `track_file` blocks by name, for the FILE_CHECKs that name them.
    track_file_defs: HashMap<String, Node>,
    track_processes: HashMap<String, TrackDef>,
    /// Instance name (keepalived's) → its sync group.
    sync_groups: HashMap<String, SyncGroup>,
    /// `[sync_group.NAME]` tables (a group's notify programs), by the block's `FILE:LINE`.
    sync_group_sections: HashMap<String, Section>,
    /// keepalived instance names → vigil names (sanitised).
    instance_names: HashMap<String, String>,
    /// The vigil names given to instances so far.
    used_instance_names: HashSet<String>,
    vs_groups: HashMap<String, Vec<Node>>,
    vs_names: HashSet<String>,
    /// (interface, IPv6?, VRID) of every instance, so a second instance for the other
    /// family of a split one does not take a VRID another instance uses.
    vrids: HashSet<(String, bool, String)>,
    /// Every VIP written so far: vigil lets one instance carry an address.
    vips: HashSet<IpAddr>,
    /// (interface, IPv6?, VRID) → instance, of the instances written so far.
    emitted_vrids: HashMap<(String, bool, i64), String>,
    /// Virtual MAC interface names written so far (each must be one instance's).
    vmac_names: HashSet<String>,
    /// Every virtual service written so far (key text → where).
    services: HashMap<String, Loc>,
}

/// Maps the tree read from a keepalived.conf to a cluster file.
pub fn map(nodes: &[Node], options: &Options) -> Result<Mapped, ReadError> {
    let mut m = Mapper {
        options,
        warnings: Vec::new(),
        quiet: false,
        globals: Globals::default(),
        scripts: HashMap::new(),
        track_files: HashMap::new(),
        track_file_defs: HashMap::new(),
        track_processes: HashMap::new(),
        sync_groups: HashMap::new(),
        sync_group_sections: HashMap::new(),
        instance_names: HashMap::new(),
        used_instance_names: HashSet::new(),
        vs_groups: HashMap::new(),
        vs_names: HashSet::new(),
        vrids: HashSet::new(),
        vips: HashSet::new(),
        emitted_vrids: HashMap::new(),
        vmac_names: HashSet::new(),
        services: HashMap::new(),
    };
    // Definitions first: keepalived lets a block refer to one defined further down.
    let mut defs_comments: HashMap<usize, Vec<String>> = HashMap::new();
    let mut instance_locs: HashMap<String, Loc> = HashMap::new();
    let mut vrid_locs: HashMap<(String, bool, String), (String, Loc)> = HashMap::new();
    let mut director = Section::new("[director]");
    for (i, n) in nodes.iter().enumerate() {
        let mut sec = Section::new("");
        match n.keyword() {
            "global_defs" => m.global_defs(n, &mut director)?,
            "vrrp_script" => m.vrrp_script(n, &mut sec)?,
            "vrrp_track_file" | "track_file" => {
                let name = n.args().first().cloned().unwrap_or_default();
                m.track_file_defs.insert(name, n.clone());
                m.track_file(n, &mut sec)?
            }
            "vrrp_track_process" => m.track_process(n, &mut sec)?,
            "vrrp_sync_group" => m.sync_group(n, &mut sec)?,
            "SSL" => m.ssl(n, &mut sec)?,
            "virtual_server_group" => {
                let name = n.args().first().cloned().unwrap_or_default();
                m.vs_groups.insert(name, n.children().to_vec());
            }
            "vrrp_instance" => m.declare_instance(n, &mut instance_locs, &mut vrid_locs)?,
            _ => {}
        }
        if !sec.is_empty() {
            defs_comments.insert(i, sec.lines);
        }
    }

    let mut out: Vec<String> = vec![
        "# Cluster file imported from keepalived.conf by `vigild import-keepalived`.".into(),
        "# Check the warnings (the `# ... warning:` comments) before using it.".into(),
        String::new(),
    ];
    let name = match &m.globals.router_id {
        Some(id) => id.clone(),
        None => {
            let host = m
                .options
                .hostname
                .clone()
                .unwrap_or_else(|| "director".to_string());
            let loc = nodes.first().map_or(
                Loc {
                    file: "keepalived.conf".into(),
                    line: 1,
                },
                |n| n.loc.clone(),
            );
            let w = Warning::new(
                &loc,
                "router_id",
                format!(
                    "defaulted: no router_id, so director.name is \"{}\" (keepalived uses the host name)",
                    sanitize_name(&host)
                ),
            );
            director.comment(&w.to_string());
            m.warnings.push(w);
            host
        }
    };
    let clean = sanitize_name(&name);
    if clean != name
        && let Some(loc) = router_id_loc(nodes)
    {
        m.warn_at(
            &mut director,
            &loc,
            "router_id",
            format!(
                "\"{name}\" written as \"{clean}\" (vigil names are letters, digits, '-', '_', '.')"
            ),
        );
    }
    director.set_first("name", q(&clean));
    out.extend(director.render());

    for (i, n) in nodes.iter().enumerate() {
        if let Some(lines) = defs_comments.remove(&i) {
            out.push(String::new());
            out.extend(lines);
        }
        match n.keyword() {
            "global_defs"
            | "vrrp_script"
            | "vrrp_track_file"
            | "track_file"
            | "vrrp_track_process"
            | "SSL"
            | "virtual_server_group" => {}
            "vrrp_sync_group" => {
                if let Some(sec) = m
                    .sync_group_sections
                    .remove(&format!("{}:{}", n.loc.file, n.loc.line))
                {
                    out.push(String::new());
                    out.extend(sec.render());
                }
            }
            "vrrp_instance" => {
                for sec in m.vrrp_instance(n)? {
                    out.push(String::new());
                    out.extend(sec.render());
                }
            }
            "virtual_server" => {
                for sec in m.virtual_server(n)? {
                    out.push(String::new());
                    out.extend(sec.render());
                }
            }
            kw => {
                let mut sec = Section::new("");
                m.unhandled(&mut sec, "top", n);
                if !sec.is_empty() {
                    let _ = kw;
                    out.push(String::new());
                    out.extend(sec.lines);
                }
            }
        }
    }
    // Last: it names an instance, which may have been dropped on the way.
    if let Some(sync) = m.globals.lvs_sync.clone() {
        let mut sec = Section::new("[ipvs_sync]");
        m.lvs_sync_daemon(&sync, &mut sec);
        out.push(String::new());
        if sec.has_keys() {
            out.extend(sec.render());
        } else {
            out.extend(sec.lines);
        }
    }
    if let Some(t) = m.globals.lvs_timeouts.clone() {
        let mut sec = Section::new("[ipvs_timeouts]");
        m.lvs_timeouts(&t, &mut sec);
        out.push(String::new());
        if sec.has_keys() {
            out.extend(sec.render());
        } else {
            out.extend(sec.lines);
        }
    }
    let mut text = out.join("\n");
    text.push('\n');
    let order = file_order(nodes);
    let mut warnings = m.warnings;
    // Input order: files in the order they were first read, then lines.
    warnings.sort_by_key(|w| {
        (
            order
                .iter()
                .position(|f| **f == *w.loc.file)
                .unwrap_or(usize::MAX),
            w.loc.line,
        )
    });
    Ok(Mapped {
        toml: text,
        warnings,
    })
}

/// An instance's (interface, IPv6?, VRID), from its first address.
fn vrid_key(n: &Node) -> Option<(String, bool, String)> {
    let child = |k: &str| n.children().iter().find(|c| c.keyword() == k);
    let iface = child("interface")?.args().first()?.clone();
    let vrid = child("virtual_router_id")?.args().first()?.clone();
    // As the mapping decides: the first usable address on the instance's interface.
    let addr = n
        .children()
        .iter()
        .filter(|c| {
            matches!(
                c.keyword(),
                "virtual_ipaddress" | "virtual_ipaddress_excluded"
            )
        })
        .flat_map(|c| c.children())
        .filter(|v| {
            let dev = v
                .args()
                .iter()
                .position(|a| a == "dev")
                .and_then(|i| v.args().get(i + 1));
            dev.is_none_or(|d| *d == iface)
        })
        .filter_map(|v| v.keyword().split('/').next()?.parse::<IpAddr>().ok())
        .find(|a| !(a.is_unspecified() || a.is_multicast() || a.is_loopback()))?;
    Some((iface, addr.is_ipv6(), vrid))
}

fn router_id_loc(nodes: &[Node]) -> Option<Loc> {
    nodes
        .iter()
        .filter(|n| n.keyword() == "global_defs")
        .flat_map(|n| n.children())
        .rfind(|c| c.keyword() == "router_id")
        .map(|c| c.loc.clone())
}

fn file_order(nodes: &[Node]) -> Vec<std::rc::Rc<str>> {
    fn walk(nodes: &[Node], out: &mut Vec<std::rc::Rc<str>>) {
        for n in nodes {
            if !out.contains(&n.loc.file) {
                out.push(n.loc.file.clone());
            }
            walk(n.children(), out);
        }
    }
    let mut out = Vec::new();
    walk(nodes, &mut out);
    out
}

impl Mapper<'_> {
    /// Notes an instance's vigil name and VRID before any is mapped: keepalived refuses
    /// two instances of one name, or of one VRID on an interface for one family.
    fn declare_instance(
        &mut self,
        n: &Node,
        names: &mut HashMap<String, Loc>,
        vrids: &mut HashMap<(String, bool, String), (String, Loc)>,
    ) -> Result<(), ReadError> {
        let name = arg(n, 0)?.to_string();
        if let Some(first) = names.get(&name) {
            return Err(ReadError::new(
                &n.loc,
                format!("vrrp_instance {name} is defined twice (first at {first})"),
            ));
        }
        names.insert(name.clone(), n.loc.clone());
        let vigil = unique_name(&mut self.used_instance_names, sanitize_name(&name));
        self.instance_names.insert(name.clone(), vigil);
        if let Some(key) = vrid_key(n) {
            if let Some((other, loc)) = vrids.get(&key) {
                let family = if key.1 { "IPv6" } else { "IPv4" };
                return Err(ReadError::new(
                    &n.loc,
                    format!(
                        "vrrp_instance {name}: virtual_router_id {} on {} ({family}) is used by vrrp_instance {other} too ({loc})",
                        key.2, key.0
                    ),
                ));
            }
            vrids.insert(key.clone(), (name, n.loc.clone()));
            self.vrids.insert(key);
        }
        Ok(())
    }

    /// Records a warning and writes it as a comment into `sec`.
    fn warn(&mut self, sec: &mut Section, n: &Node, keyword: &str, message: impl Into<String>) {
        self.warn_at(sec, &n.loc, keyword, message);
    }

    fn warn_at(&mut self, sec: &mut Section, loc: &Loc, keyword: &str, message: impl Into<String>) {
        if self.quiet {
            return;
        }
        let w = Warning::new(loc, keyword, message);
        sec.comment(&w.to_string());
        self.warnings.push(w);
    }

    /// Like [`Self::warn_at`], with the comment right before `key`'s line.
    fn warn_key(
        &mut self,
        sec: &mut Section,
        loc: &Loc,
        keyword: &str,
        key: &str,
        message: impl Into<String>,
    ) {
        if self.quiet {
            return;
        }
        let w = Warning::new(loc, keyword, message);
        sec.comment_before(key, &w.to_string());
        self.warnings.push(w);
    }

    /// A keyword the block's mapping does not take: dropped, with the reason the keyword
    /// table gives (or "unknown").
    fn unhandled(&mut self, sec: &mut Section, context: &str, n: &Node) {
        let kw = n.keyword();
        let msg = match keyword_status(context, kw) {
            KeywordStatus::Dropped(why) => format!("dropped: {why}"),
            KeywordStatus::Mapped => format!("dropped: not mapped in `{context}`"),
            KeywordStatus::Unknown => {
                format!("dropped: not a keyword of `{context}` that the importer knows")
            }
        };
        self.warn(sec, n, kw, msg);
    }

    fn global_defs(&mut self, n: &Node, sec: &mut Section) -> Result<(), ReadError> {
        for c in n.children() {
            let kw = c.keyword();
            match kw {
                "router_id" => self.globals.router_id = Some(arg(c, 0)?.to_string()),
                "script_user" => {
                    self.globals.script_user = Some(arg(c, 0)?.to_string());
                    if c.args().len() > 1 {
                        self.warn(
                            sec,
                            c,
                            kw,
                            "group dropped: vigil runs scripts with the user's own group",
                        );
                    }
                }
                "vrrp_version" => {
                    self.globals.vrrp_version = Some(int_in(c, 0, 2, 3)? as u8);
                }
                "vrrp_garp_master_repeat" => {
                    self.globals.garp_repeat = Some(self.garp_repeat(c, sec)?);
                }
                // One gratuitous ARP / NA and no second burst: vigil sends no second
                // burst anyway.
                "vrrp_min_garp" => {
                    if boolean(c)? {
                        self.globals.garp_repeat = Some(1);
                    }
                }
                "vrrp_garp_master_refresh" => {
                    self.globals.garp_refresh_us = Some(secs_us(c, 0)?);
                }
                "vrrp_garp_interval" => {
                    self.globals.garp_interval_us = Some(self.garp_interval(c, sec)?);
                }
                "vrrp_gna_interval" => {
                    self.globals.gna_interval_us = Some(self.garp_interval(c, sec)?);
                }
                "lvs_sync_daemon" => self.globals.lvs_sync = Some(c.clone()),
                "notify_fifo" | "vrrp_notify_fifo" | "lvs_notify_fifo" => {
                    let path = arg(c, 0)?;
                    if !path.starts_with('/') {
                        self.warn(
                            sec,
                            c,
                            kw,
                            format!("dropped: \"{path}\" is not an absolute path"),
                        );
                        continue;
                    }
                    if c.args().len() > 1 {
                        self.warn(sec, c, kw, "user and group dropped: vigild creates the FIFO as its own user, mode 0600");
                    }
                    sec.set(kw, q(path));
                }
                "lvs_timeouts" => self.globals.lvs_timeouts = Some(c.clone()),
                _ => self.unhandled(sec, "global_defs", c),
            }
        }
        Ok(())
    }

    fn lvs_sync_daemon(&mut self, n: &Node, sec: &mut Section) {
        let args = n.args();
        // `IFACE [[inst] INSTANCE] [id N] ...`: the instance may be left out.
        const OPTS: &[&str] = &["id", "maxlen", "port", "ttl", "group"];
        let mut i = 1;
        if args.get(1).is_some_and(|a| a == "inst") {
            i = 2;
        }
        let inst = args.get(i).filter(|a| !OPTS.contains(&a.as_str()));
        if inst.is_some() {
            i += 1;
        }
        let (Some(iface), Some(inst)) = (args.first(), inst) else {
            self.warn(
                sec,
                n,
                "lvs_sync_daemon",
                "dropped: vigil's sync daemon follows a VRRP instance (master while it is); name one (keepalived without one runs master and backup all the time)",
            );
            return;
        };
        let Some(vigil_inst) = self.instance_names.get(inst).cloned() else {
            self.warn(
                sec,
                n,
                "lvs_sync_daemon",
                format!(
                    "dropped: there is no vrrp_instance \"{inst}\" for the sync daemon to follow"
                ),
            );
            return;
        };
        let iface = match iface_name(self, sec, n, "lvs_sync_daemon", iface) {
            Ok(i) => i,
            Err(e) => {
                self.warn(sec, n, "lvs_sync_daemon", format!("dropped: {}", e.message));
                return;
            }
        };
        sec.set("interface", q(&iface));
        sec.set("instance", q(&vigil_inst));
        while i < args.len() {
            let (opt, val) = (args[i].as_str(), args.get(i + 1));
            match (opt, val) {
                ("id", Some(v)) => match v.parse::<u8>() {
                    Ok(id) => sec.set("sync_id", id.to_string()),
                    Err(_) => self.warn(
                        sec,
                        n,
                        "lvs_sync_daemon",
                        format!("id \"{v}\" dropped: not 0–255; the instance's VRID is used"),
                    ),
                },
                ("maxlen" | "port" | "ttl" | "group", Some(v)) => {
                    // keepalived's ranges, which vigil's are.
                    let value = match opt {
                        "maxlen" => v
                            .parse::<u16>()
                            .ok()
                            .filter(|n| (1..=65_507).contains(n))
                            .map(|n| n.to_string()),
                        "port" => v
                            .parse::<u16>()
                            .ok()
                            .filter(|n| *n > 0)
                            .map(|n| n.to_string()),
                        "ttl" => v
                            .parse::<u8>()
                            .ok()
                            .filter(|n| *n > 0)
                            .map(|n| n.to_string()),
                        _ => v
                            .parse::<IpAddr>()
                            .ok()
                            .filter(IpAddr::is_multicast)
                            .map(|a| q(&a.to_string())),
                    };
                    match value {
                        Some(value) => sec.set(opt, value),
                        None => self.warn(
                            sec,
                            n,
                            "lvs_sync_daemon",
                            format!(
                                "{opt} \"{v}\" dropped: out of range; the kernel's default is used"
                            ),
                        ),
                    }
                }
                _ => self.warn(
                    sec,
                    n,
                    "lvs_sync_daemon",
                    format!("`{opt}` dropped: not understood"),
                ),
            }
            i += 2;
        }
    }

    /// `lvs_timeouts [tcp SECS] [tcpfin SECS] [udp SECS]`.
    fn lvs_timeouts(&mut self, n: &Node, sec: &mut Section) {
        let args = n.args();
        let mut i = 0;
        while i < args.len() {
            let (opt, val) = (args[i].as_str(), args.get(i + 1));
            let key = match opt {
                "tcp" => "tcp",
                "tcpfin" => "tcp_fin",
                "udp" => "udp",
                _ => {
                    let v = val.map_or("", String::as_str);
                    self.warn(
                        sec,
                        n,
                        "lvs_timeouts",
                        format!("`{opt} {v}` dropped: vigil sets the tcp, tcpfin and udp timeouts"),
                    );
                    i += 2;
                    continue;
                }
            };
            // The kernel's bound (INT_MAX / HZ at HZ=1000), which vigil checks.
            match val
                .and_then(|v| v.parse::<u32>().ok())
                .filter(|s| (1..=2_147_483).contains(s))
            {
                Some(secs) => sec.set(key, format!("\"{secs}s\"")),
                None => self.warn(
                    sec,
                    n,
                    "lvs_timeouts",
                    format!(
                        "{opt} {} dropped: not 1 to 2147483 seconds; the kernel's stays",
                        val.map_or("", String::as_str)
                    ),
                ),
            }
            i += 2;
        }
    }

    fn vrrp_script(&mut self, n: &Node, sec: &mut Section) -> Result<(), ReadError> {
        let name = arg(n, 0)?.to_string();
        let mut s = Script {
            command: Vec::new(),
            interval_us: 1_000_000,
            timeout_us: None,
            weight: 0,
            reverse: false,
            user: None,
            rise: 1,
            fall: 1,
            init_fail: false,
        };
        for c in n.children() {
            let kw = c.keyword();
            match kw {
                "script" => s.command = self.program(c, sec)?.unwrap_or_default(),
                "interval" => s.interval_us = secs_us(c, 0)?,
                "timeout" => s.timeout_us = Some(secs_us(c, 0)?),
                "weight" => {
                    s.weight = int_in(c, 0, -254, 254)? as i32;
                    s.reverse = c.args().get(1).is_some_and(|a| a == "reverse");
                }
                "user" => {
                    s.user = Some(arg(c, 0)?.to_string());
                    if c.args().len() > 1 {
                        self.warn(
                            sec,
                            c,
                            kw,
                            "group dropped: vigil runs the script with the user's own group",
                        );
                    }
                }
                "rise" | "fall" => {
                    let v = int_in(c, 0, 1, i64::MAX)?;
                    let fitted = v.min(1000);
                    if fitted != v {
                        self.warn(sec, c, kw, format!("{v} written as 1000, vigil's highest"));
                    }
                    if kw == "rise" {
                        s.rise = fitted;
                    } else {
                        s.fall = fitted;
                    }
                }
                "init_fail" => s.init_fail = true,
                _ => self.unhandled(sec, "vrrp_script", c),
            }
        }
        if s.command.is_empty() {
            self.warn(
                sec,
                n,
                "vrrp_script",
                format!("\"{name}\" has no script: instances tracking it do not"),
            );
            return Ok(());
        }
        if s.user.is_none() {
            s.user = self.default_user(sec, n);
        }
        self.scripts.insert(name, s);
        Ok(())
    }

    /// `track_file NAME` / `vrrp_track_file NAME`: a file whose number moves the priority.
    fn track_file(&mut self, n: &Node, sec: &mut Section) -> Result<(), ReadError> {
        let name = arg(n, 0)?.to_string();
        let mut path = None;
        // keepalived's default weight for a tracked file is 1: the number itself.
        let (mut weight, mut reverse) = (1, false);
        for c in n.children() {
            let kw = c.keyword();
            match kw {
                "file" => path = Some(arg(c, 0)?.to_string()),
                "weight" => {
                    (weight, reverse) = self.block_weight(c, sec)?;
                }
                "init_file" => self.warn(sec, c, kw, "dropped: vigil does not create or write the tracked file; create it (a missing file reads 0)"),
                _ => self.unhandled(sec, n.keyword(), c),
            }
        }
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            self.warn(
                sec,
                n,
                n.keyword(),
                format!("\"{name}\" dropped: no absolute `file`; instances tracking it do not"),
            );
            return Ok(());
        };
        self.track_files.insert(
            name,
            TrackDef {
                fields: vec![("file".into(), q(&path))],
                weight,
                reverse,
            },
        );
        Ok(())
    }

    /// `vrrp_track_process NAME`: a quorum of running processes.
    fn track_process(&mut self, n: &Node, sec: &mut Section) -> Result<(), ReadError> {
        let name = arg(n, 0)?.to_string();
        let mut command = Vec::new();
        let mut fields = Vec::new();
        // `delay` sets both, in keepalived's order of the lines.
        let (mut fork, mut terminate) = (None, None);
        // keepalived's default weight for a tracked process is 1.
        let (mut weight, mut reverse) = (1, false);
        for c in n.children() {
            let kw = c.keyword();
            match kw {
                "process" => command = c.args().to_vec(),
                "param_match" => {
                    let how = c.args().first().map_or("exact", String::as_str);
                    if !matches!(how, "exact" | "initial" | "partial") {
                        self.warn(sec, c, kw, format!("\"{how}\" dropped: not understood"));
                        continue;
                    }
                    fields.push(("param_match".into(), q(how)));
                }
                "weight" => (weight, reverse) = self.block_weight(c, sec)?,
                "quorum" => {
                    let v = int_in(c, 0, 0, 65535)?;
                    if v != 1 {
                        fields.push(("quorum".into(), v.to_string()));
                    }
                }
                "quorum_max" => {
                    fields.push(("quorum_max".into(), int_in(c, 0, 0, 65535)?.to_string()))
                }
                "delay" | "fork_delay" | "terminate_delay" => {
                    let us = secs_us(c, 0)?.min(3_600_000_000);
                    if kw != "terminate_delay" {
                        fork = Some(us);
                    }
                    if kw != "fork_delay" {
                        terminate = Some(us);
                    }
                }
                "full_command" => fields.push(("full_command".into(), "true".into())),
                _ => self.unhandled(sec, "vrrp_track_process", c),
            }
        }
        match (fork, terminate) {
            (Some(f), Some(t)) if f == t => fields.push(("delay".into(), dur(f))),
            _ => {
                for (key, v) in [("fork_delay", fork), ("terminate_delay", terminate)] {
                    if let Some(us) = v {
                        fields.push((key.into(), dur(us)));
                    }
                }
            }
        }
        if command.is_empty() {
            self.warn(
                sec,
                n,
                "vrrp_track_process",
                format!("\"{name}\" has no process: instances tracking it do not"),
            );
            return Ok(());
        }
        let items: Vec<String> = command.iter().map(|a| q(a)).collect();
        fields.insert(0, ("process".into(), text::one_line(&items)));
        self.track_processes.insert(
            name,
            TrackDef {
                fields,
                weight,
                reverse,
            },
        );
        Ok(())
    }

    /// `weight W [reverse]` of a tracked file or process block: vigil's weights are
    /// -254 to 254.
    fn block_weight(&mut self, c: &Node, sec: &mut Section) -> Result<(i32, bool), ReadError> {
        let w = int_in(c, 0, i64::from(i32::MIN) + 1, i64::from(i32::MAX))?;
        let fitted = w.clamp(-254, 254);
        if fitted != w {
            self.warn(
                sec,
                c,
                "weight",
                format!("{w} written as {fitted}: vigil's weights are -254 to 254"),
            );
        }
        Ok((
            fitted as i32,
            c.args().get(1).is_some_and(|a| a == "reverse"),
        ))
    }

    /// The user scripts run as when a block names none.
    fn default_user(&mut self, sec: &mut Section, n: &Node) -> Option<String> {
        match &self.globals.script_user {
            Some(u) => Some(u.clone()),
            None => {
                self.warn(sec, n, n.keyword(), "defaulted: runs as root, as keepalived does without script_user when there is no keepalived_script user (vigil's default is nobody)");
                Some("root".to_string())
            }
        }
    }

    /// A script line (`script`, `misc_path`, `notify`...): keepalived splits the string
    /// into words itself and runs the program without a shell.
    fn program(&mut self, n: &Node, sec: &mut Section) -> Result<Option<Vec<String>>, ReadError> {
        let line = arg(n, 0)?;
        let mut argv = split_command(line);
        if argv.is_empty() {
            return Ok(None);
        }
        if let Some(first) = argv.first_mut()
            && !first.starts_with('/')
        {
            // keepalived reads a relative path from the directory of the file that names
            // it, and looks a bare name up in $PATH.
            let dir = std::path::Path::new(&*n.loc.file).parent();
            let joined = dir
                .map(|d| crate::reader::normalize(&d.join(&*first)))
                .filter(|p| first.contains('/') && p.is_absolute());
            let (abs, why) = match joined {
                Some(p) => (
                    p.display().to_string(),
                    "relative to the directory of the file, as keepalived reads it",
                ),
                None => (
                    format!("/usr/bin/{first}"),
                    "vigil runs programs by absolute path, never through $PATH (check the path)",
                ),
            };
            self.warn(
                sec,
                n,
                n.keyword(),
                format!("\"{first}\" written as \"{abs}\": {why}"),
            );
            *first = abs;
        }
        Ok(Some(argv))
    }

    /// `notify`, `notify_master` ... of an instance or sync group: the program keeps
    /// keepalived's arguments (`notify_args = "keepalived"` for `notify`).
    fn notify_hook(&mut self, c: &Node, sec: &mut Section) -> Result<(), ReadError> {
        let kw = c.keyword();
        let Some(argv) = self.program(c, sec)? else {
            self.warn(sec, c, kw, "dropped: no program");
            return Ok(());
        };
        if c.args().len() > 1 {
            self.warn(
                sec,
                c,
                kw,
                "user dropped: vigil runs notify programs as its own user",
            );
        }
        let items: Vec<String> = argv.iter().map(|a| q(a)).collect();
        sec.set(kw, text::array(&items));
        if kw == "notify" {
            sec.set("notify_args", q("keepalived"));
        }
        Ok(())
    }

    fn sync_group(&mut self, n: &Node, sec: &mut Section) -> Result<(), ReadError> {
        let name = arg(n, 0)?.to_string();
        let mut group = SyncGroup {
            name: sanitize_name(&name),
            tracks: Vec::new(),
            tracking_weight: false,
        };
        let mut members = Vec::new();
        let mut hooks = Section::new(&format!("[sync_group.{}]", group.name));
        for c in n.children() {
            let kw = c.keyword();
            match kw {
                "group" => {
                    for m in c.children() {
                        members.extend(m.words.iter().cloned());
                    }
                }
                "track_interface" | "track_script" | "track_file" | "track_process" => {
                    group.tracks.push(c.clone())
                }
                "sync_group_tracking_weight" => group.tracking_weight = true,
                "notify" | "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" => {
                    self.notify_hook(c, &mut hooks)?;
                }
                _ => self.unhandled(sec, "vrrp_sync_group", c),
            }
        }
        if hooks.has_keys() {
            self.sync_group_sections
                .insert(format!("{}:{}", n.loc.file, n.loc.line), hooks);
        }
        if !group.tracks.is_empty() {
            self.warn(sec, n, "vrrp_sync_group", "tracking of the group is written into each member instance's `track` (the members fail over together either way)");
        }
        if group.name != name {
            self.warn(sec, n, "vrrp_sync_group", format!("name \"{name}\" written as \"{}\" (vigil names are letters, digits, '-', '_', '.')", group.name));
        }
        for m in members {
            self.sync_groups.insert(m, group.clone());
        }
        Ok(())
    }
}

// ---------- values ----------

fn arg(n: &Node, i: usize) -> Result<&str, ReadError> {
    n.args()
        .get(i)
        .map(String::as_str)
        .ok_or_else(|| ReadError::new(&n.loc, format!("`{}` needs a value", n.keyword())))
}

fn int_in(n: &Node, i: usize, min: i64, max: i64) -> Result<i64, ReadError> {
    let a = arg(n, i)?;
    let v: i64 = a.parse().map_err(|_| {
        ReadError::new(
            &n.loc,
            format!("`{}`: \"{a}\" is not a whole number", n.keyword()),
        )
    })?;
    if v < min || v > max {
        return Err(ReadError::new(
            &n.loc,
            format!("`{}`: {v} is out of range {min}–{max}", n.keyword()),
        ));
    }
    Ok(v)
}

/// Seconds, possibly fractional (`0.5`, `4.12`), in microseconds.
fn secs_us(n: &Node, i: usize) -> Result<u64, ReadError> {
    let a = arg(n, i)?;
    parse_secs_us(a).ok_or_else(|| {
        ReadError::new(
            &n.loc,
            format!("`{}`: \"{a}\" is not a number of seconds", n.keyword()),
        )
    })
}

fn parse_secs_us(a: &str) -> Option<u64> {
    let (whole, frac) = a.split_once('.').unwrap_or((a, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    if !whole.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let w: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut f = frac.to_string();
    f.truncate(6);
    while f.len() < 6 {
        f.push('0');
    }
    let f: u64 = f.parse().ok()?;
    w.checked_mul(1_000_000)?.checked_add(f)
}

/// `on|off|true|false|yes|no`; no value means on.
fn boolean(n: &Node) -> Result<bool, ReadError> {
    match n.args().first().map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("on" | "true" | "yes") => Ok(true),
        Some("off" | "false" | "no") => Ok(false),
        Some(other) => Err(ReadError::new(
            &n.loc,
            format!(
                "`{}`: \"{other}\" is not on/off/true/false/yes/no",
                n.keyword()
            ),
        )),
    }
}

fn ip(n: &Node, s: &str) -> Result<IpAddr, ReadError> {
    s.parse().map_err(|_| {
        ReadError::new(
            &n.loc,
            format!("`{}`: \"{s}\" is not an IP address", n.keyword()),
        )
    })
}

/// An interface name as vigil takes it (Linux's rules: at most 15 bytes, no `/`, `:` or
/// spaces). An alias label (`eth0:1`) names its interface, with a warning.
pub(crate) fn iface_name(
    m: &mut Mapper<'_>,
    sec: &mut Section,
    n: &Node,
    keyword: &str,
    name: &str,
) -> Result<String, ReadError> {
    let base = match name.split_once(':') {
        Some((base, _)) => {
            m.warn(
                sec,
                n,
                keyword,
                format!("alias {name} written as its interface {base}"),
            );
            base
        }
        None => name,
    };
    let ok = !base.is_empty()
        && base.len() <= 15
        && !base.contains('/')
        && !base.chars().any(char::is_whitespace)
        && base != "."
        && base != "..";
    if ok {
        Ok(base.to_string())
    } else {
        Err(ReadError::new(
            &n.loc,
            format!(
                "`{keyword}`: \"{name}\" is not an interface name (at most 15 characters, no '/' or spaces)"
            ),
        ))
    }
}

/// `base`, or the first of `base-2`, `base-3`, ... not in `taken`; added to it.
pub(crate) fn unique_name(taken: &mut HashSet<String>, base: String) -> String {
    let mut name = base.clone();
    let mut i = 2;
    while taken.contains(&name) {
        name = format!("{base}-{i}");
        i += 1;
    }
    taken.insert(name.clone());
    name
}

/// vigil's names are 1–64 of letters, digits, `-`, `_`, `.`.
pub(crate) fn sanitize_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// Splits a command line into words as keepalived does: whitespace separates, single or
/// double quotes group, a backslash escapes the next character.
fn split_command(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut has = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\\', _) => {
                if let Some(n) = chars.next() {
                    word.push(n);
                    has = true;
                }
            }
            ('"' | '\'', None) => {
                quote = Some(c);
                has = true;
            }
            (c, Some(qc)) if c == qc => quote = None,
            (c, None) if c.is_whitespace() => {
                if has {
                    out.push(std::mem::take(&mut word));
                    has = false;
                }
            }
            (c, _) => {
                word.push(c);
                has = true;
            }
        }
    }
    if has {
        out.push(word);
    }
    out
}

/// A duration in vigil's syntax from microseconds: `2s`, `250ms`, `500us`.
pub(crate) fn dur(us: u64) -> String {
    if us.is_multiple_of(1_000_000) {
        format!("\"{}s\"", us / 1_000_000)
    } else if us.is_multiple_of(1000) {
        format!("\"{}ms\"", us / 1000)
    } else {
        format!("\"{us}us\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(parse_secs_us("1"), Some(1_000_000));
        assert_eq!(parse_secs_us("0.92"), Some(920_000));
        assert_eq!(parse_secs_us(".5"), Some(500_000));
        assert_eq!(parse_secs_us("0.000001"), Some(1));
        assert_eq!(parse_secs_us("x"), None);
        assert_eq!(parse_secs_us("-1"), None);
    }

    #[test]
    fn a_taken_name_gets_the_next_free_number() {
        let mut taken = HashSet::new();
        assert_eq!(unique_name(&mut taken, "web".into()), "web");
        assert_eq!(unique_name(&mut taken, "web".into()), "web-2");
        assert_eq!(unique_name(&mut taken, "web".into()), "web-3");
        assert_eq!(unique_name(&mut taken, "api".into()), "api");
        assert_eq!(taken.len(), 4);
    }

    #[test]
    fn commands() {
        assert_eq!(
            split_command("/bin/check 'a b' \"c\" d\\ e"),
            ["/bin/check", "a b", "c", "d e"]
        );
    }
}
