//! Property tests of the pure layers: whatever the desired and kernel tables, the diff
//! converges in one application, never touches a service it does not own, never
//! empties a service on the way, and the policy never gives weight to what it must not.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use proptest::prelude::*;
use vigil_ipvs::codec::Request;
use vigil_ipvs::policy::{Health, RealServer, ServicePolicy, SorryServer, evaluate};
use vigil_ipvs::reconcile::{DesiredService, DesiredTable, KernelService, KernelTable, diff};
use vigil_ipvs::{Destination, DestinationKey, ForwardMethod, Service, ServiceKey};

// Small key spaces so that desired and kernel tables overlap often.
fn skey(n: u8) -> ServiceKey {
    ServiceKey::tcp(SocketAddr::new(IpAddr::V4([192, 0, 2, n].into()), 80))
}

fn daddr(n: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4([10, 0, 0, n].into()), 80)
}

fn forward() -> impl Strategy<Value = ForwardMethod> {
    prop_oneof![
        Just(ForwardMethod::Masquerade),
        Just(ForwardMethod::DirectRoute),
        Just(ForwardMethod::Tunnel),
    ]
}

fn dest() -> impl Strategy<Value = Destination> {
    (0u8..6, 0u32..3, forward(), 0u32..2).prop_map(|(a, w, f, t)| {
        let mut d = Destination::new(daddr(a), f).weight(w);
        d.upper_threshold = t * 100;
        d
    })
}

fn service(n: u8) -> impl Strategy<Value = Service> {
    prop_oneof![Just("rr"), Just("wrr")].prop_map(move |s| Service::new(skey(n), s))
}

fn kernel_service(n: u8) -> impl Strategy<Value = KernelService> {
    (service(n), proptest::collection::vec(dest(), 0..5)).prop_map(|(service, ds)| KernelService {
        service,
        destinations: ds.into_iter().map(|d| (d.key(), d)).collect(),
    })
}

fn desired_service(n: u8) -> impl Strategy<Value = DesiredService> {
    (
        service(n),
        proptest::collection::vec(dest(), 0..5),
        proptest::collection::vec((0u8..6, proptest::option::of(dest())), 0..3),
        proptest::option::of(0u8..6),
    )
        .prop_map(|(service, ds, unsettled, sorry)| {
            let mut d = DesiredService::new(service);
            for x in ds {
                d = d.with(x);
            }
            for (a, fallback) in unsettled {
                // A fallback is for the same address.
                let fallback = fallback.map(|mut f| {
                    f.addr = daddr(a);
                    f
                });
                d.unsettled.insert(DestinationKey(daddr(a)), fallback);
            }
            d.sorry_undecided = sorry.map(|a| DestinationKey(daddr(a)));
            d
        })
}

fn tables() -> impl Strategy<Value = (DesiredTable, KernelTable, BTreeSet<ServiceKey>)> {
    let desired = proptest::collection::btree_set(0u8..6, 0..5).prop_flat_map(|keys| {
        keys.into_iter()
            .map(desired_service)
            .collect::<Vec<_>>()
            .prop_map(|v| v.into_iter().map(|d| (d.service.key, d)).collect())
    });
    let kernel = proptest::collection::btree_set(0u8..6, 0..5).prop_flat_map(|keys| {
        keys.into_iter()
            .map(kernel_service)
            .collect::<Vec<_>>()
            .prop_map(|v| v.into_iter().map(|k| (k.service.key, k)).collect())
    });
    let owned = proptest::collection::btree_set((0u8..6).prop_map(skey), 0..4);
    (desired, kernel, owned)
}

