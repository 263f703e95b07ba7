//! Pure parsing of `nft -j list table inet vigil` back into a [`Model`], so that what the
//! kernel holds is compared with what is wanted in vigil's terms (and an unchanged table
//! writes nothing).
//!
//! Only the shape [`crate::render`] writes is recognised. nft lists a rule in its own
//! normal form (it drops a protocol match that a later `tcp sport` implies, for one), so
//! a service's rule is read from its `dnat` statement alone: selector, modulus, seed and
//! slots. A service whose rule differs from the canonical layout is marked for rewrite;
//! anything else unexpected in the table (a stray chain, a changed skeleton) makes the
//! next apply replace the whole table.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use serde_json::Value;
use vigil_ipvs::{Family, Protocol, ServiceKey};

use crate::model::{HASH_SEED, Model, NftService, Selector};
use crate::render::{chain_name, skeleton};

/// What the kernel's table holds, as far as vigil can tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    /// Services in canonical form, and the masquerade set.
    pub model: Model,
    /// Services that are there but not in canonical form: rewritten by the next apply.
    pub rewrite: BTreeSet<ServiceKey>,
    /// What does not belong (for logs); non-empty means "replace the whole table".
    pub foreign: Vec<String>,
    /// Every named set or map in the table, as (`"set"` or `"map"`, name, whether it is
    /// one of the skeleton's exactly as this version declares it): a replacement
    /// empties those it keeps and deletes the others.
    pub sets: Vec<(String, String, bool)>,
    /// Every chain in the table, and whether it is one of the skeleton's base chains
    /// exactly as this version writes it, or a plain chain (no hook): a replacement
    /// keeps those base chains and the plain chains it still wants (see
    /// [`crate::diff::diff`]).
    pub chains: Vec<(String, bool)>,
}

impl Current {
    /// The table can be patched service by service.
    pub fn intact(&self) -> bool {
        self.foreign.is_empty()
    }

    /// The state after `model` was written in full.
    pub fn from_model(model: Model) -> Current {
        Current {
            model,
            ..Current::default()
        }
    }
}

fn strip(mut o: Value, keys: &[&str]) -> Value {
    if let Some(inner) = o.as_object_mut().and_then(|m| m.values_mut().next())
        && let Some(m) = inner.as_object_mut()
    {
        for k in keys {
            m.remove(*k);
        }
    }
    o
}

