//! A minimal DNS message codec (RFC 1035): one question out; header, rcode and A/AAAA
//! answers in. Hand-written because a check needs exactly this much, and a resolver
//! library would bring caching, retries and a large dependency tree we would then have to
//! switch off.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const HEADER_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum DnsEncodeError {
    #[error("name `{0}` has an empty label or a label over 63 bytes")]
    BadLabel(String),
    #[error("name `{0}` is longer than 255 bytes")]
    TooLong(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum DnsDecodeError {
    #[error("reply shorter than a DNS header")]
    Short,
    #[error("reply is a query, not a response")]
    NotResponse,
    #[error("reply id {got} does not match the query id {want}")]
    WrongId { got: u16, want: u16 },
    #[error("reply is cut off inside its records")]
    Truncated,
    #[error("reply has a name compression loop")]
    PointerLoop,
}

/// The parts of a reply a check looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DnsReply {
    pub(crate) rcode: u8,
    /// TC: the server had more to say than fit in the datagram.
    pub(crate) truncated: bool,
    pub(crate) answer_count: u16,
    /// A and AAAA addresses of the answer section.
    pub(crate) addresses: Vec<IpAddr>,
}

/// The numeric type of a question.
pub(crate) fn qtype_code(t: vigil_config::DnsType) -> u16 {
    use vigil_config::DnsType;
    match t {
        DnsType::A => TYPE_A,
        DnsType::Ns => 2,
        DnsType::Cname => 5,
        DnsType::Soa => 6,
        DnsType::Mx => 15,
        DnsType::Txt => 16,
        DnsType::Aaaa => TYPE_AAAA,
    }
}

pub(crate) fn qtype_name(t: vigil_config::DnsType) -> &'static str {
    use vigil_config::DnsType;
    match t {
        DnsType::A => "A",
        DnsType::Ns => "NS",
        DnsType::Cname => "CNAME",
        DnsType::Soa => "SOA",
        DnsType::Mx => "MX",
        DnsType::Txt => "TXT",
        DnsType::Aaaa => "AAAA",
    }
}

pub(crate) fn rcode_code(r: vigil_config::DnsRcode) -> u8 {
    use vigil_config::DnsRcode;
    match r {
        DnsRcode::NoError => 0,
        DnsRcode::FormErr => 1,
        DnsRcode::ServFail => 2,
        DnsRcode::NxDomain => 3,
        DnsRcode::NotImp => 4,
        DnsRcode::Refused => 5,
    }
}

/// `SERVFAIL`, or `RCODE 9` for the ones without a common name.
pub(crate) fn rcode_name(code: u8) -> String {
    match code {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        other => format!("RCODE {other}"),
    }
}

/// A recursion-desired query for (`name`, `qtype`, IN).
pub(crate) fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, DnsEncodeError> {
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00]); // RD
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(DnsEncodeError::BadLabel(name.to_string()));
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() - HEADER_LEN > 255 {
        return Err(DnsEncodeError::TooLong(name.to_string()));
    }
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

/// Parses a reply to the query with id `id`.
pub(crate) fn decode_reply(msg: &[u8], id: u16) -> Result<DnsReply, DnsDecodeError> {
    if msg.len() < HEADER_LEN {
        return Err(DnsDecodeError::Short);
    }
    let got = u16::from_be_bytes([msg[0], msg[1]]);
    if msg[2] & 0x80 == 0 {
        return Err(DnsDecodeError::NotResponse);
    }
    if got != id {
        return Err(DnsDecodeError::WrongId { got, want: id });
    }
    let truncated = msg[2] & 0x02 != 0;
    let rcode = msg[3] & 0x0f;
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    let ancount = u16::from_be_bytes([msg[6], msg[7]]);
    let mut pos = HEADER_LEN;
    let mut addresses = Vec::new();
    let parsed = (|| {
        for _ in 0..qdcount {
            pos = skip_name(msg, pos)?;
            pos = pos
                .checked_add(4)
                .filter(|&p| p <= msg.len())
                .ok_or(DnsDecodeError::Truncated)?;
        }
        for _ in 0..ancount {
            pos = skip_name(msg, pos)?;
            let fixed = msg.get(pos..pos + 10).ok_or(DnsDecodeError::Truncated)?;
            let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
            let class = u16::from_be_bytes([fixed[2], fixed[3]]);
            let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
            pos += 10;
            let rdata = msg.get(pos..pos + rdlen).ok_or(DnsDecodeError::Truncated)?;
            pos += rdlen;
            if class != CLASS_IN {
                continue;
            }
            match (rtype, rdata.len()) {
                (TYPE_A, 4) => addresses.push(IpAddr::V4(Ipv4Addr::new(
                    rdata[0], rdata[1], rdata[2], rdata[3],
                ))),
                (TYPE_AAAA, 16) => {
                    let mut octets = [0u8; 16];
                    octets.copy_from_slice(rdata);
                    addresses.push(IpAddr::V6(Ipv6Addr::from(octets)));
                }
                _ => {}
            }
        }
        Ok(())
    })();
    match parsed {
        Ok(()) => {}
        // A truncated UDP reply may stop anywhere: keep what was read.
        Err(DnsDecodeError::Truncated) if truncated => {}
        Err(e) => return Err(e),
    }
    Ok(DnsReply {
        rcode,
        truncated,
        answer_count: ancount,
        addresses,
    })
}

