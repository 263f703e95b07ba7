//! `virtual_routes` and `virtual_rules` of a `vrrp_instance` → the instance's
//! `virtual_routes` and `virtual_rules` lists (`ip route` / `ip rule` words).

use std::net::IpAddr;

use super::text::{Section, array, inline, q};
use super::{Mapper, iface_name};
use crate::reader::{Node, ReadError};

/// `ADDR[/LEN]` or `default` as a prefix without host bits (`None` when not one).
fn prefix(s: &str, v6_default: bool) -> Option<(IpAddr, u8, bool)> {
    if s == "default" || s == "all" {
        let any = if v6_default {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        };
        return Some((any, 0, false));
    }
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let a: IpAddr = a.parse().ok()?;
    let max = if a.is_ipv6() { 128 } else { 32 };
    let len = match len {
        Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max)?,
        None => max,
    };
    let masked = match a {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    };
    Some((masked, len, masked != a))
}

fn table_value(s: &str) -> Option<String> {
    match s {
        "main" | "local" | "default" => Some(q(s)),
        _ => s
            .parse::<u32>()
            .ok()
            .filter(|t| *t > 0)
            .map(|t| t.to_string()),
    }
}

/// Reads one line of a `virtual_routes` or `virtual_rules` block (its `words`, and
/// them joined as `line` for warnings); `None` (warned) when vigil cannot take it.
pub(super) type LineParser<'m> = fn(
    &mut Mapper<'m>,
    &Node,
    &[&str],
    &str,
    &mut Section,
    bool,
) -> Result<Option<String>, ReadError>;

impl<'m> Mapper<'m> {
    /// The lines of a `virtual_routes` or `virtual_rules` block, each read by `parse`,
    /// as one array; `None` when no line is left.
    pub(super) fn virtual_lines(
        &mut self,
        c: &Node,
        sec: &mut Section,
        v6: bool,
        parse: LineParser<'m>,
    ) -> Result<Option<String>, ReadError> {
        let mut items = Vec::new();
        for r in c.children() {
            let words: Vec<&str> = std::iter::once(r.keyword())
                .chain(r.args().iter().map(String::as_str))
                .collect();
            let line = words.join(" ");
            if let Some(item) = parse(self, r, &words, &line, sec, v6)? {
                items.push(item);
            }
        }
        Ok((!items.is_empty()).then(|| array(&items)))
    }

