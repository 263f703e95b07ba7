//! BGP announcement decisions (issue 16), sans I/O: which VIPs this director announces
//! and why the others are withdrawn. The shell that writes the routes is
//! [`crate::announce_worker`]; the director calls [`decide`] whenever something it reads
//! changed and hands the outcome over.
//!
//! A VIP is announced iff every announced virtual server on it is healthy here: quorum
//! met, the datapath programmed, not drained whole, the daemon not stopping. One unhealthy
//! port withdraws the address: the router sends whole addresses, not ports, and a flow of
//! the broken port sent here would fail where another director serves it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Why a virtual server is announced or withdrawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    Healthy,
    /// No quorum decision yet (at start, before the first checks).
    QuorumPending,
    QuorumLost,
    /// Every real server is drained by the operator (graceful removal of this director).
    Drained,
    /// IPVS cannot be programmed, or a write waits for a retry.
    Datapath(String),
    /// The daemon is stopping (withdraw first, then stop).
    Stopping,
    /// Healthy itself, but another announced virtual server on the same VIP is not.
    Sibling(String),
}

impl Why {
    /// The reason as a metrics label value.
    pub fn code(&self) -> &'static str {
        match self {
            Why::Healthy => "healthy",
            Why::QuorumPending => "quorum_pending",
            Why::QuorumLost => "quorum_lost",
            Why::Drained => "drained",
            Why::Datapath(_) => "datapath",
            Why::Stopping => "stopping",
            Why::Sibling(_) => "sibling",
        }
    }
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Healthy => f.write_str("healthy"),
            Why::QuorumPending => f.write_str("quorum pending"),
            Why::QuorumLost => f.write_str("quorum lost"),
            Why::Drained => f.write_str("drained"),
            Why::Datapath(why) => write!(f, "datapath not programmed: {why}"),
            Why::Stopping => f.write_str("stopping"),
            Why::Sibling(name) => write!(
                f,
                "virtual server {name} on the same address is not healthy"
            ),
        }
    }
}

/// What the decision reads of one announced virtual server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input<'a> {
    pub name: &'a str,
    pub vip: IpAddr,
    /// The quorum as the policy decided it (`None`: undecided).
    pub quorum: Option<bool>,
    /// It has real servers and all of them are drained.
    pub drained: bool,
}

/// The verdict on one virtual server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub name: String,
    pub vip: IpAddr,
    pub announced: bool,
    pub why: Why,
}

/// Why `input` alone would be withdrawn, or [`Why::Healthy`]. The daemon's state first,
/// then the datapath (nothing here can serve), then the operator, then health.
pub fn service_why(input: &Input<'_>, datapath: Option<&str>, stopping: bool) -> Why {
    if stopping {
        Why::Stopping
    } else if let Some(why) = datapath {
        Why::Datapath(why.to_string())
    } else if input.drained {
        Why::Drained
    } else {
        match input.quorum {
            Some(true) => Why::Healthy,
            Some(false) => Why::QuorumLost,
            None => Why::QuorumPending,
        }
    }
}

