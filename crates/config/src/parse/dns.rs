//! The dns check kind: the query, the expected rcode and addresses, the transport.

use crate::model::*;
use crate::reader::{Sink, Table, as_ip};

pub(super) fn dns_check(sink: &mut Sink, t: &mut Table<'_, '_>) -> Option<DnsCheck> {
    let p = t.path.clone();
    let f = |k: &str| format!("{p}.{k}");
    let errors_before = sink.items.len();
    let name = t.req_str(sink, "query_name").and_then(|(n, span)| {
        if valid_dns_name(n) {
            Some(n.to_string())
        } else {
            sink.error(
                span,
                format!("`{}`: \"{n}\" is not a valid DNS name", f("query_name")),
            );
            None
        }
    });
    let qtype = match t.choice(sink, "query_type", DnsType::NAMES).map(|(n, _)| n) {
        Some("AAAA") => DnsType::Aaaa,
        Some("SOA") => DnsType::Soa,
        Some("NS") => DnsType::Ns,
        Some("MX") => DnsType::Mx,
        Some("TXT") => DnsType::Txt,
        Some("CNAME") => DnsType::Cname,
        _ => DnsType::A,
    };
    let expect_rcode = match t
        .choice(sink, "expect_rcode", DnsRcode::NAMES)
        .map(|(n, _)| n)
    {
        Some("FORMERR") => DnsRcode::FormErr,
        Some("SERVFAIL") => DnsRcode::ServFail,
        Some("NXDOMAIN") => DnsRcode::NxDomain,
        Some("NOTIMP") => DnsRcode::NotImp,
        Some("REFUSED") => DnsRcode::Refused,
        _ => DnsRcode::NoError,
    };
    let mut expect_addresses = Vec::new();
    if let Some((items, span)) = t.array(sink, "expect_addresses") {
        if !matches!(qtype, DnsType::A | DnsType::Aaaa) {
            sink.error(
                span,
                format!(
                    "`{}` applies only to A and AAAA queries",
                    f("expect_addresses")
                ),
            );
        }
        for (i, item) in items.iter().enumerate() {
            let field = format!("{}[{i}]", f("expect_addresses"));
            if let Some(ip) = as_ip(sink, item, &field) {
                let want = if qtype == DnsType::Aaaa {
                    AddressFamily::Ipv6
                } else {
                    AddressFamily::Ipv4
                };
                if AddressFamily::of(&ip) != want && matches!(qtype, DnsType::A | DnsType::Aaaa) {
                    sink.error(
                        item.span(),
                        format!(
                            "`{field}`: {ip} can never be in the answer to an {} query",
                            if want == AddressFamily::Ipv6 {
                                "AAAA"
                            } else {
                                "A"
                            }
                        ),
                    );
                }
                expect_addresses.push(ip);
            }
        }
    }
    let transport = match t.choice(sink, "transport", &["udp", "tcp"]) {
        Some(("tcp", _)) => DnsTransport::Tcp,
        _ => DnsTransport::Udp,
    };
    let edns = t.bool(sink, "edns").unwrap_or(true);
    if sink.items.len() != errors_before {
        return None;
    }
    Some(DnsCheck {
        name: name?,
        qtype,
        expect_rcode,
        expect_addresses,
        transport,
        edns,
    })
}

pub(super) fn valid_dns_name(n: &str) -> bool {
    let n = n.strip_suffix('.').unwrap_or(n);
    n.len() <= 253
        && (n.is_empty() // the root
            || n.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            }))
}

#[cfg(test)]
mod tests {
    use super::valid_dns_name;

    #[test]
    fn dns_names() {
        assert!(valid_dns_name("example.org"));
        assert!(valid_dns_name("example.org."));
        assert!(valid_dns_name("_sip._tcp.example.org"));
        assert!(!valid_dns_name("exa mple.org"));
        assert!(!valid_dns_name("a..b"));
        assert!(!valid_dns_name(&"a".repeat(64)));
    }
}
