//! Feeds arbitrary bytes to the reply parser, as if the kernel had sent them: the
//! netlink framing, acks and extended-ack TLVs, and every IPVS reply decoder. Besides
//! "never panics": whatever decodes and can be encoded again must decode to the same
//! value (the codec is its own inverse on what it accepts).

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_ipvs::codec::{self, Reply, Request};
use vigil_ipvs::netlink;
use vigil_ipvs::{Family, ServiceKey};

fn attr_area(buf: &[u8]) -> &[u8] {
    match netlink::messages(buf).next() {
        Some(Ok(netlink::Message::Data { attrs, .. })) => attrs,
        other => panic!("re-encoded request does not frame: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, datagram)) = data.split_first() else {
        return;
    };
    let family = if selector & 1 == 0 { Family::Inet } else { Family::Inet6 };
    for m in netlink::messages(datagram) {
        let Ok(m) = m else { break };
        if let netlink::Message::Data { attrs, .. } = m {
            let _ = netlink::decode_family(attrs);
        }
    }
    for reply in codec::decode_datagram(datagram, family).into_iter().flatten() {
        let mut buf = Vec::new();
        match reply {
            Reply::Service(e) => {
                if Request::AddService(e.service.clone()).encode(0x20, 1, &mut buf).is_ok() {
                    let again = codec::decode_service(attr_area(&buf)).expect("re-decodes");
                    assert_eq!(again.service, e.service);
                }
            }
            Reply::Destination(e) => {
                let key = ServiceKey::fwmark(family, 1);
                let req = Request::AddDestination(key, e.destination.clone());
                if req.encode(0x20, 1, &mut buf).is_ok() {
                    let again =
                        codec::decode_destination(attr_area(&buf), family).expect("re-decodes");
                    assert_eq!(again.destination, e.destination);
                }
            }
            Reply::SyncDaemon(d) => {
                if Request::StartSyncDaemon(d.clone()).encode(0x20, 1, &mut buf).is_ok() {
                    let again = codec::decode_daemon(attr_area(&buf)).expect("re-decodes");
                    assert_eq!(again, d);
                }
            }
            Reply::Timeouts(_) | Reply::Info(_) => {}
        }
    }
});
