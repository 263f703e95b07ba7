//! Unit tests of the pure core: rendering, read-back and diff.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use vigil_ipvs::reconcile::{DesiredService, DesiredTable};
use vigil_ipvs::{
    DestinationKey, Family, ForwardMethod, Protocol, Service, ServiceFlags, ServiceKey,
};

use crate::diff::{describe, diff, diff_one};
use crate::model::{Model, NftService, Options, Selector};
use crate::nft::first_failing;
use crate::readback::{Current, parse};
use crate::render::{
    RenderError, Unsupported, chain_name, plan, plan_fresh, render, service_rule, skeleton,
};
use crate::testutil::{nat, sa, sample};

/// A real `nft -j list table inet vigil` (nft 1.0.6) of `sample()` rendered with
/// masquerade on.
const LISTING: &str = include_str!("../tests/data/listing.json");

fn masq() -> Options {
    Options { masquerade: true }
}

fn rule_of(table: &DesiredTable, key: &ServiceKey) -> Value {
    let m = plan_fresh(table, &Options::default()).unwrap();
    service_rule(key, &m.services[key]).unwrap()
}

#[test]
fn weighted_random_gives_each_real_server_its_weight_in_slots() {
    let t = sample();
    let key = ServiceKey::tcp(sa("192.0.2.1:80"));
    // Weight 1 and 2 share 3 slots; the weight-0 (drained) server has none.
    assert_eq!(
        rule_of(&t, &key),
        json!({"rule": {"family": "inet", "table": "vigil", "chain": "tcp4_192_0_2_1_80",
            "expr": [
                {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
                {"dnat": {"family": "ip", "addr": {"map": {
                    "key": {"numgen": {"mode": "random", "mod": 3, "offset": 0}},
                    "data": {"set": [
                        [0, {"concat": ["10.0.0.1", 8080]}],
                        [1, {"concat": ["10.0.0.2", 8080]}],
                        [2, {"concat": ["10.0.0.2", 8080]}]
                    ]}}}}}
            ],
            "comment": "tcp 192.0.2.1:80"}})
    );
}

#[test]
fn source_hash_over_ipv6_hashes_address_and_port_with_weights() {
    let t = sample();
    let key = ServiceKey::udp(sa("[2001:db8::1]:53"));
    assert_eq!(
        rule_of(&t, &key),
        json!({"rule": {"family": "inet", "table": "vigil", "chain": "udp6_2001_db8__1_53",
            "expr": [
                {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}},
                {"dnat": {"family": "ip6", "addr": {"map": {
                    "key": {"jhash": {"mod": 4, "seed": 0, "expr": {"concat": [
                        {"payload": {"protocol": "ip6", "field": "saddr"}},
                        {"payload": {"protocol": "th", "field": "sport"}}
                    ]}}},
                    "data": {"set": [
                        [0, {"concat": ["2001:db8::a", 5353]}],
                        [1, {"concat": ["2001:db8::a", 5353]}],
                        [2, {"concat": ["2001:db8::a", 5353]}],
                        [3, {"concat": ["2001:db8::b", 5353]}]
                    ]}}}}}
            ],
            "comment": "udp [2001:db8::1]:53"}})
    );
}

#[test]
fn source_hash_without_port_hashes_the_address_only() {
    let key = ServiceKey::tcp(sa("192.0.2.9:80"));
    let t = DesiredTable::from([(
        key,
        DesiredService::new(Service::new(key, "sh")).with(nat("10.0.0.1:80", 1)),
    )]);
    let r = rule_of(&t, &key);
    let jhash = &r["rule"]["expr"][1]["dnat"]["addr"]["map"]["key"]["jhash"];
    assert_eq!(
        jhash["expr"],
        json!({"payload": {"protocol": "ip", "field": "saddr"}})
    );
}

#[test]
fn round_robin_ignores_weights_but_zero_and_fwmark_keeps_the_port() {
    let t = sample();
    let key = ServiceKey::fwmark(Family::Inet, 7);
    assert_eq!(
        rule_of(&t, &key),
        json!({"rule": {"family": "inet", "table": "vigil", "chain": "fwmark4_7",
            "expr": [
                {"dnat": {"family": "ip", "addr": {"map": {
                    "key": {"numgen": {"mode": "random", "mod": 2, "offset": 0}},
                    "data": {"set": [[0, "10.0.1.1"], [1, "10.0.1.2"]]}}}}}
            ],
            "comment": "fwmark 7 (IPv4)"}})
    );
}