/// Parses a listing (`{"nftables": [...]}`) of the owned table.
pub fn parse(listing: &Value) -> Current {
    let mut cur = Current::default();
    let Some(items) = listing.get("nftables").and_then(Value::as_array) else {
        cur.foreign
            .push("listing without an \"nftables\" array".into());
        return cur;
    };
    let skel: Vec<Value> = skeleton();
    let skel_chains: BTreeSet<String> = skel
        .iter()
        .filter_map(|o| o.get("chain")?.get("name")?.as_str().map(str::to_owned))
        .collect();
    let skel_sets = [
        "services4",
        "services6",
        "fwmark4",
        "fwmark6",
        "masq4",
        "masq6",
    ];
    let mut seen_skel: Vec<String> = Vec::new();
    // chain name -> its rules
    let mut service_chains: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    // service key -> chain it dispatches to
    let mut dispatch: BTreeMap<ServiceKey, String> = BTreeMap::new();

    for item in items {
        let Some((kind, body)) = item.as_object().and_then(|m| m.iter().next()) else {
            continue;
        };
        let name = body.get("name").and_then(Value::as_str).unwrap_or("");
        match kind.as_str() {
            "map" | "set" => {
                let as_wanted = skel.contains(&strip(item.clone(), &["handle", "elem"]));
                cur.sets.push((kind.clone(), name.to_owned(), as_wanted));
            }
            "chain" => {
                let bare = strip(item.clone(), &["handle"]);
                let plain = bare
                    == serde_json::json!({"chain": {"family": crate::model::FAMILY,
                        "table": crate::model::TABLE, "name": name}});
                let base = body.get("hook").is_some() && skel.contains(&bare);
                cur.chains.push((name.to_owned(), base || plain));
            }
            _ => {}
        }
        match kind.as_str() {
            "metainfo" | "table" => {}
            "map" | "set" if skel_sets.contains(&name) => {
                let elems = body.get("elem").and_then(Value::as_array);
                for e in elems.into_iter().flatten() {
                    if name.starts_with("masq") {
                        match e.as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
                            Some(ip) => {
                                cur.model.masquerade.insert(ip);
                            }
                            None => cur.foreign.push(format!("{name} element {e}")),
                        }
                    } else {
                        match dispatch_elem(name, e) {
                            Some((key, chain)) => {
                                dispatch.insert(key, chain);
                            }
                            None => cur.foreign.push(format!("{name} element {e}")),
                        }
                    }
                }
                seen_skel.push(strip(item.clone(), &["handle", "elem"]).to_string());
            }
            "chain" if skel_chains.contains(name) => {
                seen_skel.push(strip(item.clone(), &["handle"]).to_string());
            }
            "chain" => {
                service_chains.entry(name.to_owned()).or_default();
            }
            "rule" => {
                let chain = body.get("chain").and_then(Value::as_str).unwrap_or("");
                if skel_chains.contains(chain) {
                    seen_skel.push(strip(item.clone(), &["handle"]).to_string());
                } else {
                    service_chains
                        .entry(chain.to_owned())
                        .or_default()
                        .push(body.clone());
                }
            }
            other => cur.foreign.push(format!("{other} {name}")),
        }
    }
    let mut want: Vec<String> = skel.iter().map(Value::to_string).collect();
    want.sort();
    seen_skel.sort();
    if want != seen_skel {
        cur.foreign
            .push("the table's fixed part differs from this version's".into());
    }
    for (key, chain) in &dispatch {
        if *chain != chain_name(key) {
            cur.foreign
                .push(format!("{key} dispatches to chain {chain}"));
            continue;
        }
        let Some(rules) = service_chains.remove(chain) else {
            cur.foreign.push(format!("{key}: chain {chain} missing"));
            continue;
        };
        match rules.as_slice() {
            [] => {
                cur.model.services.insert(
                    *key,
                    NftService {
                        selector: Selector::Random,
                        slots: BTreeMap::new(),
                    },
                );
            }
            [rule, fallback] => match parse_rule(key, rule) {
                Some(s) if is_fallback_of(key, &s, fallback) => {
                    cur.model.services.insert(*key, s);
                }
                _ => {
                    cur.rewrite.insert(*key);
                }
            },
            _ => {
                cur.rewrite.insert(*key);
            }
        }
    }
    for chain in service_chains.keys() {
        cur.foreign.push(format!("chain {chain}"));
    }
    cur
}

fn dispatch_elem(map: &str, e: &Value) -> Option<(ServiceKey, String)> {
    let pair = e.as_array()?;
    let [k, v] = pair.as_slice() else {
        return None;
    };
    let chain = v.get("goto")?.get("target")?.as_str()?.to_owned();
    let key = match map {
        "fwmark4" | "fwmark6" => ServiceKey::Fwmark {
            family: if map == "fwmark4" {
                Family::Inet
            } else {
                Family::Inet6
            },
            mark: u32::try_from(k.as_u64()?).ok()?,
        },
        _ => {
            let parts = k.get("concat")?.as_array()?;
            let [ip, proto, port] = parts.as_slice() else {
                return None;
            };
            let ip: IpAddr = ip.as_str()?.parse().ok()?;
            let protocol = match proto {
                Value::String(s) => match s.as_str() {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    "sctp" => Protocol::Sctp,
                    _ => return None,
                },
                n => Protocol::from_raw(u16::try_from(n.as_u64()?).ok()?),
            };
            let port = u16::try_from(port.as_u64()?).ok()?;
            ServiceKey::Addr {
                protocol,
                addr: SocketAddr::new(ip, port),
            }
        }
    };
    Some((key, chain))
}