/// The position after the (possibly compressed) name at `pos`.
fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, DnsDecodeError> {
    // A name has at most 128 labels; more means a malformed message.
    for _ in 0..128 {
        let len = *msg.get(pos).ok_or(DnsDecodeError::Truncated)?;
        match len {
            0 => return Ok(pos + 1),
            l if l & 0xc0 == 0xc0 => {
                // A pointer ends the name here; where it points does not matter to us.
                msg.get(pos + 1).ok_or(DnsDecodeError::Truncated)?;
                return Ok(pos + 2);
            }
            l if l & 0xc0 == 0 => pos += 1 + usize::from(l),
            _ => return Err(DnsDecodeError::Truncated),
        }
    }
    Err(DnsDecodeError::PointerLoop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_with(id: u16, flags: [u8; 2], answers: &[(u16, &[u8])]) -> Vec<u8> {
        let mut q = encode_query(id, "example.org", TYPE_A).expect("encode");
        q[2] = flags[0];
        q[3] = flags[1];
        q[7] = answers.len() as u8;
        for (rtype, rdata) in answers {
            q.extend_from_slice(&[0xc0, 12]); // pointer to the question name
            q.extend_from_slice(&rtype.to_be_bytes());
            q.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            q.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            q.extend_from_slice(rdata);
        }
        q
    }

    #[test]
    fn query_layout() {
        let q = encode_query(0x1234, "example.org.", 1).expect("encode");
        assert_eq!(&q[..12], &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..], b"\x07example\x03org\x00\x00\x01\x00\x01");
        assert!(encode_query(1, "a..b", 1).is_err());
        assert!(encode_query(1, &"x".repeat(64), 1).is_err());
        assert_eq!(
            &encode_query(1, ".", 6).expect("root")[12..],
            &[0, 0, 6, 0, 1]
        );
    }

    #[test]
    fn decodes_rcode_and_addresses() {
        let msg = reply_with(
            7,
            [0x81, 0x80],
            &[
                (TYPE_A, &[192, 0, 2, 1]),
                (5, b"\x01x\x00"),
                (
                    TYPE_AAAA,
                    &[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                ),
            ],
        );
        let r = decode_reply(&msg, 7).expect("decode");
        assert_eq!(r.rcode, 0);
        assert_eq!(r.answer_count, 3);
        assert_eq!(
            r.addresses,
            vec![
                "192.0.2.1".parse::<IpAddr>().expect("ip"),
                "2001:db8::1".parse().expect("ip")
            ]
        );
        let nx = reply_with(7, [0x81, 0x83], &[]);
        assert_eq!(decode_reply(&nx, 7).expect("decode").rcode, 3);
        assert_eq!(rcode_name(3), "NXDOMAIN");
    }

    #[test]
    fn rejects_wrong_id_queries_and_cut_messages() {
        let msg = reply_with(7, [0x81, 0x80], &[(TYPE_A, &[192, 0, 2, 1])]);
        assert_eq!(
            decode_reply(&msg, 8),
            Err(DnsDecodeError::WrongId { got: 7, want: 8 })
        );
        let query = encode_query(7, "example.org", 1).expect("encode");
        assert_eq!(decode_reply(&query, 7), Err(DnsDecodeError::NotResponse));
        assert_eq!(
            decode_reply(&msg[..msg.len() - 1], 7),
            Err(DnsDecodeError::Truncated)
        );
        assert_eq!(decode_reply(&msg[..5], 7), Err(DnsDecodeError::Short));
    }

    #[test]
    fn never_panics_on_any_prefix_or_byte_flip() {
        let msg = reply_with(
            7,
            [0x81, 0x80],
            &[(TYPE_A, &[192, 0, 2, 1]), (TYPE_AAAA, &[0; 16])],
        );
        for cut in 0..msg.len() {
            let _ = decode_reply(&msg[..cut], 7);
        }
        for i in 0..msg.len() {
            for b in [0u8, 0x3f, 0xc0, 0xff] {
                let mut m = msg.clone();
                m[i] = b;
                let _ = decode_reply(&m, 7);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_or_error_without_panicking(
            msg in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            id in proptest::prelude::any::<u16>(),
        ) {
            let _ = decode_reply(&msg, id);
        }
    }
}