#[test]
fn a_service_without_real_servers_has_no_rule() {
    let m = plan_fresh(&sample(), &Options::default()).unwrap();
    let key = ServiceKey::tcp(sa("192.0.2.1:443"));
    assert!(m.services[&key].slots.is_empty());
    assert_eq!(service_rule(&key, &m.services[&key]), None);
}

#[test]
fn chain_names_are_readable_and_distinct() {
    assert_eq!(
        chain_name(&ServiceKey::tcp(sa("192.0.2.1:80"))),
        "tcp4_192_0_2_1_80"
    );
    assert_eq!(
        chain_name(&ServiceKey::udp(sa("[2001:db8::1]:53"))),
        "udp6_2001_db8__1_53"
    );
    assert_eq!(
        chain_name(&ServiceKey::Addr {
            protocol: Protocol::Sctp,
            addr: sa("[::ffff:1.2.3.4]:9")
        }),
        "sctp6___ffff_1_2_3_4_9"
    );
    assert_eq!(
        chain_name(&ServiceKey::fwmark(Family::Inet6, 9)),
        "fwmark6_9"
    );
}

#[test]
fn the_document_replaces_the_table_in_one_transaction() {
    let doc = render(&sample(), &Options::default()).unwrap();
    let cmds = doc["nftables"].as_array().unwrap();
    assert_eq!(
        cmds[0],
        json!({"add": {"table": {"family": "inet", "name": "vigil"}}})
    );
    assert_eq!(
        cmds[1],
        json!({"delete": {"table": {"family": "inet", "name": "vigil"}}})
    );
    // Every command names table inet vigil: no other table is touched.
    for c in &cmds[2..] {
        let (_, obj) = c.as_object().unwrap().iter().next().unwrap();
        let (kind, body) = obj.as_object().unwrap().iter().next().unwrap();
        assert_eq!(body["family"], "inet", "{c}");
        let table = if kind == "table" {
            &body["name"]
        } else {
            &body["table"]
        };
        assert_eq!(table, "vigil", "{c}");
    }
    // Without masquerade the sets stay empty.
    assert!(!doc.to_string().contains("\"masq4\",\"elem\""));
}

#[test]
fn masquerade_lists_every_real_server_with_slots() {
    let m = plan_fresh(&sample(), &masq()).unwrap();
    let ips: Vec<String> = m.masquerade.iter().map(|i| i.to_string()).collect();
    assert_eq!(
        ips,
        [
            "10.0.0.1",
            "10.0.0.2",
            "10.0.1.1",
            "10.0.1.2",
            "2001:db8::a",
            "2001:db8::b"
        ]
    );
}

fn refused(service: Service, dests: &[vigil_ipvs::Destination]) -> Vec<Unsupported> {
    let key = service.key;
    let mut d = DesiredService::new(service);
    for x in dests {
        d = d.with(x.clone());
    }
    let errs = plan_fresh(&DesiredTable::from([(key, d)]), &Options::default()).unwrap_err();
    assert!(errs.0.iter().all(|e| e.service == key));
    errs.0.into_iter().map(|e: RenderError| e.why).collect()
}

#[test]
fn schedulers_without_an_nftables_equivalent_are_refused_by_name() {
    let key = ServiceKey::tcp(sa("192.0.2.1:80"));
    for s in [
        "lc", "wlc", "sed", "nq", "lblc", "lblcr", "dh", "fo", "ovf", "mh", "twos",
    ] {
        let why = refused(Service::new(key, s), &[nat("10.0.0.1:80", 1)]);
        assert_eq!(why, [Unsupported::Scheduler(s.into())]);
    }
    let e = RenderError {
        service: key,
        why: Unsupported::Scheduler("wlc".into()),
    };
    assert!(
        e.to_string()
            .starts_with("tcp 192.0.2.1:80: scheduler \"wlc\" has no nftables equivalent"),
        "{e}"
    );
}

