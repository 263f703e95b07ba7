//! From what the operator configured and what the health checks say to what IPVS should
//! hold for one virtual service. Pure: no kernel, no clock; the caller keeps the one piece
//! of memory the rules need (whether the service had quorum last time).
//!
//! # Rules
//!
//! While the service has quorum (or has no sorry server), each real server gets:
//!
//! | health | drained | result |
//! | --- | --- | --- |
//! | up | no | its configured weight |
//! | up | yes | weight 0, kept: no new connections, existing ones finish |
//! | down | either | removed; with `inhibit_on_failure` kept with weight 0 instead |
//! | unknown | either | *unsettled*: left as the kernel has it; if the kernel does not have it, added as if its health were the `assume_up` guess |
//!
//! Under the `mh` scheduler every configured real server is kept, weight 0 when the rules
//! above would remove it, and in the configured order: its table depends on the order
//! the destinations were added ([`keeps_every_real_server`]).
//!
//! "Unknown" is the time between start (or a config reload that added the server) and its
//! check's first verdict. Leaving such a server as the kernel has it is what makes a
//! restart invisible: the kernel's table survives the director, and nothing is written
//! until a check says something that differs from it.
//!
//! # Quorum and the sorry server
//!
//! A real server *counts* when it is up, not drained and has a configured weight above 0
//! (a weight-0 server takes no new connections, so it cannot carry a service). With
//! `quorum` Q and `hysteresis` H, as keepalived does (`update_quorum_state` in
//! `check/ipwrapper.c`, counting servers where keepalived sums weights):
//!
//! * while the service **has** quorum, it loses it when `counted < Q - H`, or when no
//!   server counts at all (so Q = 0 still means "down when nothing is up");
//! * while it **has lost** quorum, it regains it when `counted >= Q + H` and at least one
//!   server counts;
//! * with no previous state (first computation), it has quorum when `counted >= Q` and
//!   `counted > 0`.
//!
//! With `quorum_by_weight` (keepalived's rule, the importer sets it) a counted server adds
//! its configured weight instead of 1, and Q, H and the cap below are in weight units.
//!
//! One deliberate difference from keepalived: the regain threshold is capped at the number
//! of real servers that could count (configured weight above 0, not drained), though never
//! below Q. Without the
//! cap, Q + H above that number (say Q = 3, H = 1 with three servers) would keep the
//! service on its sorry server forever once it lost quorum.
//!
//! While servers are unknown the count is a range: unknowns as down give the least,
//! unknowns as up the most. If both ends give the same answer, that is the answer;
//! otherwise the quorum is *undecided* and the service stays on whichever side the kernel
//! is: if the kernel has the sorry server, it stays and no unknown server is added
//! (a restart while on the sorry server writes nothing); if not, the sorry server is not
//! added and unknown servers get their `assume_up` fallback.
//!
//! While quorum is lost and a sorry server is configured, the sorry server is installed
//! (the service's forwarding, weight 1) and the real servers are withdrawn: removed, or
//! kept with weight 0 under `inhibit_on_failure`. This is keepalived's behaviour
//! (`perform_quorum_state(vs, false)` after adding the sorry server), and the reason for it
//! holds here too: a pool below quorum is assumed unable to carry the load, and clients
//! should see one consistent answer (the sorry page) rather than a mix. When quorum
//! returns the real servers come back as their health says and the sorry server is
//! withdrawn. Without a sorry server, losing quorum changes nothing in the table (it is
//! still reported, e.g. for VRRP tracking). The reconciler adds before it deletes, so a
//! swap in either direction never leaves the service without a destination.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::model::{Destination, DestinationKey, ForwardMethod, Service, ServiceKey, Tunnel};
use crate::reconcile::DesiredService;

/// What the checks say about a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// The check passes (or the server has no check).
    Up,
    /// The check fails.
    Down,
    /// No verdict yet. `assume_up` is the check's initial state: used only to decide
    /// whether to add a server the kernel does not have yet.
    Unknown {
        /// Treat as up when the kernel does not have the server.
        assume_up: bool,
    },
}

