//! One entry's resolver (hickory-resolver on tokio) and what an answer means as
//! destinations: A/AAAA addresses with the entry's port, or SRV targets of the lowest
//! priority with their ports and weights.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::{Resolver as Hickory, TokioResolver};
use vigil_config::{AddressFamily, DnsLookup, DnsRecord};

use super::sets::{Destination, Outcome};

pub(super) struct Resolver {
    inner: TokioResolver,
    /// A bound on one whole resolution, beyond the resolver's own timeouts.
    deadline: Duration,
}

impl Resolver {
    /// The resolver `lookup` asks for: its name servers, else /etc/resolv.conf's; with
    /// no cache (every resolution asks the servers: the TTL is ours to keep).
    pub(super) fn new(lookup: &DnsLookup) -> Result<Resolver, String> {
        let r = &lookup.resolver;
        let mut builder = if r.nameservers.is_empty() {
            Hickory::builder(TokioRuntimeProvider::default())
                .map_err(|e| format!("cannot read the system's resolver configuration: {e}"))?
        } else {
            let servers = r
                .nameservers
                .iter()
                .map(|a| {
                    let mut ns = NameServerConfig::udp_and_tcp(a.ip());
                    for c in &mut ns.connections {
                        c.port = a.port();
                    }
                    ns
                })
                .collect();
            let mut b = Hickory::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            );
            // Only the servers named: not /etc/hosts either.
            b.options_mut().use_hosts_file = ResolveHosts::Never;
            b
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.timeout = r.timeout;
        opts.attempts = r.attempts as usize;
        opts.cache_size = 0;
        let servers = r.nameservers.len().max(1) as u32;
        let deadline = r.timeout * r.attempts * servers * 2 + Duration::from_secs(1);
        let inner = builder
            .build()
            .map_err(|e| format!("cannot set up the resolver: {e}"))?;
        Ok(Resolver { inner, deadline })
    }

    /// Resolves `lookup` into destinations of `family` (the service's, for SRV targets).
    pub(super) async fn resolve(&self, lookup: &DnsLookup, family: AddressFamily) -> Outcome {
        // Nothing cached may stand in for the servers' answer (cache_size 0 already).
        self.inner.clear_cache();
        match tokio::time::timeout(self.deadline, self.resolve_inner(lookup, family)).await {
            Ok(Ok((d, ttl))) => Outcome::answer(d, ttl),
            Ok(Err(e)) => Outcome::Failed(e),
            Err(_) => Outcome::Failed(format!(
                "no answer within {}",
                vigil_config::format_duration(self.deadline)
            )),
        }
    }

    async fn resolve_inner(
        &self,
        lookup: &DnsLookup,
        family: AddressFamily,
    ) -> Result<(Vec<Destination>, Duration), String> {
        let name = Name::from_utf8(&lookup.name)
            .map_err(|e| format!("\"{}\" is not a DNS name: {e}", lookup.name))?;
        let (rtype, port) = match (lookup.record, lookup.port) {
            (DnsRecord::A, Some(p)) => (RecordType::A, p),
            (DnsRecord::Aaaa, Some(p)) => (RecordType::AAAA, p),
            _ => return self.srv(name, family).await,
        };
        let answer = self
            .inner
            .lookup(name, rtype)
            .await
            .map_err(|e| e.to_string())?;
        let records = answer.answers();
        let d = addresses(records)
            .map(|ip| Destination {
                address: SocketAddr::new(ip, port),
                weight: None,
            })
            .collect();
        Ok((d, min_ttl(records)))
    }

    /// RFC 2782: the records of the lowest priority; each target's addresses from the
    /// additional section, else looked up.
    async fn srv(
        &self,
        name: Name,
        family: AddressFamily,
    ) -> Result<(Vec<Destination>, Duration), String> {
        let answer = self
            .inner
            .lookup(name, RecordType::SRV)
            .await
            .map_err(|e| e.to_string())?;
        let srvs: Vec<(&Record, &hickory_resolver::proto::rr::rdata::SRV)> = answer
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                // A target of "." says the service is not offered there (RFC 2782).
                RData::SRV(s) if !s.target.is_root() => Some((r, s)),
                _ => None,
            })
            .collect();
        let Some(best) = srvs.iter().map(|(_, s)| s.priority).min() else {
            return Ok((Vec::new(), min_ttl(answer.answers())));
        };
        let rtype = match family {
            AddressFamily::Ipv4 => RecordType::A,
            AddressFamily::Ipv6 => RecordType::AAAA,
        };
        let mut ttl = min_ttl(answer.answers());
        let mut out = Vec::new();
        for (_, s) in srvs.iter().filter(|(_, s)| s.priority == best) {
            let extra: Vec<Record> = answer
                .additionals()
                .iter()
                .filter(|r| r.name == s.target && r.record_type() == rtype)
                .cloned()
                .collect();
            let records = if extra.is_empty() {
                let target = self
                    .inner
                    .lookup(s.target.clone(), rtype)
                    .await
                    .map_err(|e| format!("SRV target {}: {e}", s.target))?;
                target.answers().to_vec()
            } else {
                extra
            };
            ttl = ttl.min(min_ttl(&records));
            out.extend(addresses(&records).map(|ip| Destination {
                address: SocketAddr::new(ip, s.port),
                weight: Some(u32::from(s.weight)),
            }));
        }
        Ok((out, ttl))
    }
}

fn addresses(records: &[Record]) -> impl Iterator<Item = IpAddr> + '_ {
    records.iter().filter_map(|r| match &r.data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    })
}

/// The smallest TTL of the records (0 without any: re-resolved at `min_ttl`).
fn min_ttl(records: &[Record]) -> Duration {
    Duration::from_secs(u64::from(
        records.iter().map(|r| r.ttl).min().unwrap_or_default(),
    ))
}