#[test]
fn persistence_forwarding_thresholds_and_odd_keys_are_refused() {
    let key = ServiceKey::tcp(sa("192.0.2.1:80"));
    assert_eq!(
        refused(Service::new(key, "wrr").persistent(300), &[]),
        [Unsupported::Persistence]
    );
    let mut op = Service::new(ServiceKey::udp(sa("192.0.2.1:53")), "wrr");
    op.flags = ServiceFlags::ONE_PACKET;
    assert_eq!(refused(op, &[]), [Unsupported::OnePacket]);
    let mut shf = Service::new(key, "wrr");
    shf.flags = ServiceFlags::SH_PORT;
    assert_eq!(
        refused(shf, &[]),
        [Unsupported::SchedulerFlags(ServiceFlags::SH_PORT.bits())]
    );
    for m in [
        ForwardMethod::DirectRoute,
        ForwardMethod::Tunnel,
        ForwardMethod::Local,
    ] {
        let d = vigil_ipvs::Destination::new(sa("10.0.0.1:80"), m);
        assert_eq!(
            refused(Service::new(key, "wrr"), &[d]),
            [Unsupported::Forwarding(sa("10.0.0.1:80"), m)]
        );
    }
    let mut th = nat("10.0.0.1:80", 1);
    th.upper_threshold = 10;
    assert_eq!(
        refused(Service::new(key, "wrr"), &[th]),
        [Unsupported::Thresholds(sa("10.0.0.1:80"))]
    );
    assert_eq!(
        refused(Service::new(key, "wrr"), &[nat("[2001:db8::1]:80", 1)]),
        [Unsupported::MixedFamily(sa("[2001:db8::1]:80"))]
    );
    assert_eq!(
        refused(
            Service::new(key, "wrr"),
            &[nat("10.0.0.1:80", 1), nat("10.0.0.2:0", 1)]
        ),
        [Unsupported::MixedPorts]
    );
    assert_eq!(
        refused(
            Service::new(ServiceKey::fwmark(Family::Inet, 1), "wrr"),
            &[nat("10.0.0.1:80", 1)]
        ),
        [Unsupported::FwmarkPort(sa("10.0.0.1:80"))]
    );
    assert_eq!(
        refused(
            Service::new(
                ServiceKey::Addr {
                    protocol: Protocol::Other(33),
                    addr: sa("192.0.2.1:80")
                },
                "wrr"
            ),
            &[]
        ),
        [Unsupported::Protocol(33)]
    );
    assert_eq!(
        refused(Service::new(ServiceKey::tcp(sa("192.0.2.1:0")), "wrr"), &[]),
        [Unsupported::PortZero]
    );
}

#[test]
fn large_weights_are_scaled_to_at_most_1024_slots_keeping_their_shares() {
    let key = ServiceKey::tcp(sa("192.0.2.1:80"));
    let t = DesiredTable::from([(
        key,
        DesiredService::new(Service::new(key, "wrr"))
            .with(nat("10.0.0.1:80", 1))
            .with(nat("10.0.0.2:80", 30_000))
            .with(nat("10.0.0.3:80", 60_000)),
    )]);
    let m = plan_fresh(&t, &Options::default()).unwrap();
    let slots: Vec<u32> = m.services[&key].slots.values().copied().collect();
    // 1024 x 30000 / 90001 = 341.3, x 60000 / 90001 = 682.6; the smallest keeps 1.
    assert_eq!(slots, [1, 341, 682]);
    // Weights that fit are kept as they are: readback gives them back.
    let m = plan_fresh(&sample(), &Options::default()).unwrap();
    let w: Vec<u32> = m.services[&ServiceKey::tcp(sa("192.0.2.1:80"))]
        .slots
        .values()
        .copied()
        .collect();
    assert_eq!(w, [1, 2]);
}

#[test]
fn every_refused_service_is_reported_at_once() {
    let mut t = sample();
    for (port, s) in [(81, "lc"), (82, "wlc")] {
        let k = ServiceKey::tcp(sa(&format!("192.0.2.1:{port}")));
        t.insert(k, DesiredService::new(Service::new(k, s)));
    }
    let e = plan_fresh(&t, &Options::default()).unwrap_err();
    assert_eq!(e.0.len(), 2);
    assert!(e.to_string().contains("192.0.2.1:81") && e.to_string().contains("192.0.2.1:82"));
}

fn unsettled_service(fallback_up: bool) -> (ServiceKey, DesiredTable) {
    let key = ServiceKey::tcp(sa("192.0.2.5:80"));
    let mut d = DesiredService::new(Service::new(key, "wrr")).with(nat("10.0.0.1:80", 1));
    d.unsettled.insert(
        DestinationKey(sa("10.0.0.2:80")),
        fallback_up.then(|| nat("10.0.0.2:80", 4)),
    );
    (key, DesiredTable::from([(key, d)]))
}