/// A real server as configured, with its current health and operator drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    /// Address and port.
    pub addr: SocketAddr,
    /// Configured weight.
    pub weight: u32,
    /// Forwarding method.
    pub forward: ForwardMethod,
    /// Upper connection threshold (0 = none).
    pub upper_threshold: u32,
    /// Lower connection threshold (0 = none).
    pub lower_threshold: u32,
    /// Tunnel settings (for [`ForwardMethod::Tunnel`]).
    pub tunnel: Tunnel,
    /// What the checks say.
    pub health: Health,
    /// Drained by the operator: weight 0, kept.
    pub drained: bool,
    /// This server's own `inhibit_on_failure`; `None` takes the service's.
    pub inhibit_on_failure: Option<bool>,
}

impl RealServer {
    /// An up, undrained real server with no thresholds.
    pub fn new(addr: SocketAddr, weight: u32, forward: ForwardMethod) -> RealServer {
        RealServer {
            addr,
            weight,
            forward,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel: Tunnel::default(),
            health: Health::Up,
            drained: false,
            inhibit_on_failure: None,
        }
    }

    /// The same server with `health`.
    pub fn with_health(mut self, health: Health) -> RealServer {
        self.health = health;
        self
    }

    /// The same server, drained or not.
    pub fn drained(mut self, drained: bool) -> RealServer {
        self.drained = drained;
        self
    }

    fn destination(&self, weight: u32) -> Destination {
        Destination {
            addr: self.addr,
            forward: self.forward,
            weight,
            upper_threshold: self.upper_threshold,
            lower_threshold: self.lower_threshold,
            tunnel: self.tunnel,
        }
    }

    /// Could carry traffic if healthy: a weight and no drain.
    fn eligible(&self) -> bool {
        self.weight > 0 && !self.drained
    }

    /// What this server adds to the quorum count when it counts.
    fn units(&self, by_weight: bool) -> u32 {
        if by_weight { self.weight } else { 1 }
    }
}

/// The sorry server: installed while quorum is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SorryServer {
    /// Address and port.
    pub addr: SocketAddr,
    /// The service's forwarding method.
    pub forward: ForwardMethod,
}

/// Everything the rules need about one virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePolicy {
    /// The service's settings (key, scheduler, flags, persistence).
    pub service: Service,
    /// Its real servers.
    pub reals: Vec<RealServer>,
    /// Healthy real servers needed (see the module doc).
    pub quorum: u32,
    /// Hysteresis around the quorum.
    pub hysteresis: u32,
    /// The sorry server, if any.
    pub sorry_server: Option<SorryServer>,
    /// The sorry server's tunnel settings (for [`ForwardMethod::Tunnel`]).
    pub sorry_tunnel: Tunnel,
    /// Failed real servers stay with weight 0 instead of being removed (unless a real
    /// server says otherwise).
    pub inhibit_on_failure: bool,
    /// The quorum counts configured weights, not servers (keepalived's rule).
    pub quorum_by_weight: bool,
}

impl ServicePolicy {
    /// A service with quorum 1, no hysteresis, no sorry server, no inhibit.
    pub fn new(service: Service, reals: Vec<RealServer>) -> ServicePolicy {
        ServicePolicy {
            service,
            reals,
            quorum: 1,
            hysteresis: 0,
            sorry_server: None,
            sorry_tunnel: Tunnel::default(),
            inhibit_on_failure: false,
            quorum_by_weight: false,
        }
    }
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// What the kernel should hold for the service.
    pub desired: DesiredService,
    /// `Some(true)`: has quorum; `Some(false)`: lost; `None`: undecided (unknown health).
    /// Pass it back as `previous` next time.
    pub quorum: Option<bool>,
    /// Real servers that count (up, not drained, weight above 0), unknowns not included;
    /// their summed weights with `quorum_by_weight`.
    pub counted: u32,
    /// Real servers whose health is unknown.
    pub unknown: u32,
    /// The sorry server is (to be) installed, the real servers withdrawn.
    pub sorry_active: bool,
}

/// Quorum after this evaluation given the previous state, for a known count.
fn quorum_for(counted: u32, eligible: u32, q: u32, h: u32, previous: Option<bool>) -> bool {
    if counted == 0 {
        return false;
    }
    match previous {
        Some(true) => counted >= q.saturating_sub(h),
        Some(false) => {
            let regain = q.saturating_add(h).min(eligible.max(q));
            counted >= regain
        }
        None => counted >= q,
    }
}

