//! `vrrp_instance` → `[vrrp.NAME]`, with its tracking, sync group and the global VRRP
//! defaults of `global_defs`.

use std::net::IpAddr;

use super::text::{Section, array, inline, one_line, q};
use super::vrrp_routes::LineParser;
use super::{Mapper, arg, dur, iface_name, int_in, ip, sanitize_name, secs_us};
use crate::reader::{Loc, Node, ReadError};

/// One `track` entry before weights are settled.
struct Track {
    fields: Vec<(String, String)>,
    weight: i32,
    reverse: bool,
    loc: Loc,
    keyword: String,
}

#[derive(Default)]
struct Instance {
    interface: Option<String>,
    priority: i64,
    version: Option<(u8, Loc)>,
    advert_us: u64,
    advert_loc: Option<Loc>,
    /// Address, prefix length, where, `dev`, and whether it came from
    /// `virtual_ipaddress_excluded` (held and announced, never advertised).
    vips: Vec<(IpAddr, u8, Loc, Option<String>, bool)>,
    /// Set while reading `virtual_ipaddress_excluded`.
    reading_excluded: bool,
    peers: Vec<(IpAddr, Loc)>,
    /// `unicast_ttl`: the TTL keepalived sends unicast adverts with (its default 255).
    unicast_ttl: Option<(i64, Loc)>,
    source: Option<(IpAddr, Loc)>,
    auth_type: Option<(String, Loc)>,
    auth_pass: Option<(String, Loc)>,
    garp_repeat: Option<u32>,
    garp_refresh_us: Option<u64>,
    garp_interval_us: Option<u64>,
    gna_interval_us: Option<u64>,
    tracks: Vec<Track>,
    track_primary: bool,
}

/// Keys before which derived keys go, so the section reads in keepalived's usual order.
const AFTER_VRID: &[&str] = &["vrid", "interface"];

