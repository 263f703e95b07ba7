//! What the director knows of `real_servers_from_dns`: each entry's last good answer,
//! its errors and counters, and the config with those servers in it. Pure: answers come
//! in as values with the time, the config goes out, and the director applies it through
//! its reload path (the same diff, checks and hooks as a reload).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use vigil_config::{Config, DnsLookup, Forwarding, ServiceKey, VirtualServer};
use vigil_proto::{DnsResolutionEvent, DnsSourceView};

/// One entry, by its virtual server and what it looks up: an entry whose lookup a reload
/// changes is a new one (its servers come from its own first answer).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceKey {
    pub virtual_server: String,
    pub lookup: DnsLookup,
}

impl SourceKey {
    /// Every entry of `config`, in file order.
    pub fn all(config: &Config) -> Vec<SourceKey> {
        config
            .virtual_servers
            .iter()
            .flat_map(|vs| {
                vs.real_servers_from_dns.iter().map(|d| SourceKey {
                    virtual_server: vs.name.clone(),
                    lookup: d.lookup.clone(),
                })
            })
            .collect()
    }
}

/// One destination of an answer: an address with its port, and an SRV record's weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Destination {
    pub address: SocketAddr,
    pub weight: Option<u32>,
}

/// What one resolution gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destinations (sorted, no duplicates) and the answer's smallest TTL.
    Answer(Vec<Destination>, Duration),
    Failed(String),
}

impl Outcome {
    /// An answer, sorted and without duplicate addresses (the first weight kept).
    pub fn answer(mut destinations: Vec<Destination>, ttl: Duration) -> Outcome {
        destinations.sort();
        destinations.dedup_by_key(|d| d.address);
        Outcome::Answer(destinations, ttl)
    }
}

/// When to resolve again after `outcome`: a good answer by its TTL, kept within the
/// entry's bounds; a failed or empty one after `min_ttl`.
pub fn next_delay(outcome: &Outcome, lookup: &DnsLookup) -> Duration {
    match outcome {
        Outcome::Answer(d, ttl) if !d.is_empty() => (*ttl).clamp(lookup.min_ttl, lookup.max_ttl),
        _ => lookup.min_ttl,
    }
}

#[derive(Debug, Clone, Default)]
struct SourceState {
    /// The last good answer; `None` before the first.
    good: Option<Vec<Destination>>,
    last_success_unix_ms: Option<u64>,
    ttl: Option<Duration>,
    last_error: Option<String>,
    last_error_unix_ms: Option<u64>,
    next_unix_ms: Option<u64>,
    resolutions: u64,
    failures: u64,
}

/// The file's config and what DNS added to it.
pub struct DnsSets {
    file: Arc<Config>,
    sources: HashMap<SourceKey, SourceState>,
}

/// What a resolution changed, for the director.
pub struct Resolved {
    /// The config with the new servers, when they changed: apply it as a reload.
    pub config: Option<Arc<Config>>,
    /// Published when the servers changed, and when a resolution fails after one that
    /// did not (or with another error): not on every retry of a name that stays down.
    pub event: Option<DnsResolutionEvent>,
}

impl DnsSets {
    pub fn new(file: Arc<Config>) -> DnsSets {
        let sources = SourceKey::all(&file)
            .into_iter()
            .map(|k| (k, SourceState::default()))
            .collect();
        DnsSets { file, sources }
    }

    /// A reload: entries still there keep their answers (no gap while they are
    /// re-resolved), the others are forgotten. Returns the config to apply.
    pub fn reload(&mut self, file: Arc<Config>) -> Arc<Config> {
        let mut sources = HashMap::new();
        for k in SourceKey::all(&file) {
            let state = self.sources.remove(&k).unwrap_or_default();
            sources.insert(k, state);
        }
        self.sources = sources;
        self.file = file;
        self.effective()
    }