#[test]
fn unsettled_real_servers_keep_what_the_kernel_has_else_their_fallback() {
    let (key, t) = unsettled_service(false);
    // Not in the kernel, fallback "down": absent.
    let m = plan_fresh(&t, &Options::default()).unwrap();
    assert_eq!(m.services[&key].slots.len(), 1);
    // In the kernel with 3 slots: kept as it is.
    let mut cur = m.clone();
    cur.services
        .get_mut(&key)
        .unwrap()
        .slots
        .insert(sa("10.0.0.2:80"), 3);
    let m2 = plan(&t, Some(&cur), &Options::default()).unwrap();
    assert_eq!(m2.services[&key].slots[&sa("10.0.0.2:80")], 3);
    // Fallback "up": added with its weight.
    let (_, t) = unsettled_service(true);
    let m3 = plan_fresh(&t, &Options::default()).unwrap();
    assert_eq!(m3.services[&key].slots[&sa("10.0.0.2:80")], 4);
}

#[test]
fn an_undecided_service_on_its_sorry_server_stays_there() {
    let key = ServiceKey::tcp(sa("192.0.2.5:80"));
    let sorry = sa("10.0.0.9:80");
    let mut d = DesiredService::new(Service::new(key, "wrr"));
    d.unsettled.insert(
        DestinationKey(sa("10.0.0.1:80")),
        Some(nat("10.0.0.1:80", 1)),
    );
    d.unsettled.insert(DestinationKey(sorry), None);
    d.sorry_undecided = Some(DestinationKey(sorry));
    let t = DesiredTable::from([(key, d)]);
    let on_sorry = Model {
        services: BTreeMap::from([(
            key,
            NftService {
                selector: Selector::Random,
                slots: BTreeMap::from([(sorry, 1)]),
            },
        )]),
        ..Model::default()
    };
    let m = plan(&t, Some(&on_sorry), &Options::default()).unwrap();
    assert_eq!(m.services[&key].slots, BTreeMap::from([(sorry, 1)]));
    // Not on the sorry server: the unknown server's fallback goes in.
    let m = plan_fresh(&t, &Options::default()).unwrap();
    assert_eq!(
        m.services[&key].slots,
        BTreeMap::from([(sa("10.0.0.1:80"), 1)])
    );
}

#[test]
fn a_real_listing_reads_back_as_the_rendered_model() {
    let listing: Value = serde_json::from_str(LISTING).unwrap();
    let cur = parse(&listing);
    assert!(cur.intact(), "{:?}", cur.foreign);
    assert!(cur.rewrite.is_empty());
    let want = plan_fresh(&sample(), &masq()).unwrap();
    assert_eq!(cur.model.masquerade, want.masquerade);
    assert_eq!(
        cur.model.services.keys().collect::<Vec<_>>(),
        want.services.keys().collect::<Vec<_>>()
    );
    for (k, s) in &want.services {
        if !s.slots.is_empty() {
            assert_eq!(&cur.model.services[k], s, "{k}");
        }
    }
    // So an unchanged table writes nothing.
    assert!(diff(&want, Some(&cur)).is_empty());
}

#[test]
fn the_skeleton_is_written_in_the_form_nft_lists_it() {
    let listing: Value = serde_json::from_str(LISTING).unwrap();
    let listed: Vec<Value> = listing["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let mut o = o.clone();
            let inner = o.as_object_mut().unwrap().values_mut().next().unwrap();
            let m = inner.as_object_mut().unwrap();
            m.remove("handle");
            m.remove("elem");
            o
        })
        .collect();
    for s in skeleton() {
        assert!(listed.contains(&s), "not listed as written: {s}");
    }
}