impl Mapper<'_> {
    pub(super) fn garp_repeat(&mut self, n: &Node, sec: &mut Section) -> Result<u32, ReadError> {
        let v = int_in(n, 0, 0, i64::from(u32::MAX))?;
        let clamped = v.clamp(1, 100);
        if clamped != v {
            self.warn(
                sec,
                n,
                n.keyword(),
                format!("{v} written as {clamped}: vigil sends 1 to 100"),
            );
        }
        Ok(clamped as u32)
    }

    pub(super) fn garp_interval(&mut self, n: &Node, sec: &mut Section) -> Result<u64, ReadError> {
        let us = secs_us(n, 0)?;
        if us > 1_000_000 {
            self.warn(
                sec,
                n,
                n.keyword(),
                "written as 1s, vigil's longest gap between gratuitous ARPs / NAs",
            );
            return Ok(1_000_000);
        }
        Ok(us)
    }

    /// One instance, or two when its addresses are of both families: vigil carries one
    /// family per instance (RFC 5798 §5.2.9), so the other family's addresses go to a
    /// second instance with the same VRID in the same sync group.
    pub(super) fn vrrp_instance(&mut self, n: &Node) -> Result<Vec<Section>, ReadError> {
        let (first, other) = self.instance_for(n, None)?;
        let mut out = vec![first];
        if let Some(v6) = other {
            // Everything worth a warning was said for the first one.
            let was = self.quiet;
            self.quiet = true;
            let second = self.instance_for(n, Some(v6));
            self.quiet = was;
            out.push(second?.0);
        }
        Ok(out)
    }

    /// The instance for one family (`force`: the second instance's), and the other
    /// family when addresses of it were left for a second instance.
    fn instance_for(
        &mut self,
        n: &Node,
        force: Option<bool>,
    ) -> Result<(Section, Option<bool>), ReadError> {
        let kname = arg(n, 0)?.to_string();
        let primary = self
            .instance_names
            .get(&kname)
            .cloned()
            .unwrap_or_else(|| sanitize_name(&kname));
        let name = match force {
            Some(true) => format!("{primary}-ipv6"),
            Some(false) => format!("{primary}-ipv4"),
            None => primary.clone(),
        };
        let mut sec = Section::new(&format!("[vrrp.{}]", table_key(&name)));
        if primary != kname {
            self.warn(&mut sec, n, "vrrp_instance", format!("name \"{kname}\" written as \"{name}\" (vigil names are letters, digits, '-', '_', '.')"));
        }
        let mut st = Instance {
            priority: 100,
            advert_us: 1_000_000,
            track_primary: true,
            ..Instance::default()
        };
        let mut vrid = None;
        let (mut routes_node, mut rules_node) = (None, None);
        let mut use_vmac: Option<(Option<String>, &Node)> = None;
        let mut xmit_base = None;
        for c in n.children() {
            let kw = c.keyword();
            match kw {
                "use_vmac" => {
                    let name = match c.args().first() {
                        Some(a) => Some(iface_name(self, &mut sec, c, kw, a)?),
                        None => None,
                    };
                    use_vmac = Some((name, c));
                    sec.set("use_vmac", "true".into());
                }
                "vmac_xmit_base" => {
                    xmit_base = Some(c);
                    sec.set("vmac_xmit_base", "true".into());
                }
                "virtual_routes" => {
                    routes_node = Some(c);
                    sec.set("virtual_routes", String::new());
                }
                "virtual_rules" => {
                    rules_node = Some(c);
                    sec.set("virtual_rules", String::new());
                }
                "state" => match arg(c, 0)?.to_ascii_uppercase().as_str() {
                    // keepalived 2.x waits for the election either way, except that an
                    // address owner (255) in MASTER takes over at once, as vigil's does.
                    "BACKUP" | "MASTER" => {}
                    other => self.warn(
                        &mut sec,
                        c,
                        kw,
                        format!("\"{other}\" dropped: keepalived knows MASTER and BACKUP"),
                    ),
                },
                "interface" => {
                    let iface = iface_name(self, &mut sec, c, "interface", arg(c, 0)?)?;
                    sec.set("interface", q(&iface));
                    st.interface = Some(iface);
                }
                "virtual_router_id" => {
                    let v = int_in(c, 0, 1, 255)?;
                    sec.set("vrid", v.to_string());
                    vrid = Some(v);
                }
                "priority" => {
                    st.priority = int_in(c, 0, 1, 255)?;
                    sec.set("priority", st.priority.to_string());
                }
                "advert_int" => {
                    st.advert_us = secs_us(c, 0)?;
                    st.advert_loc = Some(c.loc.clone());
                    sec.set("advert_interval", String::new());
                }
                "version" => {
                    let v = int_in(c, 0, 2, 3)? as u8;
                    st.version = Some((v, c.loc.clone()));
                    sec.set("version", v.to_string());
                }
                "nopreempt" => sec.set("preempt", "false".into()),
                "preempt" => sec.remove("preempt"),
                "preempt_delay" => {
                    let us = secs_us(c, 0)?;
                    if us > 1_000_000_000 {
                        return Err(ReadError::new(
                            &c.loc,
                            "`preempt_delay` must be at most 1000 seconds",
                        ));
                    }
                    if us > 0 {
                        sec.set("preempt_delay", dur(us));
                    }
                }
                "accept" => sec.set("accept", "true".into()),
                "no_accept" => sec.remove("accept"),
                "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
                    st.reading_excluded = kw == "virtual_ipaddress_excluded";
                    for v in c.children() {
                        self.vip(v, &mut st, &mut sec)?;
                    }
                    st.reading_excluded = false;
                    // Placeholders: the keys keep the input's order.
                    if st.vips.iter().any(|v| !v.4) {
                        sec.set("vips", String::new());
                    }
                    if st.vips.iter().any(|v| v.4) {
                        sec.set("vips_excluded", String::new());
                    }
                }
                "unicast_ttl" => st.unicast_ttl = Some((int_in(c, 0, 1, 255)?, c.loc.clone())),
                "unicast_src_ip" | "mcast_src_ip" => {
                    let a = ip(c, arg(c, 0)?)?;
                    st.source = Some((a, c.loc.clone()));
                    sec.set("unicast_source", q(&a.to_string()));
                }
                "unicast_peer" => {
                    for p in c.children() {
                        let a = ip(p, p.keyword())?;
                        if !p.args().is_empty() {
                            self.warn(
                                &mut sec,
                                p,
                                "unicast_peer",
                                format!(
                                    "`{}` dropped: vigil checks the TTL per instance (255, or any with unicast_accept_any_ttl)",
                                    p.args().join(" ")
                                ),
                            );
                        }
                        st.peers.push((a, p.loc.clone()));
                    }
                    sec.set("unicast_peers", String::new());
                }
                "authentication" => {
                    for a in c.children() {
                        match a.keyword() {
                            "auth_type" => {
                                st.auth_type =
                                    Some((arg(a, 0)?.to_ascii_uppercase(), a.loc.clone()))
                            }
                            "auth_pass" => {
                                st.auth_pass = Some((arg(a, 0)?.to_string(), a.loc.clone()))
                            }
                            _ => self.unhandled(&mut sec, "authentication", a),
                        }
                    }
                    sec.set("auth_password", String::new());
                }
                "garp_master_repeat" => st.garp_repeat = Some(self.garp_repeat(c, &mut sec)?),
                "garp_master_refresh" => st.garp_refresh_us = Some(secs_us(c, 0)?),
                "garp_interval" => st.garp_interval_us = Some(self.garp_interval(c, &mut sec)?),
                "gna_interval" => st.gna_interval_us = Some(self.garp_interval(c, &mut sec)?),
                "track_interface" | "track_script" | "track_file" | "track_process" => {
                    self.tracks(c, &mut st, &mut sec)?;
                    sec.set("track", String::new());
                }
                "notify_deleted" => {
                    self.warn(&mut sec, c, kw, "dropped: a vigil instance removed by a reload runs its stop hooks (`notify_stop`, `notify ... STOP`)");
                }
                "notify_master_rx_lower_pri" => {
                    self.warn(&mut sec, c, kw, "dropped: vigil answers a lower-priority master's advert itself (advert and gratuitous ARP) and runs no hook for it");
                }
                "notify" | "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" => {
                    self.notify_hook(c, &mut sec)?;
                }
                "track_bfd" => {
                    let names: Vec<&str> = c.children().iter().map(Node::keyword).collect();
                    self.warn(&mut sec, c, kw, format!("dropped ({}): vigil tracks virtual servers, interfaces, programs, files and processes only", names.join(", ")));
                }
                "dont_track_primary" => st.track_primary = false,
                _ => self.unhandled(&mut sec, "vrrp_instance", c),
            }
        }
        if let Some(g) = self.sync_groups.get(&kname).cloned() {
            sec.set("sync_group", q(&g.name));
            for t in &g.tracks {
                self.tracks(t, &mut st, &mut sec)?;
                sec.set("track", String::new());
            }
        }

        // keepalived lets a unicast instance leave `interface` out; its addresses then
        // name theirs with `dev`.
        let dev = st.vips.iter().find_map(|v| v.3.clone());
        let Some(iface) = st.interface.clone().or(dev) else {
            return Err(ReadError::new(
                &n.loc,
                format!("vrrp_instance {kname} has no `interface`"),
            ));
        };
        if st.interface.is_none() {
            self.warn(&mut sec, n, "interface", format!("defaulted to {iface}, the `dev` of the first virtual address: vigil runs an instance on one interface"));
            sec.set_first("interface", q(&iface));
        }
        if vrid.is_none() {
            return Err(ReadError::new(
                &n.loc,
                format!("vrrp_instance {kname} has no `virtual_router_id`"),
            ));
        }
        if st.track_primary && !st.tracks.iter().any(|t| t.fields[0].1 == q(&iface)) {
            st.tracks.insert(
                0,
                Track {
                    fields: vec![("interface".into(), q(&iface))],
                    weight: 0,
                    reverse: false,
                    loc: n.loc.clone(),
                    keyword: "interface".into(),
                },
            );
            sec.set_after("track", String::new(), &["vips", "priority"]);
            sec.comment_before(
                "track",
                "keepalived tracks the instance's own interface (no dont_track_primary)",
            );
        }

        // One family per instance: the first address decides, as in keepalived.
        // The first address the instance's interface carries decides, as in keepalived.
        let v6 = force.unwrap_or_else(|| {
            st.vips
                .iter()
                .find(|v| v.3.as_ref().is_none_or(|d| *d == iface))
                .is_some_and(|v| v.0.is_ipv6())
        });
        let other_name = format!("{primary}-{}", if v6 { "ipv4" } else { "ipv6" });
        let mut other = None;
        let mut vips = Vec::new();
        let mut excluded = Vec::new();
        for (a, len, loc, dev, is_excluded) in std::mem::take(&mut st.vips) {
            if let Some(d) = dev
                && *d != iface
            {
                self.warn_key(&mut sec, &loc, "virtual_ipaddress", "vips", format!("{a}/{len} dev {d} dropped: vigil adds an instance's addresses on its interface ({iface}); make an instance on {d} for it"));
                continue;
            }
            if a.is_ipv6() != v6 {
                let vrid_text = vrid.map(|v| v.to_string()).unwrap_or_default();
                if force.is_none() && self.vrids.contains(&(iface.clone(), !v6, vrid_text)) {
                    self.warn_key(&mut sec, &loc, "virtual_ipaddress", "vips", format!("{a} dropped: a vigil instance carries one address family, and VRID {} is taken for the other family on {iface} by another instance; put the address in an instance of its own", vrid.unwrap_or_default()));
                    continue;
                }
                if force.is_none() {
                    self.warn_key(&mut sec, &loc, "virtual_ipaddress", "vips", format!("{a} written to instance {other_name} (same VRID and settings, VRRPv3 for IPv6, one sync group): a vigil instance carries one address family"));
                    other = Some(!v6);
                }
                continue;
            }
            let text = format!("{a}/{len}");
            if vips.contains(&q(&text)) || excluded.contains(&q(&text)) {
                continue;
            }
            if self.vips.contains(&a) {
                self.warn_key(&mut sec, &loc, "virtual_ipaddress", "vips", format!("{a} dropped: another instance carries it already, and a vigil address belongs to one instance"));
                continue;
            }
            self.vips.insert(a);
            if is_excluded {
                excluded.push(q(&text));
            } else {
                vips.push(q(&text));
            }
        }
        if vips.is_empty() && !excluded.is_empty() {
            // vigil's instance advertises at least one address.
            self.warn(&mut sec, n, "virtual_ipaddress_excluded", "approximated: the instance has no other address, so these are advertised too (`vips`)");
            vips = std::mem::take(&mut excluded);
        }
        if vips.is_empty() {
            let why = format!(
                "dropped: \"{kname}\" has no virtual address vigil can carry, and a vigil instance needs one"
            );
            return Ok((
                self.drop_instance(sec, n, &kname, force.is_some(), why),
                None,
            ));
        }
        // A last guard for what the early VRID check could not know (the family an
        // instance ends up with): vigil refuses one VRID twice per interface and family.
        let vrid_key = (iface.clone(), v6, vrid.unwrap_or_default());
        if let Some(holder) = self.emitted_vrids.get(&vrid_key).cloned() {
            let why = format!(
                "dropped: VRID {} on {iface} ({}) is used by instance {holder} already",
                vrid_key.2,
                if v6 { "IPv6" } else { "IPv4" }
            );
            return Ok((
                self.drop_instance(sec, n, &kname, force.is_some(), why),
                None,
            ));
        }
        self.emitted_vrids.insert(vrid_key, name.clone());
        let blocks: [(_, _, LineParser<'_>); 2] = [
            (routes_node, "virtual_routes", Self::virtual_route),
            (rules_node, "virtual_rules", Self::virtual_rule),
        ];
        for (node, key, parse) in blocks {
            let Some(node) = node else { continue };
            match self.virtual_lines(node, &mut sec, v6, parse)? {
                Some(v) => sec.set(key, v),
                None => sec.remove(key),
            }
        }
        match use_vmac {
            Some((given, node)) => {
                // vigil's default name is keepalived's (vrrp.VRID); a split instance's
                // halves, or instances of one VRID on two interfaces, need their own.
                let vrid_text = vrid.map(|v| v.to_string()).unwrap_or_default();
                let default = format!("vrrp.{vrid_text}");
                let wanted = given.clone().unwrap_or_else(|| default.clone());
                let name = if self.vmac_names.contains(&wanted) || force.is_some() {
                    let other = format!("{wanted}.{}", if v6 { 6 } else { 4 });
                    if other.len() <= 15 && !self.vmac_names.contains(&other) {
                        self.warn(
                            &mut sec,
                            node,
                            "use_vmac",
                            format!(
                                "interface named {other}: {wanted} is another vigil instance's"
                            ),
                        );
                        Some(other)
                    } else {
                        None
                    }
                } else {
                    Some(wanted.clone())
                };
                match name {
                    Some(name) => {
                        if name != default {
                            sec.set_after("vmac_name", q(&name), &["use_vmac"]);
                        }
                        self.vmac_names.insert(name);
                    }
                    None => {
                        self.warn(
                            &mut sec,
                            node,
                            "use_vmac",
                            format!(
                                "dropped: the interface name {wanted} is another vigil instance's"
                            ),
                        );
                        sec.remove("use_vmac");
                        sec.remove("vmac_xmit_base");
                    }
                }
            }
            None => {
                if let Some(node) = xmit_base {
                    self.warn(
                        &mut sec,
                        node,
                        "vmac_xmit_base",
                        "dropped: the instance has no use_vmac",
                    );
                    sec.remove("vmac_xmit_base");
                }
            }
        }
        sec.set("vips", array(&vips));
        if excluded.is_empty() {
            sec.remove("vips_excluded");
        } else {
            sec.set("vips_excluded", array(&excluded));
        }
        // The two halves of a split instance fail over together.
        if sec.get("sync_group").is_none() && (other.is_some() || force.is_some()) {
            sec.set("sync_group", q(&primary));
        }

        // keepalived runs IPv6 instances as VRRPv3 whatever the version says.
        let version = match (&st.version, self.globals.vrrp_version) {
            (Some((v, _)), _) => *v,
            (None, Some(g)) => g,
            (None, None) => 2,
        };
        let version = if v6 && version == 2 && force.is_none() {
            if let Some((_, loc)) = &st.version {
                let loc = loc.clone();
                self.warn_key(&mut sec, &loc, "version", "version", "written as 3: VRRPv2 cannot carry IPv6 (keepalived runs IPv6 instances as version 3 too)");
            }
            3
        } else if v6 {
            3
        } else {
            version
        };
        // vigil's default is 3, keepalived's 2: always say which.
        sec.set_after("version", version.to_string(), AFTER_VRID);

        let advert = self.advert(&mut sec, &st, version);
        if advert != 1_000_000 {
            sec.set_after("advert_interval", dur(advert), &["version"]);
        } else {
            sec.remove("advert_interval");
        }

        let mut seen = Vec::new();
        let peers: Vec<String> = st
            .peers
            .iter()
            .filter_map(|(a, loc)| {
                if seen.contains(a) {
                    self.warn_key(
                        &mut sec,
                        loc,
                        "unicast_peer",
                        "unicast_peers",
                        format!("{a} dropped: listed twice"),
                    );
                    None
                } else if a.is_ipv6() == v6 {
                    seen.push(*a);
                    Some(q(&a.to_string()))
                } else if other.is_some() || force.is_some() {
                    None
                } else {
                    self.warn_key(
                        &mut sec,
                        loc,
                        "unicast_peer",
                        "unicast_peers",
                        format!("{a} dropped: not of the instance's address family"),
                    );
                    None
                }
            })
            .collect();
        if peers.is_empty() {
            sec.remove("unicast_peers");
            if let Some((ttl, loc)) = &st.unicast_ttl {
                let loc = loc.clone();
                self.warn_at(
                    &mut sec,
                    &loc,
                    "unicast_ttl",
                    format!("{ttl} dropped: the instance has no unicast peers"),
                );
            }
        } else {
            sec.set("unicast_peers", array(&peers));
            // vigil accepts unicast adverts with TTL 255 only (RFC 5798 §5.1.1.3) unless
            // told otherwise; keepalived's unicast_ttl is what the peers (sharing this
            // file) send.
            match &st.unicast_ttl {
                Some((ttl, loc)) if *ttl < 255 => {
                    let loc = loc.clone();
                    sec.set_after("unicast_accept_any_ttl", "true".into(), &["unicast_peers"]);
                    self.warn_key(&mut sec, &loc, "unicast_ttl", "unicast_accept_any_ttl", format!("{ttl}: the peers send adverts with a TTL below 255, so vigil accepts any TTL (RFC 5798 §5.1.1.3 asks for 255)"));
                }
                _ => {
                    if let Some((_, loc)) = st.peers.first() {
                        let loc = loc.clone();
                        self.warn_key(&mut sec, &loc, "unicast_peer", "unicast_peers", "vigil accepts unicast adverts with TTL 255 only (RFC 5798 §5.1.1.3), as keepalived's peers send them; peers behind a router need unicast_accept_any_ttl = true");
                    }
                }
            }
        }
        if let Some((a, loc)) = &st.source
            && a.is_ipv6() != v6
        {
            let loc = loc.clone();
            self.warn_key(
                &mut sec,
                &loc,
                "unicast_src_ip",
                "unicast_source",
                format!("{a} dropped: not of the instance's address family"),
            );
            sec.remove("unicast_source");
        }

        self.auth(&mut sec, &st, version);

        let repeat = st.garp_repeat.or(self.globals.garp_repeat);
        if let Some(r) = repeat.filter(|r| *r != 5) {
            sec.set("garp_repeat", r.to_string());
        }
        let interval = if v6 {
            st.gna_interval_us.or(self.globals.gna_interval_us)
        } else {
            st.garp_interval_us.or(self.globals.garp_interval_us)
        };
        if let Some(i) = interval.filter(|i| *i != 10_000) {
            sec.set("garp_interval", dur(i));
        }
        if let Some(r) = st
            .garp_refresh_us
            .or(self.globals.garp_refresh_us)
            .filter(|r| *r > 0)
        {
            let r = if r < 1_000_000 {
                self.warn(
                    &mut sec,
                    n,
                    "garp_master_refresh",
                    "written as 1s, vigil's shortest refresh",
                );
                1_000_000
            } else {
                r
            };
            sec.set("garp_refresh", dur(r));
        }

        // keepalived ignores weighted tracking of sync-group members (their group must
        // fail over as one) unless the group says sync_group_tracking_weight.
        if let Some(g) = self.sync_groups.get(&kname).cloned()
            && !g.tracking_weight
        {
            let (kept, weighted): (Vec<Track>, Vec<Track>) = std::mem::take(&mut st.tracks)
                .into_iter()
                .partition(|t| t.weight == 0);
            for t in weighted {
                let msg = format!(
                    "weight {} dropped with the track: keepalived ignores weighted tracking in members of sync group {} (no sync_group_tracking_weight)",
                    t.weight, g.name
                );
                self.warn_key(&mut sec, &t.loc, &t.keyword, "track", msg);
            }
            st.tracks = kept;
        }
        // An address owner's priority stays 255 in keepalived whatever its tracks say.
        if st.priority == 255 {
            let (kept, weighted): (Vec<Track>, Vec<Track>) = std::mem::take(&mut st.tracks)
                .into_iter()
                .partition(|t| t.weight == 0);
            for t in weighted {
                let msg = format!(
                    "weight {} dropped with the track: keepalived never changes the priority of an address owner (255)",
                    t.weight
                );
                self.warn_key(&mut sec, &t.loc, &t.keyword, "track", msg);
            }
            st.tracks = kept;
        }
        self.settle_tracks(&mut sec, &mut st);
        if st.priority == 100 {
            sec.remove("priority");
        } else {
            sec.set_after("priority", st.priority.to_string(), AFTER_VRID);
        }
        Ok((sec, other))
    }

    /// An instance written as comments only, with the reason; a second instance (for the
    /// other family) says so even though its other warnings were said for the first.
    fn drop_instance(
        &mut self,
        mut sec: Section,
        n: &Node,
        kname: &str,
        second: bool,
        why: String,
    ) -> Section {
        let quiet = self.quiet;
        self.quiet = quiet && !second;
        self.warn(&mut sec, n, "vrrp_instance", why);
        self.quiet = quiet;
        let mut dropped = Section::new("");
        for l in sec.render().into_iter().filter(|l| !l.ends_with(" = ")) {
            dropped.lines.push(if l.starts_with('#') {
                l
            } else {
                format!("# {l}")
            });
        }
        if !second {
            self.instance_names.remove(kname);
        }
        dropped
    }

    /// keepalived's advert_int in what the version can carry.
    fn advert(&mut self, sec: &mut Section, st: &Instance, version: u8) -> u64 {
        let us = st.advert_us;
        let loc = st.advert_loc.clone();
        let say = |m: &mut Self, sec: &mut Section, msg: String| {
            if let Some(l) = &loc {
                m.warn_key(sec, l, "advert_int", "advert_interval", msg);
            }
        };
        if version == 2 {
            // RFC 3768 §5.3.7: whole seconds, 1–255.
            let secs = us.div_ceil(1_000_000).clamp(1, 255);
            if secs * 1_000_000 != us {
                say(
                    self,
                    sec,
                    format!("written as {secs}s: VRRPv2 adverts carry whole seconds from 1 to 255"),
                );
            }
            secs * 1_000_000
        } else {
            // RFC 5798 §5.2.7: centiseconds, 12 bits.
            let cs = ((us + 5_000) / 10_000).clamp(1, 4095);
            if cs * 10_000 != us {
                say(
                    self,
                    sec,
                    format!(
                        "written as {}: VRRPv3 adverts carry centiseconds from 10ms to 40.95s",
                        dur(cs * 10_000).trim_matches('"')
                    ),
                );
            }
            cs * 10_000
        }
    }

    fn auth(&mut self, sec: &mut Section, st: &Instance, version: u8) {
        let Some((pass, loc)) = st.auth_pass.clone() else {
            sec.remove("auth_password");
            if let Some((_, loc)) = &st.auth_type {
                let loc = loc.clone();
                self.warn_key(
                    sec,
                    &loc,
                    "authentication",
                    "auth_password",
                    "dropped: no auth_pass",
                );
            }
            return;
        };
        let kind = st.auth_type.as_ref().map_or("PASS", |(t, _)| t.as_str());
        if kind == "AH" {
            sec.remove("auth_password");
            self.warn_key(sec, &loc, "auth_type", "auth_password", "AH dropped: vigil has no IPsec AH authentication; the instance runs without authentication");
            return;
        }
        if version != 2 {
            sec.remove("auth_password");
            self.warn_key(sec, &loc, "auth_pass", "auth_password", "dropped: VRRPv3 has no authentication (RFC 5798), and keepalived ignores it for version 3 too");
            return;
        }
        let mut p = pass.clone();
        if p.len() > 8 {
            let mut end = 8;
            while !p.is_char_boundary(end) {
                end -= 1;
            }
            p.truncate(end);
            self.warn_key(
                sec,
                &loc,
                "auth_pass",
                "auth_password",
                format!(
                    "written as \"{p}\": only the first 8 bytes count, in keepalived as in RFC 3768"
                ),
            );
        }
        sec.set("auth_password", q(&p));
    }

    fn vip(&mut self, v: &Node, st: &mut Instance, sec: &mut Section) -> Result<(), ReadError> {
        let spec = v.keyword();
        let (addr, len) = match spec.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (spec, None),
        };
        let a = ip(v, addr)?;
        let max = if a.is_ipv6() { 128 } else { 32 };
        let mut len = match len {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => {
                    return Err(ReadError::new(
                        &v.loc,
                        format!(
                            "virtual address {spec}: \"/{l}\" is not a prefix length of 0–{max}"
                        ),
                    ));
                }
            },
        };
        if a.is_unspecified() || a.is_multicast() || a.is_loopback() {
            self.warn(
                sec,
                v,
                "virtual_ipaddress",
                format!("{spec} dropped: not a unicast host address"),
            );
            return Ok(());
        }
        if is_subnet_address(a, len) {
            self.warn(sec, v, "virtual_ipaddress", format!("{spec} written as {a}/{max}: it is the network or broadcast address of its prefix, which vigil refuses as a VIP"));
            len = max;
        }
        let mut dev = None;
        let args = v.args();
        let mut i = 0;
        while i < args.len() {
            let opt = args[i].as_str();
            let val = args.get(i + 1).map(String::as_str);
            match opt {
                "dev" => {
                    dev = match val {
                        Some(d) => Some(iface_name(self, sec, v, "virtual_ipaddress", d)?),
                        None => None,
                    };
                    i += 2;
                }
                "scope" => {
                    if val != Some("global") && val != Some("0") {
                        self.warn(
                            sec,
                            v,
                            "virtual_ipaddress",
                            format!(
                                "scope {} dropped: vigil adds VIPs with global scope",
                                val.unwrap_or("")
                            ),
                        );
                    }
                    i += 2;
                }
                "brd" | "label" | "peer" | "track_group" | "preferred_lft" => {
                    self.warn(
                        sec,
                        v,
                        "virtual_ipaddress",
                        format!(
                            "{opt} {} dropped: vigil adds VIPs as plain addresses",
                            val.unwrap_or("")
                        ),
                    );
                    i += 2;
                }
                _ => {
                    self.warn(
                        sec,
                        v,
                        "virtual_ipaddress",
                        format!("{opt} dropped: vigil adds VIPs as plain addresses"),
                    );
                    i += 1;
                }
            }
        }
        st.vips
            .push((a, len, v.loc.clone(), dev, st.reading_excluded));
        Ok(())
    }

    fn tracks(&mut self, c: &Node, st: &mut Instance, sec: &mut Section) -> Result<(), ReadError> {
        for t in c.children() {
            let target = t.keyword().to_string();
            let mut weight = None;
            let mut reverse = None;
            let mut args = t.args().iter();
            while let Some(a) = args.next() {
                match a.as_str() {
                    "weight" => {
                        let w = args.next().ok_or_else(|| {
                            ReadError::new(&t.loc, format!("{target}: `weight` needs a value"))
                        })?;
                        weight = Some(w.parse::<i32>().ok().filter(|w| (-254..=254).contains(w)).ok_or_else(|| {
                            ReadError::new(&t.loc, format!("{target}: weight \"{w}\" is not a number from -254 to 254"))
                        })?);
                    }
                    "reverse" => reverse = Some(true),
                    "noreverse" | "no_reverse" => reverse = Some(false),
                    other => self.warn(
                        sec,
                        t,
                        c.keyword(),
                        format!("{target}: `{other}` dropped: not understood"),
                    ),
                }
            }
            if c.keyword() == "track_interface" {
                let target = iface_name(self, sec, t, "track_interface", &target)?;
                st.tracks.push(Track {
                    fields: vec![("interface".into(), q(&target))],
                    weight: weight.unwrap_or(0),
                    reverse: reverse.unwrap_or(false),
                    loc: t.loc.clone(),
                    keyword: "track_interface".into(),
                });
                continue;
            }
            if matches!(c.keyword(), "track_file" | "track_process") {
                let (defs, what) = if c.keyword() == "track_file" {
                    (&self.track_files, "track_file")
                } else {
                    (&self.track_processes, "vrrp_track_process")
                };
                let Some(def) = defs.get(&target).cloned() else {
                    self.warn(
                        sec,
                        t,
                        c.keyword(),
                        format!(
                            "{target} dropped: there is no {what} of that name vigil could track"
                        ),
                    );
                    continue;
                };
                st.tracks.push(Track {
                    fields: def.fields,
                    weight: weight.unwrap_or(def.weight),
                    reverse: reverse.unwrap_or(def.reverse),
                    loc: t.loc.clone(),
                    keyword: c.keyword().into(),
                });
                continue;
            }
            let Some(script) = self.scripts.get(&target).cloned() else {
                self.warn(
                    sec,
                    t,
                    "track_script",
                    format!(
                        "{target} dropped: there is no vrrp_script of that name vigil could run"
                    ),
                );
                continue;
            };
            let mut fields = vec![(
                "exec".to_string(),
                one_line(&script.command.iter().map(|a| q(a)).collect::<Vec<_>>()),
            )];
            let interval = script.interval_us.clamp(10_000, 3_600_000_000);
            if interval != script.interval_us {
                self.warn(
                    sec,
                    t,
                    "track_script",
                    format!(
                        "{target}: interval written as {}: vigil runs programs every 10ms to 1h",
                        dur(interval).trim_matches('"')
                    ),
                );
            }
            if interval != 2_000_000 {
                fields.push(("interval".into(), dur(interval)));
            }
            // keepalived lets a script run until its next turn unless `timeout` says
            // otherwise; vigil's timeout must be shorter than the interval.
            let to = match script.timeout_us {
                Some(to) if to >= interval || to == 0 => {
                    let fitted = shorter_than(interval);
                    self.warn(sec, t, "track_script", format!("{target}: timeout written as {}: vigil's must be shorter than the interval", dur(fitted).trim_matches('"')));
                    fitted
                }
                Some(to) => to,
                None => shorter_than(interval),
            };
            if to != interval / 2 {
                fields.push(("timeout".into(), dur(to)));
            }
            if let Some(u) = &script.user
                && u != "nobody"
            {
                fields.push(("user".into(), q(u)));
            }
            for (key, v) in [("rise", script.rise), ("fall", script.fall)] {
                if v != 1 {
                    fields.push((key.into(), v.to_string()));
                }
            }
            if script.init_fail {
                fields.push(("init_fail".into(), "true".into()));
            }
            st.tracks.push(Track {
                fields,
                weight: weight.unwrap_or(script.weight),
                reverse: reverse.unwrap_or(script.reverse),
                loc: t.loc.clone(),
                keyword: "track_script".into(),
            });
        }
        Ok(())
    }

    /// Writes the `track` list: vigil applies weights as keepalived does (a positive one
    /// while up, a negative one while down, `reverse` the other way round).
    fn settle_tracks(&mut self, sec: &mut Section, st: &mut Instance) {
        if st.tracks.is_empty() {
            sec.remove("track");
            return;
        }
        let items: Vec<String> = st
            .tracks
            .iter()
            .map(|t| {
                let mut f = t.fields.clone();
                if t.weight != 0 {
                    f.push(("weight".into(), t.weight.to_string()));
                }
                if t.reverse {
                    f.push(("reverse".into(), "true".into()));
                }
                inline(&f)
            })
            .collect();
        sec.set("track", array(&items));
    }
}

/// The largest whole-second (or, under a second, half) value shorter than `interval_us`.
pub(super) fn shorter_than(interval_us: u64) -> u64 {
    if interval_us > 1_000_000 {
        (interval_us - 1) / 1_000_000 * 1_000_000
    } else {
        (interval_us / 2 / 1000).max(1) * 1000
    }
}

/// The network or broadcast address of an IPv4 prefix up to /30, or the subnet-router
/// anycast address of an IPv6 prefix up to /126: not usable as a VIP.
fn is_subnet_address(a: IpAddr, len: u8) -> bool {
    match a {
        IpAddr::V4(v4) if len <= 30 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            let host = u32::from(v4) & !mask;
            host == 0 || host == !mask
        }
        IpAddr::V6(v6) if len <= 126 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(v6) & !mask == 0
        }
        _ => false,
    }
}

/// A table name as a TOML key: bare when it can be, quoted when it has a `.`.
pub(super) fn table_key(name: &str) -> String {
    if name.contains('.') {
        q(name)
    } else {
        name.to_string()
    }
}