    /// Records one resolution of `key` at `now_unix_ms`, the next due at `next_unix_ms`.
    /// A failed or empty answer keeps the last good set.
    pub fn resolved(
        &mut self,
        key: &SourceKey,
        outcome: Outcome,
        now_unix_ms: u64,
        next_unix_ms: u64,
    ) -> Resolved {
        let Some(s) = self.sources.get_mut(key) else {
            // From an entry a reload has just removed.
            return Resolved {
                config: None,
                event: None,
            };
        };
        s.resolutions += 1;
        s.next_unix_ms = Some(next_unix_ms);
        let event = |ok, now: &[Destination], added, removed, error| DnsResolutionEvent {
            virtual_server: key.virtual_server.clone(),
            name: key.lookup.name.clone(),
            record: key.lookup.record.name().into(),
            ok,
            real_servers: now.iter().map(|d| d.address).collect(),
            added,
            removed,
            error,
            at_unix_ms: now_unix_ms,
        };
        let error = match outcome {
            Outcome::Answer(d, _) if d.is_empty() => "the answer has no usable record".to_string(),
            Outcome::Failed(e) => e,
            Outcome::Answer(d, ttl) => {
                s.last_success_unix_ms = Some(now_unix_ms);
                s.ttl = Some(ttl);
                s.last_error = None;
                if s.good.as_ref() == Some(&d) {
                    return Resolved {
                        config: None,
                        event: None,
                    };
                }
                let before = s.good.take().unwrap_or_default();
                let added = d
                    .iter()
                    .filter(|n| !before.iter().any(|b| b.address == n.address))
                    .map(|n| n.address)
                    .collect();
                let removed = before
                    .iter()
                    .filter(|b| !d.iter().any(|n| n.address == b.address))
                    .map(|b| b.address)
                    .collect();
                let e = event(true, &d, added, removed, None);
                s.good = Some(d);
                return Resolved {
                    config: Some(self.effective()),
                    event: Some(e),
                };
            }
        };
        s.failures += 1;
        s.last_error_unix_ms = Some(now_unix_ms);
        let news = s.last_error.as_deref() != Some(error.as_str());
        s.last_error = Some(error.clone());
        let good = s.good.clone().unwrap_or_default();
        Resolved {
            config: None,
            event: news.then(|| event(false, &good, vec![], vec![], Some(error))),
        }
    }

    /// The file's config with every entry's servers added to its virtual server (after
    /// its own `real_server`s; an address already there is not added twice).
    pub fn effective(&self) -> Arc<Config> {
        let any = self
            .sources
            .values()
            .any(|s| s.good.as_ref().is_some_and(|g| !g.is_empty()));
        if !any {
            return self.file.clone();
        }
        let mut config = (*self.file).clone();
        for vs in &mut config.virtual_servers {
            for entry in vs.real_servers_from_dns.clone() {
                let key = SourceKey {
                    virtual_server: vs.name.clone(),
                    lookup: entry.lookup.clone(),
                };
                let Some(good) = self.sources.get(&key).and_then(|s| s.good.as_ref()) else {
                    continue;
                };
                for d in good {
                    if usable(vs, d.address, entry.template.forwarding)
                        && !vs.real_servers.iter().any(|r| r.address == d.address)
                    {
                        vs.real_servers.push(entry.real_server(d.address, d.weight));
                    }
                }
            }
        }
        Arc::new(config)
    }

    /// The entries of virtual server `name`, for `services`.
    pub fn view(&self, name: &str) -> Vec<DnsSourceView> {
        let Some(vs) = self.file.virtual_server(name) else {
            return Vec::new();
        };
        vs.real_servers_from_dns
            .iter()
            .filter_map(|entry| {
                let key = SourceKey {
                    virtual_server: vs.name.clone(),
                    lookup: entry.lookup.clone(),
                };
                let s = self.sources.get(&key)?;
                Some(DnsSourceView {
                    name: key.lookup.name.clone(),
                    record: key.lookup.record.name().into(),
                    real_servers: s.good.iter().flatten().map(|d| d.address).collect(),
                    last_success_unix_ms: s.last_success_unix_ms,
                    ttl_s: s
                        .ttl
                        .map(|t| u32::try_from(t.as_secs()).unwrap_or(u32::MAX)),
                    last_error: s.last_error.clone(),
                    last_error_unix_ms: s.last_error_unix_ms,
                    next_resolution_unix_ms: s.next_unix_ms,
                    resolutions: s.resolutions,
                    failures: s.failures,
                })
            })
            .collect()
    }