/// The desired table entry for one service, from its configuration, health, drains and
/// the quorum state `previous` returned last time (`None` at first).
pub fn evaluate(policy: &ServicePolicy, previous: Option<bool>) -> Evaluation {
    let mut counted = 0u32;
    let mut unknown_eligible = 0u32;
    let mut unknown = 0u32;
    let mut eligible = 0u32;
    let by_weight = policy.quorum_by_weight;
    for r in &policy.reals {
        let units = r.units(by_weight);
        if r.eligible() {
            eligible = eligible.saturating_add(units);
        }
        match r.health {
            Health::Up if r.eligible() => counted = counted.saturating_add(units),
            Health::Unknown { .. } => {
                unknown += 1;
                if r.eligible() {
                    unknown_eligible = unknown_eligible.saturating_add(units);
                }
            }
            _ => {}
        }
    }
    let (q, h) = (policy.quorum, policy.hysteresis);
    let low = quorum_for(counted, eligible, q, h, previous);
    let high = quorum_for(
        counted.saturating_add(unknown_eligible),
        eligible,
        q,
        h,
        previous,
    );
    let quorum = (low == high).then_some(low);

    let mut desired = DesiredService::new(policy.service.clone());
    let keep_all = keeps_every_real_server(&policy.service);
    if keep_all {
        desired.order = policy
            .reals
            .iter()
            .map(|r| DestinationKey(r.addr))
            .collect();
    }
    let withdraw = quorum == Some(false) && policy.sorry_server.is_some();
    for r in &policy.reals {
        let key = DestinationKey(r.addr);
        let inhibit = keep_all || r.inhibit_on_failure.unwrap_or(policy.inhibit_on_failure);
        if withdraw {
            if inhibit {
                desired.destinations.insert(key, r.destination(0));
            }
            continue;
        }
        match r.health {
            Health::Up => {
                let w = if r.drained { 0 } else { r.weight };
                desired.destinations.insert(key, r.destination(w));
            }
            Health::Down => {
                if inhibit {
                    desired.destinations.insert(key, r.destination(0));
                }
            }
            Health::Unknown { assume_up } => {
                let fallback = if assume_up {
                    Some(r.destination(if r.drained { 0 } else { r.weight }))
                } else if inhibit {
                    Some(r.destination(0))
                } else {
                    None
                };
                desired.unsettled.insert(key, fallback);
            }
        }
    }
    if let Some(sorry) = policy.sorry_server {
        let mut d = Destination::new(sorry.addr, sorry.forward).weight(1);
        d.tunnel = policy.sorry_tunnel;
        match quorum {
            Some(false) => {
                desired.unsettled.remove(&d.key());
                desired.destinations.insert(d.key(), d);
            }
            Some(true) => {}
            // Undecided: keep it if it is there; do not add it. A real server at the
            // same address is desired on its own terms and takes precedence.
            None => {
                if !desired.destinations.contains_key(&d.key()) {
                    desired.unsettled.entry(d.key()).or_insert(None);
                    desired.sorry_undecided = Some(d.key());
                }
            }
        }
    }
    Evaluation {
        desired,
        quorum,
        counted,
        unknown,
        sorry_active: withdraw,
    }
}

/// Whether the service keeps every configured real server in IPVS, weight 0 while down,
/// drained or withdrawn, in the configured order, whatever `inhibit_on_failure` says.
///
/// Only `mh` needs it: its lookup table is built from the service's destination list in
/// list order (`ip_vs_mh_permutate` and `ip_vs_mh_populate` in `ip_vs_mh.c` walk
/// `svc->destinations`, each destination claiming its next preferred slot in turn), and a
/// destination added back after a removal goes to the head of that list
/// (`__ip_vs_update_dest`: `list_add_rcu`). Two directors whose checks rose in another
/// order would then build different tables and send some flows elsewhere. A weight-0
/// destination takes no slot (`ds->turns < 1` is skipped), so keeping one is safe.
pub fn keeps_every_real_server(service: &Service) -> bool {
    service.scheduler == "mh"
}