#[test]
fn a_changed_listing_is_patched_or_replaced() {
    let listing: Value = serde_json::from_str(LISTING).unwrap();
    let cur = parse(&listing);
    // Someone edited a service's rule by hand: rewritten, not trusted.
    let mut edited = listing.clone();
    for o in edited["nftables"].as_array_mut().unwrap() {
        if o["rule"]["chain"] == "fwmark4_7" && o["rule"]["expr"][0]["dnat"]["addr"].is_object() {
            o["rule"]["expr"][0]["dnat"]["addr"]["map"]["key"]["numgen"]["mod"] = json!(3);
        }
    }
    let c2 = parse(&edited);
    assert!(c2.intact());
    assert!(c2.rewrite.contains(&ServiceKey::fwmark(Family::Inet, 7)));
    // A fallback rule to another server, or none (an earlier version's chain): rewritten.
    let key = ServiceKey::tcp(sa("192.0.2.1:80"));
    let fallback = |o: &Value| {
        o["rule"]["chain"] == "tcp4_192_0_2_1_80"
            && o["rule"]["expr"][1]["dnat"]["addr"].is_string()
    };
    let mut moved = listing.clone();
    for o in moved["nftables"].as_array_mut().unwrap() {
        if fallback(o) {
            o["rule"]["expr"][1]["dnat"]["addr"] = json!("10.0.0.2");
        }
    }
    assert!(parse(&moved).rewrite.contains(&key));
    let mut old = listing.clone();
    old["nftables"]
        .as_array_mut()
        .unwrap()
        .retain(|o| !fallback(o));
    let c = parse(&old);
    assert!(c.intact() && c.rewrite.contains(&key), "{c:?}");
    assert!(!cur.rewrite.contains(&key) && cur.model.services.contains_key(&key));
    // A stray chain in the owned table: the whole table is replaced.
    let mut stray = listing.clone();
    stray["nftables"]
        .as_array_mut()
        .unwrap()
        .push(json!({"chain": {"family": "inet", "table": "vigil", "name": "mine", "handle": 99}}));
    let c3 = parse(&stray);
    assert!(!c3.intact());
    let want = plan_fresh(&sample(), &masq()).unwrap();
    let b = diff(&want, Some(&c3));
    assert!(b.full);
    // Replaced in place: rules flushed, the skeleton's sets and maps emptied (deleting
    // them would make a packet of the old generation miss), chains not wanted deleted,
    // but the NAT base chains (the hooks) and wanted plain chains kept, and the table
    // never deleted.
    assert_eq!(
        b.commands[0],
        json!({"flush": {"table": {"family": "inet", "name": "vigil"}}})
    );
    let verbs: Vec<String> = b.commands.iter().map(describe).collect();
    for gone in [
        "flush map services4",
        "flush set masq6",
        "delete chain mine",
    ] {
        assert!(verbs.iter().any(|v| v == gone), "{gone}: {verbs:?}");
    }
    for kept in [
        "prerouting",
        "output",
        "postrouting",
        "dispatch",
        "fwmark4_7",
    ] {
        assert!(
            !verbs.contains(&format!("delete chain {kept}")),
            "{verbs:?}"
        );
    }
    assert!(!b.document().contains("\"delete\":{\"table\""));
    assert!(
        !verbs
            .iter()
            .any(|v| v.starts_with("delete map") || v.starts_with("delete set"))
    );
    // A service no longer wanted loses its chain.
    let mut less = sample();
    less.remove(&ServiceKey::fwmark(Family::Inet, 7));
    let b = diff(&plan_fresh(&less, &masq()).unwrap(), Some(&c3));
    let verbs: Vec<String> = b.commands.iter().map(describe).collect();
    assert!(
        verbs.contains(&"delete chain fwmark4_7".to_string()),
        "{verbs:?}"
    );
    assert!(
        !verbs.contains(&"delete chain dispatch".to_string()),
        "{verbs:?}"
    );
    // No table at all: created, nothing deleted.
    let b = diff(&want, None);
    assert!(b.full);
    assert!(!b.document().to_string().contains("\"delete\""));
    let _ = cur;
}

#[test]
fn a_weight_change_is_one_chain_flush_and_its_two_rules() {
    let listing: Value = serde_json::from_str(LISTING).unwrap();
    let cur = parse(&listing);
    let mut t = sample();
    let key = ServiceKey::tcp(sa("192.0.2.1:80"));
    t.get_mut(&key)
        .unwrap()
        .destinations
        .remove(&DestinationKey(sa("10.0.0.1:8080")));
    let want = plan(&t, Some(&cur.model), &masq()).unwrap();
    let b = diff(&want, Some(&cur));
    assert!(!b.full);
    assert_eq!(b.services_changed, 1);
    // The masquerade address goes in a second transaction (see Batch::after).
    assert_eq!(b.after.len(), 1);
    let verbs: Vec<String> = b.commands.iter().chain(&b.after).map(describe).collect();
    assert_eq!(
        verbs,
        [
            "flush chain tcp4_192_0_2_1_80",
            "add rule of tcp 192.0.2.1:80 in chain tcp4_192_0_2_1_80",
            "add rule of tcp 192.0.2.1:80 switch fallback in chain tcp4_192_0_2_1_80",
            "delete element [\"10.0.0.1\"] in masq4"
        ]
    );
}