/// `rule` is the fallback [`crate::render::fallback_rule`] writes for `s`: a DNAT to
/// the real server of slot 0 (a service written by an earlier version, without it, is
/// rewritten once).
fn is_fallback_of(key: &ServiceKey, s: &NftService, rule: &Value) -> bool {
    let Some(want) = crate::render::fallback_rule(key, s) else {
        return false;
    };
    let dnat = |r: &Value| -> Option<Value> {
        r.get("expr")?
            .as_array()?
            .iter()
            .find_map(|e| e.get("dnat"))
            .cloned()
    };
    let got = dnat(rule);
    got.is_some() && got == want.get("rule").and_then(dnat)
}

/// A service's rule back to its model; `None` if it is not in the canonical form.
fn parse_rule(key: &ServiceKey, rule: &Value) -> Option<NftService> {
    let dnat = rule
        .get("expr")?
        .as_array()?
        .iter()
        .find_map(|e| e.get("dnat"))?;
    let want_family = match key.family() {
        Family::Inet => "ip",
        Family::Inet6 => "ip6",
    };
    if dnat.get("family")?.as_str()? != want_family {
        return None;
    }
    let map = dnat.get("addr")?.get("map")?;
    let pick = map.get("key")?;
    let (selector, modulus) = if let Some(n) = pick.get("numgen") {
        if n.get("mode")?.as_str()? != "random" || n.get("offset").and_then(Value::as_u64)? != 0 {
            return None;
        }
        (Selector::Random, n.get("mod")?.as_u64()?)
    } else if let Some(j) = pick.get("jhash") {
        if j.get("seed").and_then(Value::as_u64).unwrap_or(0) != u64::from(HASH_SEED)
            || j.get("offset").and_then(Value::as_u64).unwrap_or(0) != 0
        {
            return None;
        }
        let expr = j.get("expr")?;
        let port = match expr.get("concat").and_then(Value::as_array) {
            Some(parts) => {
                let [_, sport] = parts.as_slice() else {
                    return None;
                };
                if sport.get("payload")?.get("field")?.as_str()? != "sport" {
                    return None;
                }
                true
            }
            None => false,
        };
        (Selector::SourceHash { port }, j.get("mod")?.as_u64()?)
    } else {
        return None;
    };
    // One element per slot (see `render::service_rule`); an interval map (ranges, as an
    // earlier version wrote) is not canonical and gets rewritten.
    let mut elems: Vec<(u64, SocketAddr)> = Vec::new();
    for e in map.get("data")?.get("set")?.as_array()? {
        let [k, v] = e.as_array()?.as_slice() else {
            return None;
        };
        let slot = k.as_u64()?;
        let addr = match v.get("concat") {
            Some(c) => {
                let [ip, port] = c.as_array()?.as_slice() else {
                    return None;
                };
                SocketAddr::new(
                    ip.as_str()?.parse().ok()?,
                    u16::try_from(port.as_u64()?).ok()?,
                )
            }
            None => SocketAddr::new(v.as_str()?.parse().ok()?, 0),
        };
        elems.push((slot, addr));
    }
    elems.sort();
    let mut slots: BTreeMap<SocketAddr, u32> = BTreeMap::new();
    for (_, addr) in &elems {
        *slots.entry(*addr).or_insert(0) += 1;
    }
    let s = NftService { selector, slots };
    // Canonical: slots 0.. in address order, covering the modulus exactly.
    let canonical: Vec<(u64, SocketAddr)> = s
        .ranges()
        .into_iter()
        .flat_map(|(a, b, addr)| (u64::from(a)..=u64::from(b)).map(move |k| (k, addr)))
        .collect();
    (canonical == elems && s.total() == modulus).then_some(s)
}
