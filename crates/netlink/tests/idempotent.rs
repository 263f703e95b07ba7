//! Requests that find their object already there (or already gone) answer `Ok(false)`,
//! against a real kernel in a namespace of the netns lab.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use vigil_netlink::{Route, RouteKind, RouteSpec, RuleKind, RuleSpec};
use vigil_testlab::{NetnsLab, require_root_or_skip};

const PROTOCOL: u8 = 99;
const TABLE: u32 = 1000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn adding_twice_and_removing_twice_are_no_errors() {
    require_root_or_skip!();
    let lab = NetnsLab::up(&["h"]).unwrap();
    lab.run_in("h", || {
        let mut route = Route::open().unwrap();
        let lo = route.link("lo").unwrap().index;
        route.set_link_up(lo, true).unwrap();

        let address = ip("192.0.2.7");
        assert!(route.add_address(lo, address, 32).unwrap());
        assert!(!route.add_address(lo, address, 32).unwrap());
        assert!(route.del_address(lo, address, 32).unwrap());
        assert!(!route.del_address(lo, address, 32).unwrap());

        let host = ip("198.51.100.7");
        assert!(route.add_host_route(TABLE, PROTOCOL, lo, host).unwrap());
        assert!(!route.add_host_route(TABLE, PROTOCOL, lo, host).unwrap());
        assert!(route.del_host_route(TABLE, PROTOCOL, host).unwrap());
        assert!(!route.del_host_route(TABLE, PROTOCOL, host).unwrap());

        let local = ip("198.51.100.8");
        assert!(route.add_local_route(PROTOCOL, lo, local).unwrap());
        assert!(!route.add_local_route(PROTOCOL, lo, local).unwrap());
        assert!(route.del_local_route(PROTOCOL, local).unwrap());
        assert!(!route.del_local_route(PROTOCOL, local).unwrap());

        let spec = RouteSpec {
            destination: ip("203.0.113.0"),
            prefix_len: 24,
            gateway: None,
            dev: Some("lo".into()),
            source: None,
            table: TABLE,
            metric: None,
            scope: None,
            protocol: PROTOCOL,
            kind: RouteKind::Unicast,
        };
        // A route replaces its like: adding twice is no error either.
        route.add_route(&spec).unwrap();
        route.add_route(&spec).unwrap();
        assert!(route.del_route(&spec).unwrap());
        assert!(!route.del_route(&spec).unwrap());

        let rule = RuleSpec {
            ipv6: false,
            from: Some((address, 32)),
            to: None,
            iif: None,
            oif: None,
            fwmark: None,
            fwmask: None,
            priority: Some(1234),
            kind: RuleKind::Table(TABLE),
        };
        assert!(route.add_rule(&rule).unwrap());
        assert!(!route.add_rule(&rule).unwrap());
        assert!(route.del_rule(&rule).unwrap());
        assert!(!route.del_rule(&rule).unwrap());

        // Refusals outside the tolerated ones are errors naming the request.
        let err = route.add_address(9999, address, 32).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("adding 192.0.2.7/32 to interface 9999: "),
            "{err}"
        );
        assert!(!route.del_link(9999).unwrap());
    })
    .unwrap();
}
