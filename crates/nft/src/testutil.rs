//! Sample desired tables shared by the unit tests.

use std::net::SocketAddr;

use vigil_ipvs::reconcile::{DesiredService, DesiredTable};
use vigil_ipvs::{Destination, Family, ForwardMethod, Service, ServiceFlags, ServiceKey};

pub(crate) fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(crate) fn nat(addr: &str, weight: u32) -> Destination {
    Destination::new(sa(addr), ForwardMethod::Masquerade).weight(weight)
}

/// One service of every kind the datapath serves.
pub(crate) fn sample() -> DesiredTable {
    let mut t = DesiredTable::new();
    let k1 = ServiceKey::tcp(sa("192.0.2.1:80"));
    t.insert(
        k1,
        DesiredService::new(Service::new(k1, "wrr"))
            .with(nat("10.0.0.1:8080", 1))
            .with(nat("10.0.0.2:8080", 2))
            .with(nat("10.0.0.3:8080", 0)),
    );
    let k2 = ServiceKey::udp(sa("[2001:db8::1]:53"));
    let mut s2 = Service::new(k2, "sh");
    s2.flags = ServiceFlags::SH_PORT | ServiceFlags::SH_FALLBACK;
    t.insert(
        k2,
        DesiredService::new(s2)
            .with(nat("[2001:db8::a]:5353", 3))
            .with(nat("[2001:db8::b]:5353", 1)),
    );
    let k3 = ServiceKey::fwmark(Family::Inet, 7);
    t.insert(
        k3,
        DesiredService::new(Service::new(k3, "rr"))
            .with(nat("10.0.1.1:0", 5))
            .with(nat("10.0.1.2:0", 1)),
    );
    let k4 = ServiceKey::tcp(sa("192.0.2.1:443"));
    t.insert(k4, DesiredService::new(Service::new(k4, "sh")));
    t
}