    /// One line of `virtual_routes` (`ip route` words).
    pub(super) fn virtual_route(
        &mut self,
        r: &Node,
        words: &[&str],
        line: &str,
        sec: &mut Section,
        v6: bool,
    ) -> Result<Option<String>, ReadError> {
        let mut to = None;
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut via = None;
        let mut src = None;
        let mut kind = None;
        let mut dev = false;
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            let val = words.get(i + 1).copied();
            let mut take = 2;
            match (w, val) {
                ("blackhole" | "unreachable" | "prohibit", _) => {
                    kind = Some(w);
                    take = 1;
                }
                ("to", Some(v)) => to = Some(v),
                ("src", Some(v)) => src = Some(v),
                ("via" | "gw", Some(v)) => via = Some(v),
                ("dev" | "oif", Some(v)) => {
                    let d = iface_name(self, sec, r, "virtual_routes", v)?;
                    fields.push(("dev".into(), q(&d)));
                    dev = true;
                }
                ("table", Some(v)) => match table_value(v) {
                    Some(t) => fields.push(("table".into(), t)),
                    None => {
                        self.warn(sec, r, "virtual_routes", format!("{line}: dropped: table \"{v}\" is not a number or main, local, default"));
                        return Ok(None);
                    }
                },
                ("metric" | "preference" | "priority", Some(v)) => match v.parse::<u32>() {
                    Ok(m) => fields.push(("metric".into(), m.to_string())),
                    Err(_) => {
                        self.warn(
                            sec,
                            r,
                            "virtual_routes",
                            format!("{line}: dropped: metric \"{v}\" is not a number"),
                        );
                        return Ok(None);
                    }
                },
                ("scope", Some(v @ ("global" | "site" | "link" | "host"))) => {
                    fields.push(("scope".into(), q(v)));
                }
                ("proto" | "protocol", Some(v @ ("boot" | "static" | "keepalived"))) => {
                    fields.push(("protocol".into(), q(v)));
                }
                ("proto" | "protocol", Some(v)) if v.parse::<u8>().is_ok() => {
                    fields.push(("protocol".into(), v.to_string()));
                }
                (w, _) if to.is_none() && prefix(w, v6).is_some() => {
                    to = Some(w);
                    take = 1;
                }
                (w, v) => {
                    self.warn(sec, r, "virtual_routes", format!("{line}: `{w}{}` dropped: vigil's routes take to, via, dev, src, table, metric, scope, protocol and the blackhole, unreachable and prohibit types", v.map(|v| format!(" {v}")).unwrap_or_default()));
                    take = if v.is_some() { 2 } else { 1 };
                }
            }
            i += take;
        }
        let Some((to_addr, len, had_host_bits)) = to.and_then(|t| prefix(t, v6)) else {
            self.warn(
                sec,
                r,
                "virtual_routes",
                format!("{line}: dropped: no destination vigil can read"),
            );
            return Ok(None);
        };
        if had_host_bits {
            self.warn(
                sec,
                r,
                "virtual_routes",
                format!("{line}: destination written as {to_addr}/{len} (host bits cleared)"),
            );
        }
        let mut out = vec![("to".to_string(), q(&format!("{to_addr}/{len}")))];
        for (key, v) in [("via", via), ("src", src)] {
            let Some(v) = v else { continue };
            match v.parse::<IpAddr>() {
                Ok(a) if a.is_ipv6() == to_addr.is_ipv6() => out.push((key.into(), q(v))),
                _ => {
                    self.warn(sec, r, "virtual_routes", format!("{line}: dropped: {key} {v} is not an address of the destination's family"));
                    return Ok(None);
                }
            }
        }
        match kind {
            Some(k) => {
                if via.is_some() || dev {
                    self.warn(
                        sec,
                        r,
                        "virtual_routes",
                        format!("{line}: dropped: a {k} route has no via or dev in vigil"),
                    );
                    return Ok(None);
                }
                out.push(("type".into(), q(k)));
            }
            None if via.is_none() && !dev => {
                self.warn(
                    sec,
                    r,
                    "virtual_routes",
                    format!("{line}: dropped: a route needs via or dev"),
                );
                return Ok(None);
            }
            None => {}
        }
        out.extend(fields);
        Ok(Some(inline(&out)))
    }

    /// One line of `virtual_rules` (`ip rule` words).
    pub(super) fn virtual_rule(
        &mut self,
        r: &Node,
        words: &[&str],
        line: &str,
        sec: &mut Section,
        v6: bool,
    ) -> Result<Option<String>, ReadError> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut family: Option<bool> = None;
        let mut table = None;
        let mut action = None;
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            let val = words.get(i + 1).copied();
            let mut take = 2;
            match (w, val) {
                ("blackhole" | "unreachable" | "prohibit", _) => {
                    action = Some(w);
                    take = 1;
                }
                ("from" | "to", Some("all")) => {}
                ("from" | "to", Some(v)) => match prefix(v, v6) {
                    Some((a, len, _)) if family.is_none_or(|f| f == a.is_ipv6()) => {
                        family = Some(a.is_ipv6());
                        out.push((w.into(), q(&format!("{a}/{len}"))));
                    }
                    _ => {
                        self.warn(
                            sec,
                            r,
                            "virtual_rules",
                            format!("{line}: dropped: {w} {v} is not a prefix vigil can use here"),
                        );
                        return Ok(None);
                    }
                },
                ("iif" | "dev" | "oif", Some(v)) => {
                    let d = iface_name(self, sec, r, "virtual_rules", v)?;
                    let key = if w == "oif" { "oif" } else { "iif" };
                    out.push((key.into(), q(&d)));
                }
                ("fwmark", Some(v)) => {
                    let (mark, mask) = match v.split_once('/') {
                        Some((m, k)) => (m, Some(k)),
                        None => (v, None),
                    };
                    let num = |s: &str| match s.strip_prefix("0x") {
                        Some(h) => u32::from_str_radix(h, 16).ok(),
                        None => s.parse::<u32>().ok(),
                    };
                    match (num(mark), mask.map(num)) {
                        (Some(m), None) => out.push(("fwmark".into(), m.to_string())),
                        (Some(m), Some(Some(k))) => {
                            out.push(("fwmark".into(), m.to_string()));
                            out.push(("fwmask".into(), k.to_string()));
                        }
                        _ => {
                            self.warn(
                                sec,
                                r,
                                "virtual_rules",
                                format!("{line}: dropped: fwmark {v} is not a number"),
                            );
                            return Ok(None);
                        }
                    }
                }
                ("table" | "lookup", Some(v)) => match table_value(v) {
                    Some(t) => table = Some(t),
                    None => {
                        self.warn(sec, r, "virtual_rules", format!("{line}: dropped: table \"{v}\" is not a number or main, local, default"));
                        return Ok(None);
                    }
                },
                ("priority" | "preference" | "pref" | "order", Some(v)) => match v.parse::<u32>() {
                    Ok(p) => out.push(("priority".into(), p.to_string())),
                    Err(_) => {
                        self.warn(
                            sec,
                            r,
                            "virtual_rules",
                            format!("{line}: dropped: priority \"{v}\" is not a number"),
                        );
                        return Ok(None);
                    }
                },
                (w, v) => {
                    self.warn(sec, r, "virtual_rules", format!("{line}: `{w}{}` dropped: vigil's rules take from, to, iif, oif, fwmark, table, priority and the blackhole, unreachable and prohibit actions", v.map(|v| format!(" {v}")).unwrap_or_default()));
                    take = if v.is_some() { 2 } else { 1 };
                }
            }
            i += take;
        }
        match (action, table) {
            (Some(a), None) => out.push(("action".into(), q(a))),
            (None, Some(t)) => out.push(("table".into(), t)),
            (Some(a), Some(_)) => {
                self.warn(
                    sec,
                    r,
                    "virtual_rules",
                    format!("{line}: table dropped: a {a} rule looks up no table"),
                );
                out.push(("action".into(), q(a)));
            }
            (None, None) => {
                self.warn(sec, r, "virtual_rules", format!("{line}: dropped: no table (and no blackhole, unreachable or prohibit action)"));
                return Ok(None);
            }
        }
        Ok(Some(inline(&out)))
    }
}