    /// Every entry with its virtual server, for metrics.
    pub fn all_views(&self) -> Vec<(String, DnsSourceView)> {
        self.file
            .virtual_servers
            .iter()
            .flat_map(|vs| {
                self.view(&vs.name)
                    .into_iter()
                    .map(|v| (vs.name.clone(), v))
            })
            .collect()
    }
}

/// Whether `address` can serve `vs` as the config's own rules would have it for a
/// `real_server` (not the service's own address; DR and tunnelling keep the port; only
/// tunnelling mixes families): an answer is not validated when the file is.
fn usable(vs: &VirtualServer, address: SocketAddr, forwarding: Forwarding) -> bool {
    let family_ok = forwarding == Forwarding::Tunnel
        || vigil_config::AddressFamily::of(&address.ip()) == vs.key.family();
    match vs.key {
        ServiceKey::Address { address: own, .. } => {
            own.ip() != address.ip()
                && (forwarding.can_remap_port() || own.port() == address.port())
                && family_ok
        }
        ServiceKey::Fwmark { .. } => family_ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Arc<Config> {
        let text = format!(
            "[director]\nname = \"t\"\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.1:80\"\ncheck = {{ kind = \"tcp\" }}\nreal_server = [{{ address = \"10.0.0.1\" }}]\n[[virtual_server.real_servers_from_dns]]\nname = \"web.test\"\nmin_ttl = \"2s\"\nmax_ttl = \"1m\"\n{extra}"
        );
        Arc::new(
            vigil_config::parse(std::path::Path::new("t.toml"), &text)
                .unwrap()
                .config,
        )
    }

    fn dest(a: &str) -> Destination {
        Destination {
            address: a.parse().unwrap(),
            weight: None,
        }
    }

    fn addresses(c: &Config) -> Vec<String> {
        c.virtual_servers[0]
            .real_servers
            .iter()
            .map(|r| r.address.to_string())
            .collect()
    }

    #[test]
    fn ttl_is_kept_within_the_bounds_and_failures_retry_at_the_lower() {
        let c = config("");
        let l = &c.virtual_servers[0].real_servers_from_dns[0].lookup;
        let a = |ttl| Outcome::answer(vec![dest("10.0.0.2:80")], Duration::from_secs(ttl));
        assert_eq!(next_delay(&a(0), l), Duration::from_secs(2));
        assert_eq!(next_delay(&a(30), l), Duration::from_secs(30));
        assert_eq!(next_delay(&a(86_400), l), Duration::from_secs(60));
        assert_eq!(
            next_delay(&Outcome::Failed("timeout".into()), l),
            Duration::from_secs(2)
        );
        assert_eq!(
            next_delay(&Outcome::answer(vec![], Duration::from_secs(30)), l),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn answers_add_and_remove_servers_and_failures_keep_the_last_good_set() {
        let c = config("");
        let key = SourceKey::all(&c).remove(0);
        let mut sets = DnsSets::new(c.clone());
        assert!(Arc::ptr_eq(&sets.effective(), &c), "nothing resolved yet");

        let ttl = Duration::from_secs(10);
        let r = sets.resolved(
            &key,
            Outcome::answer(vec![dest("10.0.0.3:80"), dest("10.0.0.2:80")], ttl),
            1_000,
            11_000,
        );
        let applied = r.config.expect("a change to apply");
        assert_eq!(
            addresses(&applied),
            ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]
        );
        // The template's check came with them.
        assert!(applied.virtual_servers[0].real_servers[2].checks.len() == 1);
        let e = r.event.expect("an event");
        assert!(e.ok);
        assert_eq!(e.added.len(), 2);

        // The same answer again changes nothing and says nothing.
        let r = sets.resolved(
            &key,
            Outcome::answer(vec![dest("10.0.0.2:80"), dest("10.0.0.3:80")], ttl),
            2_000,
            12_000,
        );
        assert!(r.config.is_none() && r.event.is_none());

        // A failure keeps them, counted; said once per error.
        let r = sets.resolved(&key, Outcome::Failed("timed out".into()), 3_000, 5_000);
        assert!(r.config.is_none());
        let e = r.event.expect("a failure event");
        assert!(!e.ok);
        assert_eq!(e.real_servers.len(), 2);
        let r = sets.resolved(&key, Outcome::Failed("timed out".into()), 5_000, 7_000);
        assert!(r.event.is_none());
        // An empty answer is a failure too.
        let r = sets.resolved(&key, Outcome::answer(vec![], ttl), 7_000, 9_000);
        assert!(r.config.is_none() && r.event.is_some());
        assert_eq!(addresses(&sets.effective()).len(), 3);
        let v = &sets.view("web")[0];
        assert_eq!((v.resolutions, v.failures), (5, 3));
        assert_eq!(
            v.last_error.as_deref(),
            Some("the answer has no usable record")
        );
        assert_eq!(v.next_resolution_unix_ms, Some(9_000));
        assert_eq!(v.last_success_unix_ms, Some(2_000));

        // One goes, one comes.
        let r = sets.resolved(
            &key,
            Outcome::answer(vec![dest("10.0.0.4:80"), dest("10.0.0.3:80")], ttl),
            9_000,
            19_000,
        );
        assert_eq!(
            addresses(&r.config.expect("a change")),
            ["10.0.0.1:80", "10.0.0.3:80", "10.0.0.4:80"]
        );
        let e = r.event.expect("an event");
        assert_eq!(e.added, ["10.0.0.4:80".parse().unwrap()]);
        assert_eq!(e.removed, ["10.0.0.2:80".parse().unwrap()]);
        assert_eq!(sets.view("web")[0].last_error, None);
    }

    #[test]
    fn a_reload_keeps_answers_of_entries_still_there_and_drops_the_others() {
        let c = config("");
        let key = SourceKey::all(&c).remove(0);
        let mut sets = DnsSets::new(c.clone());
        let ttl = Duration::from_secs(10);
        sets.resolved(
            &key,
            Outcome::answer(vec![dest("10.0.0.2:80")], ttl),
            1_000,
            2_000,
        );
        // The same entry (another template): its servers stay, with the new template.
        let same = config("weight = 7\n");
        let applied = sets.reload(same);
        assert_eq!(applied.virtual_servers[0].real_servers[1].weight, 7);
        // Another name: its servers wait for its own answer.
        let other = config("").as_ref().clone();
        let mut other = other;
        other.virtual_servers[0].real_servers_from_dns[0]
            .lookup
            .name = "other.test".into();
        let applied = sets.reload(Arc::new(other));
        assert_eq!(addresses(&applied), ["10.0.0.1:80"]);
        // An answer for the entry gone is dropped.
        assert!(
            sets.resolved(&key, Outcome::Failed("x".into()), 3_000, 4_000)
                .event
                .is_none()
        );
    }

    #[test]
    fn answers_the_service_cannot_use_are_left_out() {
        let c = config("forwarding = \"dr\"\n");
        let key = SourceKey::all(&c).remove(0);
        let mut sets = DnsSets::new(c);
        let r = sets.resolved(
            &key,
            Outcome::answer(
                vec![
                    // The service's own address, another port under DR, a duplicate of a
                    // real_server, the other family: all left out.
                    dest("192.0.2.1:80"),
                    dest("10.0.0.5:8080"),
                    dest("10.0.0.1:80"),
                    dest("[2001:db8::5]:80"),
                    dest("10.0.0.6:80"),
                ],
                Duration::from_secs(5),
            ),
            0,
            5_000,
        );
        assert_eq!(
            addresses(&r.config.expect("a change")),
            ["10.0.0.1:80", "10.0.0.6:80"]
        );
    }
}