/// The kernel's semantics for the writes a plan contains; an invalid write is a bug of
/// the diff (it would fail in the kernel).
fn apply(table: &mut KernelTable, r: &Request) -> Result<(), String> {
    let missing = || format!("{r:?}: no such service");
    match r {
        Request::AddService(s) => {
            if table.contains_key(&s.key) {
                return Err(format!("{r:?}: exists"));
            }
            table.insert(
                s.key,
                KernelService {
                    service: s.clone(),
                    destinations: BTreeMap::new(),
                },
            );
        }
        Request::UpdateService(s) => table.get_mut(&s.key).ok_or_else(missing)?.service = s.clone(),
        Request::DeleteService(k) => {
            table.remove(k).ok_or_else(missing)?;
        }
        Request::AddDestination(k, d) => {
            let s = table.get_mut(k).ok_or_else(missing)?;
            if s.destinations.insert(d.key(), d.clone()).is_some() {
                return Err(format!("{r:?}: exists"));
            }
        }
        Request::UpdateDestination(k, d) => {
            let s = table.get_mut(k).ok_or_else(missing)?;
            let have = s
                .destinations
                .get_mut(&d.key())
                .ok_or("no such destination")?;
            if have == d {
                return Err(format!("{r:?}: changes nothing"));
            }
            *have = d.clone();
        }
        Request::DeleteDestination(k, d) => {
            let s = table.get_mut(k).ok_or_else(missing)?;
            s.destinations.remove(d).ok_or("no such destination")?;
        }
        other => return Err(format!("{other:?}: not a reconciler write")),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn diff_converges_and_leaves_foreign_services((desired, kernel, owned) in tables()) {
        let plan = diff(&desired, &kernel, &owned);
        let mut after = kernel.clone();
        for r in &plan.requests {
            let res = apply(&mut after, r);
            prop_assert!(res.is_ok(), "{:?}", res);
        }
        let mut owned_after = owned.clone();
        owned_after.extend(desired.keys().copied());
        prop_assert!(diff(&desired, &after, &owned_after).is_empty());
        for (k, s) in &kernel {
            if desired.contains_key(k) {
                continue;
            }
            if owned.contains(k) {
                prop_assert!(!after.contains_key(k), "owned {} not deleted", k);
            } else {
                prop_assert_eq!(after.get(k), Some(s), "foreign {} touched", k);
            }
        }
        for (k, d) in &desired {
            let got = &after[k];
            prop_assert_eq!(&got.service, &d.service);
            for (dk, dd) in &d.destinations {
                prop_assert_eq!(got.destinations.get(dk), Some(dd));
            }
            for (dk, have) in &got.destinations {
                if d.destinations.contains_key(dk) {
                    continue;
                }
                // Anything else is unsettled: kept as the kernel had it, or its fallback.
                let was = kernel.get(k).and_then(|s| s.destinations.get(dk));
                let fallback = d.unsettled.get(dk).cloned().flatten();
                prop_assert!(
                    d.unsettled.contains_key(dk)
                        && (was == Some(have) || fallback.as_ref() == Some(have)),
                    "{} {}: {:?}", k, dk, have
                );
            }
        }
    }

    /// Per service: the service add first, then destination adds and edits, deletes
    /// last. So a swap (reals out, sorry server in, or back) never leaves a service with
    /// no destination between two writes.
    #[test]
    fn adds_before_deletes_within_a_service((desired, kernel, owned) in tables()) {
        let plan = diff(&desired, &kernel, &owned);
        let mut seen_delete: BTreeSet<ServiceKey> = BTreeSet::new();
        let mut seen_dest: BTreeSet<ServiceKey> = BTreeSet::new();
        for r in &plan.requests {
            match r {
                Request::AddService(s) | Request::UpdateService(s) => {
                    prop_assert!(!seen_dest.contains(&s.key), "{:?} after its destinations", r);
                }
                Request::AddDestination(k, _) | Request::UpdateDestination(k, _) => {
                    prop_assert!(!seen_delete.contains(k), "{:?} after a delete", r);
                    seen_dest.insert(*k);
                }
                Request::DeleteDestination(k, _) => {
                    seen_delete.insert(*k);
                    seen_dest.insert(*k);
                }
                _ => {}
            }
        }
    }

    #[test]
    fn diff_is_deterministic((desired, kernel, owned) in tables()) {
        prop_assert_eq!(diff(&desired, &kernel, &owned), diff(&desired, &kernel, &owned));
    }
}

fn health() -> impl Strategy<Value = Health> {
    prop_oneof![
        Just(Health::Up),
        Just(Health::Down),
        any::<bool>().prop_map(|assume_up| Health::Unknown { assume_up }),
    ]
}

fn policy() -> impl Strategy<Value = ServicePolicy> {
    (
        proptest::collection::vec((0u32..4, health(), any::<bool>()), 0..7),
        0u32..5,
        0u32..3,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(reals, quorum, hysteresis, sorry, inhibit)| {
            let reals = reals
                .into_iter()
                .enumerate()
                .map(|(i, (w, h, drained))| {
                    RealServer::new(daddr(i as u8 + 1), w, ForwardMethod::Masquerade)
                        .with_health(h)
                        .drained(drained)
                })
                .collect();
            let mut p = ServicePolicy::new(Service::new(skey(1), "wrr"), reals);
            p.quorum = quorum;
            p.hysteresis = hysteresis;
            p.inhibit_on_failure = inhibit;
            p.sorry_server = sorry.then_some(SorryServer {
                addr: daddr(99),
                forward: ForwardMethod::Masquerade,
            });
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn policy_never_weights_what_it_must_not(
        p in policy(),
        previous in proptest::option::of(any::<bool>()),
    ) {
        let e = evaluate(&p, previous);
        prop_assert_eq!(&e, &evaluate(&p, previous), "deterministic");
        let sorry = DestinationKey(daddr(99));
        for r in &p.reals {
            let k = DestinationKey(r.addr);
            let d = e.desired.destinations.get(&k);
            if let Some(d) = d {
                prop_assert!(d.weight <= r.weight);
                if r.drained || r.health == Health::Down || e.sorry_active {
                    prop_assert_eq!(d.weight, 0, "{:?}", r);
                }
            }
            match r.health {
                Health::Down if !p.inhibit_on_failure => prop_assert!(d.is_none()),
                Health::Up if !e.sorry_active => prop_assert!(d.is_some()),
                Health::Unknown { .. } if !e.sorry_active => {
                    prop_assert!(e.desired.unsettled.contains_key(&k));
                }
                _ => {}
            }
        }
        if e.sorry_active {
            prop_assert_eq!(e.quorum, Some(false));
            let weighted: Vec<_> = e.desired.destinations.values().filter(|d| d.weight > 0).collect();
            prop_assert_eq!(weighted.len(), 1);
            prop_assert_eq!(weighted[0].key(), sorry);
        } else {
            prop_assert!(!e.desired.destinations.contains_key(&sorry));
        }
        if p.sorry_server.is_some() && e.quorum.is_none() {
            prop_assert_eq!(e.desired.unsettled.get(&sorry), Some(&None));
        }
        // Quorum never decided against the evidence.
        let counted = p.reals.iter()
            .filter(|r| r.health == Health::Up && r.weight > 0 && !r.drained)
            .count() as u32;
        prop_assert_eq!(e.counted, counted);
        if e.quorum == Some(true) {
            prop_assert!(counted > 0);
        }
    }
}