#[test]
fn services_are_added_and_deleted_with_their_dispatch_element() {
    let listing: Value = serde_json::from_str(LISTING).unwrap();
    let cur = parse(&listing);
    let mut t = sample();
    t.remove(&ServiceKey::fwmark(Family::Inet, 7));
    let k = ServiceKey::tcp(sa("192.0.2.2:80"));
    t.insert(
        k,
        DesiredService::new(Service::new(k, "wrr")).with(nat("10.0.0.1:8080", 1)),
    );
    let want = plan(&t, Some(&cur.model), &masq()).unwrap();
    let b = diff(&want, Some(&cur));
    assert_eq!(b.after.len(), 1);
    let verbs: Vec<String> = b.commands.iter().chain(&b.after).map(describe).collect();
    assert_eq!(
        verbs,
        [
            "delete element [7] in fwmark4",
            "flush chain fwmark4_7",
            "delete chain fwmark4_7",
            "add chain tcp4_192_0_2_2_80",
            "add rule of tcp 192.0.2.2:80 in chain tcp4_192_0_2_2_80",
            "add rule of tcp 192.0.2.2:80 switch fallback in chain tcp4_192_0_2_2_80",
            "add element [[{\"concat\":[\"192.0.2.2\",\"tcp\",80]},{\"goto\":{\"target\":\"tcp4_192_0_2_2_80\"}}]] in services4",
            "delete element [\"10.0.1.1\",\"10.0.1.2\"] in masq4"
        ]
    );
}

#[test]
fn the_first_failing_command_is_found_by_bisection() {
    for bad in 0..9 {
        let mut calls = 0;
        let got = first_failing(9, |n| {
            calls += 1;
            Some(n > bad)
        });
        assert_eq!(got, Some(bad));
        assert!(calls <= 5, "{calls}");
    }
    assert_eq!(first_failing(9, |_| Some(false)), None);
    assert_eq!(first_failing(9, |_| None), None);
}

#[test]
fn current_from_model_is_intact() {
    let m = plan_fresh(&sample(), &Options::default()).unwrap();
    let c = Current::from_model(m.clone());
    assert!(c.intact());
    assert!(diff(&m, Some(&c)).is_empty());
}

#[test]
fn one_service_is_patched_alone_and_keeps_shared_masquerade_addresses() {
    let cur = Current::from_model(plan_fresh(&sample(), &masq()).unwrap());
    let key = ServiceKey::tcp(sa("192.0.2.1:80"));
    let old = &cur.model.services[&key];
    // Unchanged: nothing.
    assert!(diff_one(&key, Some(old), &cur, true).is_empty());
    // 10.0.0.2 leaves: rule replaced, address out of the masquerade set.
    let mut w = old.clone();
    w.slots.remove(&sa("10.0.0.2:8080"));
    let b = diff_one(&key, Some(&w), &cur, true);
    assert_eq!(b.after.len(), 1);
    let verbs: Vec<String> = b.commands.iter().chain(&b.after).map(describe).collect();
    assert_eq!(
        verbs,
        [
            "flush chain tcp4_192_0_2_1_80",
            "add rule of tcp 192.0.2.1:80 in chain tcp4_192_0_2_1_80",
            "add rule of tcp 192.0.2.1:80 switch fallback in chain tcp4_192_0_2_1_80",
            "delete element [\"10.0.0.2\"] in masq4"
        ]
    );
    // Another service on 10.0.0.2 keeps the address in the set.
    let mut cur2 = cur.clone();
    let other = ServiceKey::tcp(sa("192.0.2.1:81"));
    cur2.model.services.insert(
        other,
        NftService {
            selector: Selector::Random,
            slots: BTreeMap::from([(sa("10.0.0.2:9090"), 1)]),
        },
    );
    let b = diff_one(&key, None, &cur2, true);
    let verbs: Vec<String> = b.commands.iter().chain(&b.after).map(describe).collect();
    assert_eq!(
        verbs,
        [
            "delete element [{\"concat\":[\"192.0.2.1\",\"tcp\",80]}] in services4",
            "flush chain tcp4_192_0_2_1_80",
            "delete chain tcp4_192_0_2_1_80",
            "delete element [\"10.0.0.1\"] in masq4"
        ]
    );
    // A new service: chain, rule, fallback rule, dispatch element; its address is
    // already masqueraded.
    let b = diff_one(&other, Some(&cur2.model.services[&other]), &cur, true);
    assert_eq!(b.commands.len(), 4);
    assert_eq!(b.services_changed, 1);
}
