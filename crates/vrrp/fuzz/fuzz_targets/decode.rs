//! Feeds arbitrary bytes to the VRRP receive path. The first byte picks the IP-layer facts
//! and instance rules, the rest is the VRRP message. Besides "never panics", anything
//! accepted must survive a re-encode and decode unchanged.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vigil_vrrp::{
    Auth, Family, IpFacts, MULTICAST_V4, MULTICAST_V6, Password, ReceiveRules, Version, decode,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, message)) = data.split_first() else {
        return;
    };
    let ipv6 = selector & 1 != 0;
    let version = if selector & 2 != 0 {
        Version::V2
    } else {
        Version::V3
    };
    let ip = if ipv6 {
        IpFacts {
            source: IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
            destination: IpAddr::V6(MULTICAST_V6),
            ttl: if selector & 4 != 0 { 255 } else { selector },
        }
    } else {
        IpFacts {
            source: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            destination: IpAddr::V4(MULTICAST_V4),
            ttl: if selector & 4 != 0 { 255 } else { selector },
        }
    };
    let auth = if selector & 8 != 0 {
        Password::new(b"vigil")
            .map(Auth::SimplePassword)
            .unwrap_or(Auth::None)
    } else {
        Auth::None
    };
    let rules = ReceiveRules {
        version,
        family: Family::of(ip.source),
        // Follow the message's own VRID so fuzzing reaches the checks after it.
        vrid: message.get(1).copied().unwrap_or(1),
        local_is_owner: selector & 16 != 0 && selector & 4 == 0,
        auth,
        advert_interval: Duration::from_secs(u64::from(message.get(5).copied().unwrap_or(1))),
        expected_addresses: (selector & 32 != 0).then(Vec::new),
        accept_message_only_ipv4_checksum: selector & 64 != 0,
        // Bit 7: the unicast TTL waiver; the source is always the allowed peer.
        allowed_sources: (selector & 128 != 0).then(|| vec![ip.source]),
        waive_ttl: selector & 128 != 0,
    };
    if let Ok(received) = decode(message, &ip, &rules) {
        let again = received
            .advert
            .encode(ip.source, ip.destination)
            .expect("an accepted advert re-encodes");
        let strict = ReceiveRules {
            accept_message_only_ipv4_checksum: false,
            ..rules
        };
        let second = decode(&again, &ip, &strict).expect("a re-encoded advert decodes");
        assert_eq!(second.advert, received.advert);
    }
});