/// Evaluates many services; `previous` maps a service key to its last quorum state.
pub fn evaluate_all<'a>(
    policies: impl IntoIterator<Item = &'a ServicePolicy>,
    previous: &BTreeMap<ServiceKey, Option<bool>>,
) -> BTreeMap<ServiceKey, Evaluation> {
    policies
        .into_iter()
        .map(|p| {
            let prev = previous.get(&p.service.key).copied().flatten();
            (p.service.key, evaluate(p, prev))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn svc() -> Service {
        Service::new(ServiceKey::tcp(sa("192.0.2.1:80")), "wrr")
    }

    fn real(i: u8, weight: u32, health: Health) -> RealServer {
        RealServer::new(
            SocketAddr::new([10, 0, 0, i].into(), 80),
            weight,
            ForwardMethod::Masquerade,
        )
        .with_health(health)
    }

    fn weights(e: &Evaluation) -> Vec<(u8, u32)> {
        e.desired
            .destinations
            .values()
            .map(|d| match d.addr.ip() {
                std::net::IpAddr::V4(a) => (a.octets()[3], d.weight),
                std::net::IpAddr::V6(_) => (0, d.weight),
            })
            .collect()
    }

    const SORRY: u8 = 99;

    fn sorry() -> SorryServer {
        SorryServer {
            addr: SocketAddr::new([10, 0, 0, SORRY].into(), 80),
            forward: ForwardMethod::Masquerade,
        }
    }

    const UP: Health = Health::Up;
    const DOWN: Health = Health::Down;
    const UNK_UP: Health = Health::Unknown { assume_up: true };
    const UNK_DOWN: Health = Health::Unknown { assume_up: false };

    #[test]
    fn healthy_get_their_weight_failed_are_removed() {
        let p = ServicePolicy::new(
            svc(),
            vec![real(1, 5, UP), real(2, 3, DOWN), real(3, 1, UP)],
        );
        let e = evaluate(&p, None);
        assert_eq!(weights(&e), vec![(1, 5), (3, 1)]);
        assert_eq!(e.quorum, Some(true));
        assert_eq!((e.counted, e.unknown), (2, 0));
        assert!(e.desired.unsettled.is_empty());
        assert_eq!(e.desired.service, svc());
    }

    #[test]
    fn inhibit_keeps_failed_with_weight_zero() {
        let mut p = ServicePolicy::new(svc(), vec![real(1, 5, UP), real(2, 3, DOWN)]);
        p.inhibit_on_failure = true;
        assert_eq!(weights(&evaluate(&p, None)), vec![(1, 5), (2, 0)]);
    }

    #[test]
    fn drained_is_kept_with_weight_zero_and_does_not_count() {
        let p = ServicePolicy::new(svc(), vec![real(1, 5, UP).drained(true), real(2, 3, UP)]);
        let e = evaluate(&p, None);
        assert_eq!(weights(&e), vec![(1, 0), (2, 3)]);
        assert_eq!(e.counted, 1);
        // A drained server that fails follows the failure rule.
        let p = ServicePolicy::new(svc(), vec![real(1, 5, DOWN).drained(true)]);
        assert!(evaluate(&p, None).desired.destinations.is_empty());
    }

    #[test]
    fn destination_carries_forwarding_thresholds_and_tunnel() {
        let mut r = real(1, 7, UP);
        r.forward = ForwardMethod::Tunnel;
        r.upper_threshold = 100;
        r.lower_threshold = 10;
        r.tunnel.port = 6080;
        let e = evaluate(&ServicePolicy::new(svc(), vec![r.clone()]), None);
        let d = &e.desired.destinations[&DestinationKey(r.addr)];
        assert_eq!(
            (d.forward, d.weight, d.upper_threshold, d.lower_threshold),
            (ForwardMethod::Tunnel, 7, 100, 10)
        );
        assert_eq!(d.tunnel.port, 6080);
    }

    #[test]
    fn weight_zero_server_does_not_count() {
        let p = ServicePolicy::new(svc(), vec![real(1, 0, UP)]);
        let e = evaluate(&p, None);
        assert_eq!(weights(&e), vec![(1, 0)]);
        assert_eq!((e.counted, e.quorum), (0, Some(false)));
    }

    #[test]
    fn unknown_is_unsettled_with_a_fallback() {
        let mut p = ServicePolicy::new(
            svc(),
            vec![
                real(1, 5, UNK_UP),
                real(2, 3, UNK_DOWN),
                real(3, 2, UNK_UP).drained(true),
            ],
        );
        let e = evaluate(&p, None);
        assert!(e.desired.destinations.is_empty());
        let u = &e.desired.unsettled;
        assert_eq!(u.len(), 3);
        assert_eq!(
            u[&DestinationKey(p.reals[0].addr)].as_ref().unwrap().weight,
            5
        );
        assert_eq!(u[&DestinationKey(p.reals[1].addr)], None);
        assert_eq!(
            u[&DestinationKey(p.reals[2].addr)].as_ref().unwrap().weight,
            0
        );
        assert_eq!((e.counted, e.unknown), (0, 3));
        // With inhibit the assumed-down fallback is weight 0.
        p.inhibit_on_failure = true;
        let e = evaluate(&p, None);
        let u = &e.desired.unsettled;
        assert_eq!(
            u[&DestinationKey(p.reals[1].addr)].as_ref().unwrap().weight,
            0
        );
    }

    /// (counted, previous) -> quorum, for Q = 3, H = 1 and 5 real servers.
    #[test]
    fn hysteresis_thresholds_exactly() {
        let q = |up: usize, prev: Option<bool>| {
            let reals = (0..5)
                .map(|i| real(i as u8 + 1, 1, if i < up { UP } else { DOWN }))
                .collect();
            let mut p = ServicePolicy::new(svc(), reals);
            p.quorum = 3;
            p.hysteresis = 1;
            evaluate(&p, prev).quorum.unwrap()
        };
        // First evaluation: plain threshold.
        assert_eq!(
            (0..=5).map(|n| q(n, None)).collect::<Vec<_>>(),
            [false, false, false, true, true, true]
        );
        // Up: lost only below Q - H = 2.
        assert_eq!(
            (0..=5).map(|n| q(n, Some(true))).collect::<Vec<_>>(),
            [false, false, true, true, true, true]
        );
        // Lost: regained only at Q + H = 4.
        assert_eq!(
            (0..=5).map(|n| q(n, Some(false))).collect::<Vec<_>>(),
            [false, false, false, false, true, true]
        );
    }

    #[test]
    fn hysteresis_walk_down_and_up() {
        let mut p = ServicePolicy::new(svc(), (1..=5).map(|i| real(i, 1, UP)).collect());
        p.quorum = 3;
        p.hysteresis = 1;
        p.sorry_server = Some(sorry());
        let mut prev = None;
        let mut seen = vec![];
        // 5 up, then fail one at a time, then recover one at a time.
        let ups = [5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5];
        for &n in &ups {
            for (i, r) in p.reals.iter_mut().enumerate() {
                r.health = if i < n { UP } else { DOWN };
            }
            let e = evaluate(&p, prev);
            prev = e.quorum;
            seen.push((n, e.quorum.unwrap(), e.sorry_active));
        }
        assert_eq!(
            seen,
            vec![
                (5, true, false),
                (4, true, false),
                (3, true, false),
                (2, true, false),
                (1, false, true),
                (0, false, true),
                (1, false, true),
                (2, false, true),
                (3, false, true),
                (4, true, false),
                (5, true, false),
            ]
        );
    }

    /// keepalived's rule (`quorum_by_weight`): live weights summed against Q and H, as
    /// `update_quorum_state` in keepalived's `check/ipwrapper.c`.
    #[test]
    fn quorum_by_weight_sums_live_weights() {
        // Weights 100, 50, 50, 10 (drained), 0; Q = 150, H = 20.
        let mut p = ServicePolicy::new(
            svc(),
            vec![
                real(1, 100, UP),
                real(2, 50, UP),
                real(3, 50, UP),
                real(4, 10, UP).drained(true),
                real(5, 0, UP),
            ],
        );
        p.quorum = 150;
        p.hysteresis = 20;
        p.quorum_by_weight = true;
        p.sorry_server = Some(sorry());
        let e = evaluate(&p, None);
        assert_eq!((e.counted, e.quorum), (200, Some(true)));
        // 100 + 50 = 150 >= Q: kept; 100 alone is below Q - H = 130: lost.
        p.reals[2].health = DOWN;
        let e = evaluate(&p, Some(true));
        assert_eq!((e.counted, e.quorum), (150, Some(true)));
        p.reals[1].health = DOWN;
        let e = evaluate(&p, Some(true));
        assert_eq!(
            (e.counted, e.quorum, e.sorry_active),
            (100, Some(false), true)
        );
        // Lost: 150 is below the regain threshold Q + H = 170; 200 regains.
        p.reals[1].health = UP;
        assert_eq!(evaluate(&p, Some(false)).quorum, Some(false));
        p.reals[2].health = UP;
        assert_eq!(evaluate(&p, Some(false)).quorum, Some(true));
        // By servers the same pool has 3 counted and Q = 150 is never met.
        p.quorum_by_weight = false;
        let e = evaluate(&p, None);
        assert_eq!((e.counted, e.quorum), (3, Some(false)));
    }

    #[test]
    fn quorum_by_weight_caps_the_regain_at_the_eligible_weight() {
        // Q = 100, H = 50, eligible weight 120: regains at 120, not 150.
        let mut p = ServicePolicy::new(svc(), vec![real(1, 100, DOWN), real(2, 20, UP)]);
        p.quorum = 100;
        p.hysteresis = 50;
        p.quorum_by_weight = true;
        assert_eq!(evaluate(&p, None).quorum, Some(false));
        p.reals[0].health = UP;
        assert_eq!(evaluate(&p, Some(false)).quorum, Some(true));
        // Unknown weight makes it undecided only when it matters.
        p.reals[1].health = UNK_UP;
        assert_eq!(evaluate(&p, Some(false)).quorum, None);
        assert_eq!(evaluate(&p, None).quorum, Some(true));
    }

    #[test]
    fn inhibit_on_failure_per_real_server_overrides_the_service() {
        let mut p = ServicePolicy::new(
            svc(),
            vec![real(1, 5, DOWN), real(2, 5, DOWN), real(3, 5, UP)],
        );
        p.reals[0].inhibit_on_failure = Some(true);
        // Service off: only the server that says so stays, at weight 0.
        assert_eq!(weights(&evaluate(&p, None)), vec![(1, 0), (3, 5)]);
        // Service on: a server that says false is removed.
        p.inhibit_on_failure = true;
        p.reals[0].inhibit_on_failure = Some(false);
        assert_eq!(weights(&evaluate(&p, None)), vec![(2, 0), (3, 5)]);
        // Withdrawn for the sorry server: the same per-server choice.
        p.quorum = 3;
        p.sorry_server = Some(sorry());
        let e = evaluate(&p, None);
        assert!(e.sorry_active);
        assert_eq!(weights(&e), vec![(2, 0), (3, 0), (SORRY, 1)]);
    }

    #[test]
    fn mh_keeps_every_real_server_in_configured_order() {
        // ip_vs_mh.c builds the lookup table from the destination list in list order, and
        // a destination added back goes to the list's head: a server removed on failure
        // and re-added would give directors whose checks rose in another order different
        // tables. Kept with weight 0 it keeps its place and takes no slot.
        let mut service = svc();
        service.scheduler = "mh".into();
        let mut p = ServicePolicy::new(
            service,
            vec![
                real(3, 5, DOWN),
                real(1, 5, UP).drained(true),
                real(2, 5, UNK_DOWN),
                real(4, 5, UP),
            ],
        );
        // Whatever inhibit_on_failure says, on the service or on a server.
        p.reals[0].inhibit_on_failure = Some(false);
        let e = evaluate(&p, None);
        assert_eq!(weights(&e), vec![(1, 0), (3, 0), (4, 5)]);
        // Unknown and assumed down: added at weight 0 if the kernel lacks it.
        let unk = &e.desired.unsettled[&DestinationKey(p.reals[2].addr)];
        assert_eq!(unk.as_ref().map(|d| d.weight), Some(0));
        let order: Vec<_> = e.desired.order.iter().map(|k| k.0).collect();
        let want: Vec<_> = p.reals.iter().map(|r| r.addr).collect();
        assert_eq!(order, want, "the configured order, not the address order");
        // Withdrawn for the sorry server: kept at weight 0 too.
        p.quorum = 2;
        p.sorry_server = Some(sorry());
        p.reals[2].health = DOWN;
        let e = evaluate(&p, None);
        assert!(e.sorry_active);
        assert_eq!(
            weights(&e),
            vec![(1, 0), (2, 0), (3, 0), (4, 0), (SORRY, 1)]
        );
        // Other schedulers: no order, failed servers removed.
        p.service.scheduler = "wrr".into();
        let e = evaluate(
            &ServicePolicy::new(p.service.clone(), p.reals.clone()),
            None,
        );
        assert_eq!(weights(&e), vec![(1, 0), (4, 5)]);
        assert!(e.desired.order.is_empty());
    }

    #[test]
    fn quorum_zero_still_lost_when_nothing_is_up() {
        let mut p = ServicePolicy::new(svc(), vec![real(1, 1, DOWN)]);
        p.quorum = 0;
        p.sorry_server = Some(sorry());
        for prev in [None, Some(true), Some(false)] {
            let e = evaluate(&p, prev);
            assert_eq!(e.quorum, Some(false), "{prev:?}");
            assert_eq!(weights(&e), vec![(SORRY, 1)]);
        }
        p.reals[0].health = UP;
        assert_eq!(evaluate(&p, Some(false)).quorum, Some(true));
    }

    #[test]
    fn regain_threshold_is_capped_at_what_can_count() {
        // Q = 3, H = 1 with three servers: keepalived would need 4 to regain.
        let mut p = ServicePolicy::new(svc(), (1..=3).map(|i| real(i, 1, UP)).collect());
        p.quorum = 3;
        p.hysteresis = 1;
        p.sorry_server = Some(sorry());
        assert_eq!(evaluate(&p, Some(false)).quorum, Some(true));
        p.reals[2].health = DOWN;
        assert_eq!(evaluate(&p, Some(false)).quorum, Some(false));
        // Never below the quorum itself: with a drained server only 2 could count.
        p.reals[2].health = UP;
        p.reals[2].drained = true;
        assert_eq!(evaluate(&p, Some(false)).quorum, Some(false));
    }

    #[test]
    fn sorry_server_replaces_reals_while_quorum_is_lost() {
        let mut p = ServicePolicy::new(
            svc(),
            vec![real(1, 5, UP), real(2, 5, DOWN), real(3, 5, DOWN)],
        );
        p.quorum = 2;
        p.sorry_server = Some(sorry());
        let e = evaluate(&p, Some(true));
        assert_eq!(e.quorum, Some(false));
        // The one healthy server is withdrawn too: one consistent answer.
        assert_eq!(weights(&e), vec![(SORRY, 1)]);
        assert!(e.sorry_active);
        let d = &e.desired.destinations[&DestinationKey(sorry().addr)];
        assert_eq!(d.forward, ForwardMethod::Masquerade);
        // With inhibit, every real stays at weight 0 beside the sorry server.
        p.inhibit_on_failure = true;
        let e = evaluate(&p, Some(true));
        assert_eq!(weights(&e), vec![(1, 0), (2, 0), (3, 0), (SORRY, 1)]);
        assert!(e.sorry_active);
        // Back: sorry gone, reals as their health says.
        p.reals[1].health = UP;
        let e = evaluate(&p, Some(false));
        assert_eq!(e.quorum, Some(true));
        assert_eq!(weights(&e), vec![(1, 5), (2, 5), (3, 0)]);
        assert!(!e.sorry_active);
    }

    #[test]
    fn lost_quorum_without_sorry_server_changes_nothing() {
        let mut p = ServicePolicy::new(svc(), vec![real(1, 5, UP), real(2, 5, DOWN)]);
        p.quorum = 2;
        let e = evaluate(&p, Some(true));
        assert_eq!(e.quorum, Some(false));
        assert_eq!(weights(&e), vec![(1, 5)]);
        assert!(!e.sorry_active);
    }

    #[test]
    fn sorry_server_uses_the_given_forwarding_and_tunnel() {
        let mut p = ServicePolicy::new(svc(), vec![real(1, 5, DOWN)]);
        p.sorry_server = Some(SorryServer {
            addr: sa("10.0.0.99:8080"),
            forward: ForwardMethod::DirectRoute,
        });
        p.sorry_tunnel.port = 6080;
        let e = evaluate(&p, None);
        let d = e.desired.destinations.values().next().unwrap();
        assert_eq!(
            (d.forward, d.weight, d.addr),
            (ForwardMethod::DirectRoute, 1, sa("10.0.0.99:8080"))
        );
        assert_eq!(d.tunnel.port, 6080, "the sorry server's tunnel settings");
    }

    #[test]
    fn unknown_health_makes_quorum_undecided_only_when_it_matters() {
        let mut p = ServicePolicy::new(
            svc(),
            vec![real(1, 1, UP), real(2, 1, UNK_UP), real(3, 1, UNK_DOWN)],
        );
        p.quorum = 2;
        p.sorry_server = Some(sorry());
        // 1 known up, up to 3: undecided; sorry server left as the kernel has it.
        let e = evaluate(&p, None);
        assert_eq!(e.quorum, None);
        assert_eq!(weights(&e), vec![(1, 1)]);
        assert_eq!(e.desired.unsettled[&DestinationKey(sorry().addr)], None);
        assert_eq!(
            e.desired.sorry_undecided,
            Some(DestinationKey(sorry().addr))
        );
        assert_eq!(e.desired.unsettled.len(), 3);
        assert!(!e.sorry_active);
        // Quorum of 1 is met whatever the unknowns turn out to be: decided.
        p.quorum = 1;
        let e = evaluate(&p, None);
        assert_eq!(e.quorum, Some(true));
        assert!(
            !e.desired
                .unsettled
                .contains_key(&DestinationKey(sorry().addr))
        );
        // Quorum of 4 can't be met even with every unknown up: decided lost, withdraw.
        p.quorum = 4;
        let e = evaluate(&p, None);
        assert_eq!(e.quorum, Some(false));
        assert_eq!(weights(&e), vec![(SORRY, 1)]);
        assert!(e.desired.unsettled.is_empty());
    }

    #[test]
    fn undecided_without_sorry_server_leaves_no_sorry_entry() {
        let mut p = ServicePolicy::new(svc(), vec![real(1, 1, UNK_UP)]);
        p.quorum = 1;
        let e = evaluate(&p, None);
        assert_eq!(e.quorum, None);
        assert_eq!(e.desired.unsettled.len(), 1);
    }

    #[test]
    fn sorry_server_at_a_real_servers_address() {
        let mut p = ServicePolicy::new(svc(), vec![real(1, 5, UP), real(SORRY, 5, UP)]);
        p.quorum = 2;
        p.sorry_server = Some(sorry());
        // Quorum up: the real server's own entry.
        assert_eq!(weights(&evaluate(&p, None)), vec![(1, 5), (SORRY, 5)]);
        p.reals[0].health = DOWN;
        // Lost: the sorry entry wins the shared key.
        assert_eq!(weights(&evaluate(&p, Some(true))), vec![(SORRY, 1)]);
    }

    #[test]
    fn evaluate_all_threads_previous_states() {
        let a = ServicePolicy::new(svc(), vec![real(1, 1, UP)]);
        let mut b = ServicePolicy::new(
            Service::new(ServiceKey::tcp(sa("192.0.2.2:80")), "rr"),
            vec![real(1, 1, UP), real(2, 1, DOWN)],
        );
        b.quorum = 2;
        b.hysteresis = 1;
        let prev = BTreeMap::from([(b.service.key, Some(true))]);
        let all = evaluate_all([&a, &b], &prev);
        assert_eq!(all.len(), 2);
        // b keeps quorum thanks to hysteresis (1 >= 2 - 1); a starts fresh.
        assert_eq!(all[&b.service.key].quorum, Some(true));
        assert_eq!(all[&a.service.key].quorum, Some(true));
        let none = evaluate_all([&b], &BTreeMap::new());
        assert_eq!(none[&b.service.key].quorum, Some(false));
    }

    /// Every combination of health, drain, inhibit and weight for one server, checked
    /// against the rule table in the module doc (quorum 0 so the quorum never withdraws).
    #[test]
    fn exhaustive_single_server_table() {
        for health in [UP, DOWN, UNK_UP, UNK_DOWN] {
            for drained in [false, true] {
                for inhibit in [false, true] {
                    for weight in [0, 3] {
                        let mut p = ServicePolicy::new(
                            svc(),
                            vec![real(1, weight, health).drained(drained)],
                        );
                        p.quorum = 0;
                        p.inhibit_on_failure = inhibit;
                        let e = evaluate(&p, Some(true));
                        let key = DestinationKey(p.reals[0].addr);
                        let settled = e.desired.destinations.get(&key).map(|d| d.weight);
                        let unsettled = e.desired.unsettled.get(&key);
                        let serving = if drained { 0 } else { weight };
                        let ctx =
                            format!("{health:?} drained={drained} inhibit={inhibit} w={weight}");
                        match health {
                            Health::Up => {
                                assert_eq!(settled, Some(serving), "{ctx}");
                                assert!(unsettled.is_none(), "{ctx}");
                            }
                            Health::Down => {
                                assert_eq!(settled, inhibit.then_some(0), "{ctx}");
                                assert!(unsettled.is_none(), "{ctx}");
                            }
                            Health::Unknown { assume_up } => {
                                assert_eq!(settled, None, "{ctx}");
                                let fallback = unsettled.expect(&ctx).as_ref().map(|d| d.weight);
                                let want = if assume_up {
                                    Some(serving)
                                } else {
                                    inhibit.then_some(0)
                                };
                                assert_eq!(fallback, want, "{ctx}");
                            }
                        }
                    }
                }
            }
        }
    }
}