/// The verdict on every announced virtual server, in input order. `datapath`: why the
/// datapath is not programmed, if it is not.
pub fn decide(inputs: &[Input<'_>], datapath: Option<&str>, stopping: bool) -> Vec<Verdict> {
    let whys: Vec<Why> = inputs
        .iter()
        .map(|i| service_why(i, datapath, stopping))
        .collect();
    // The first unhealthy virtual server of each VIP withdraws it for all.
    let mut blocker: BTreeMap<IpAddr, &str> = BTreeMap::new();
    for (i, why) in inputs.iter().zip(&whys) {
        if *why != Why::Healthy {
            blocker.entry(i.vip).or_insert(i.name);
        }
    }
    inputs
        .iter()
        .zip(whys)
        .map(|(i, why)| {
            let why = match (why, blocker.get(&i.vip)) {
                (Why::Healthy, Some(other)) => Why::Sibling((*other).to_string()),
                (why, _) => why,
            };
            Verdict {
                name: i.name.to_string(),
                vip: i.vip,
                announced: why == Why::Healthy,
                why,
            }
        })
        .collect()
}

/// The VIPs whose routes must be in the table.
pub fn routes(verdicts: &[Verdict]) -> BTreeSet<IpAddr> {
    verdicts
        .iter()
        .filter(|v| v.announced)
        .map(|v| v.vip)
        .collect()
}

/// What to change so that `present` becomes `desired`: (to add, to remove).
pub fn plan(desired: &BTreeSet<IpAddr>, present: &BTreeSet<IpAddr>) -> (Vec<IpAddr>, Vec<IpAddr>) {
    (
        desired.difference(present).copied().collect(),
        present.difference(desired).copied().collect(),
    )
}

/// Whether an operator's drain must wait before it reaches IPVS: it drains the whole
/// virtual server while its VIP is announced. Withdrawing first lets the routers move
/// new flows elsewhere before this director stops taking them.
pub fn hold_drain(announced_before: bool, drained_now: bool) -> bool {
    announced_before && drained_now
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn input<'a>(name: &'a str, vip: &str, quorum: Option<bool>, drained: bool) -> Input<'a> {
        Input {
            name,
            vip: ip(vip),
            quorum,
            drained,
        }
    }

    #[test]
    fn announced_only_when_healthy_here() {
        let ok = input("web", "192.0.2.1", Some(true), false);
        assert_eq!(service_why(&ok, None, false), Why::Healthy);
        assert_eq!(
            service_why(&input("web", "192.0.2.1", Some(false), false), None, false),
            Why::QuorumLost
        );
        assert_eq!(
            service_why(&input("web", "192.0.2.1", None, false), None, false),
            Why::QuorumPending
        );
        assert_eq!(
            service_why(&input("web", "192.0.2.1", Some(true), true), None, false),
            Why::Drained
        );
        assert_eq!(
            service_why(&ok, Some("IPVS is not available"), false),
            Why::Datapath("IPVS is not available".into())
        );
        assert_eq!(service_why(&ok, None, true), Why::Stopping);
        // Stopping outranks the rest, then the datapath, then the operator.
        let all_bad = input("web", "192.0.2.1", Some(false), true);
        assert_eq!(service_why(&all_bad, Some("x"), true), Why::Stopping);
        assert_eq!(
            service_why(&all_bad, Some("x"), false),
            Why::Datapath("x".into())
        );
        assert_eq!(service_why(&all_bad, None, false), Why::Drained);
    }

    #[test]
    fn one_unhealthy_port_withdraws_its_address() {
        let inputs = [
            input("web-80", "192.0.2.1", Some(true), false),
            input("web-443", "192.0.2.1", Some(false), false),
            input("api", "192.0.2.2", Some(true), false),
        ];
        let v = decide(&inputs, None, false);
        assert!(!v[0].announced);
        assert_eq!(v[0].why, Why::Sibling("web-443".into()));
        assert_eq!(v[1].why, Why::QuorumLost);
        assert!(v[2].announced);
        assert_eq!(routes(&v), BTreeSet::from([ip("192.0.2.2")]));
        assert_eq!(
            v[0].why.to_string(),
            "virtual server web-443 on the same address is not healthy"
        );
    }

    #[test]
    fn nothing_is_announced_without_a_datapath_or_while_stopping() {
        let inputs = [input("web", "2001:db8::1", Some(true), false)];
        assert_eq!(
            routes(&decide(&inputs, None, false)),
            BTreeSet::from([ip("2001:db8::1")])
        );
        assert!(routes(&decide(&inputs, Some("no IPVS"), false)).is_empty());
        assert!(routes(&decide(&inputs, None, true)).is_empty());
    }

    #[test]
    fn plan_adds_and_removes_the_difference() {
        let desired = BTreeSet::from([ip("192.0.2.1"), ip("192.0.2.2")]);
        let present = BTreeSet::from([ip("192.0.2.2"), ip("192.0.2.9")]);
        assert_eq!(
            plan(&desired, &present),
            (vec![ip("192.0.2.1")], vec![ip("192.0.2.9")])
        );
        // A crash's leftovers are removed at start: present, not desired.
        assert_eq!(plan(&BTreeSet::new(), &present).1.len(), 2);
        assert_eq!(plan(&desired, &desired), (vec![], vec![]));
    }

    #[test]
    fn a_whole_drain_of_an_announced_service_waits() {
        assert!(hold_drain(true, true));
        assert!(!hold_drain(false, true));
        assert!(!hold_drain(true, false));
    }
}
