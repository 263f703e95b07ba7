//! DNS: ask the real server itself (never the system resolver, never a cache) one
//! question, and require the expected rcode and, optionally, addresses in the answer.
//!
//! Messages are encoded and decoded with hickory-proto (the protocol crate alone: no
//! resolver, so no caching or retries that a check must not have). The query is encoded
//! once per check, with an EDNS(0) OPT record unless `edns = false`; each run only writes
//! its id into it. A reply must carry that id and answer the question that was asked.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil_config::{DnsCheck, DnsRcode, DnsTransport, DnsType};

use super::Verdict;
use super::net::{Source, connect_tcp, connect_udp, strip_os_error};
use crate::failure::{Failure, FailureCause};

/// The UDP payload size offered with EDNS(0): the size DNS Flag Day 2020 settled on,
/// which avoids IP fragmentation on every common path.
const EDNS_PAYLOAD: u16 = 1232;
/// Receive buffer for a UDP reply: a server may ignore the offered size.
const UDP_BUFFER: usize = 4096;

#[derive(Debug)]
pub(crate) struct DnsProbe {
    addr: SocketAddr,
    source: Source,
    spec: DnsCheck,
    /// What a reply must answer.
    question: Query,
    /// The query, encoded once; bytes 0 and 1 are the id, written per run.
    query: Vec<u8>,
}

/// The parts of a reply a check looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DnsReply {
    pub(crate) rcode: ResponseCode,
    /// TC: the server had more to say than fit in the datagram.
    pub(crate) truncated: bool,
    pub(crate) answer_count: usize,
    /// A and AAAA addresses of the answer section.
    pub(crate) addresses: Vec<IpAddr>,
}

/// Why a datagram is not the reply to our query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReplyError {
    /// Another query's reply (a late one on a reused port): keep waiting for ours.
    WrongId,
    /// Not a DNS response at all.
    Malformed(String),
    /// A response with our id that answers another question.
    OtherQuestion(String),
}

impl DnsProbe {
    pub(crate) fn new(addr: SocketAddr, source: Source, spec: &DnsCheck) -> Result<Self, String> {
        let (question, query) = encode_query(&spec.name, record_type(spec.qtype), spec.edns)?;
        Ok(DnsProbe {
            addr,
            source,
            spec: spec.clone(),
            question,
            query,
        })
    }

    /// `example.org A`
    pub(crate) fn question(&self) -> String {
        format!("{} {}", self.spec.name, self.question.query_type)
    }

    pub(crate) async fn run(&self) -> Verdict {
        let id = query_id();
        let mut query = self.query.clone();
        query[..2].copy_from_slice(&id.to_be_bytes());
        let reply = match self.spec.transport {
            DnsTransport::Udp => self.over_udp(&query, id).await?,
            DnsTransport::Tcp => self.over_tcp(&query, id).await?,
        };
        let seen = format!(
            "DNS {} for {} from {}",
            rcode_name(reply.rcode),
            self.question(),
            self.addr
        );
        if reply.rcode != response_code(self.spec.expect_rcode) {
            return Err(Failure::new(FailureCause::DnsRcode, seen));
        }
        let missing: Vec<String> = self
            .spec
            .expect_addresses
            .iter()
            .filter(|a| !reply.addresses.contains(a))
            .map(ToString::to_string)
            .collect();
        if !missing.is_empty() {
            let hint = if reply.truncated {
                " (reply truncated: use transport = \"tcp\")"
            } else {
                ""
            };
            return Err(Failure::new(
                FailureCause::DnsAnswer,
                format!("{seen} lacks {}{hint}", missing.join(", ")),
            ));
        }
        Ok(format!("{seen}, {} answers", reply.answer_count))
    }

    /// The failure for a reply that is not ours to judge.
    fn bad_reply(&self, e: ReplyError) -> Failure {
        let addr = self.addr;
        match e {
            ReplyError::OtherQuestion(got) => Failure::new(
                FailureCause::DnsQuestion,
                format!(
                    "DNS reply from {addr} answers {got}, not {}",
                    self.question()
                ),
            ),
            ReplyError::Malformed(why) => Failure::new(
                FailureCause::Malformed,
                format!("bad DNS reply from {addr}: {why}"),
            ),
            ReplyError::WrongId => Failure::new(
                FailureCause::Malformed,
                format!("bad DNS reply from {addr}: not the id of the query"),
            ),
        }
    }

    async fn over_udp(&self, query: &[u8], id: u16) -> Result<DnsReply, Failure> {
        let addr = self.addr;
        let socket = connect_udp(addr, &self.source).await?;
        socket.send(query).await.map_err(|e| {
            Failure::io(
                &e,
                format!("sending to {addr} failed: {}", strip_os_error(&e)),
            )
        })?;
        let mut buf = vec![0u8; UDP_BUFFER];
        loop {
            let n = socket.recv(&mut buf).await.map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused => Failure::new(
                    FailureCause::Refused,
                    format!("DNS server {addr} unreachable (ICMP port unreachable)"),
                ),
                _ => Failure::io(
                    &e,
                    format!("receiving from {addr} failed: {}", strip_os_error(&e)),
                ),
            })?;
            match read_reply(&buf[..n], id, &self.question) {
                Err(ReplyError::WrongId) => continue,
                other => return other.map_err(|e| self.bad_reply(e)),
            }
        }
    }

    async fn over_tcp(&self, query: &[u8], id: u16) -> Result<DnsReply, Failure> {
        let addr = self.addr;
        let mut stream = connect_tcp(addr, &self.source).await?;
        // RFC 1035 §4.2.2: each message is preceded by its length.
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&u16::try_from(query.len()).unwrap_or(u16::MAX).to_be_bytes());
        framed.extend_from_slice(query);
        let io_err = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Failure::new(
                FailureCause::Closed,
                format!("DNS server {addr} closed the connection without a reply"),
            ),
            _ => Failure::io(
                &e,
                format!("DNS over TCP with {addr} failed: {}", strip_os_error(&e)),
            ),
        };
        stream.write_all(&framed).await.map_err(io_err)?;
        let len = stream.read_u16().await.map_err(io_err)?;
        let mut msg = vec![0u8; usize::from(len)];
        stream.read_exact(&mut msg).await.map_err(io_err)?;
        // One query per connection: another id is as wrong as any other bad reply.
        read_reply(&msg, id, &self.question).map_err(|e| self.bad_reply(e))
    }
}

/// A recursion-desired query for (`name`, `qtype`, IN), with id 0, and the question a
/// reply must repeat.
pub(crate) fn encode_query(
    name: &str,
    qtype: RecordType,
    edns: bool,
) -> Result<(Query, Vec<u8>), String> {
    let mut parsed = Name::from_ascii(name).map_err(|e| format!("cannot query {name}: {e}"))?;
    // Names in the file are absolute; so are the ones a reply carries.
    parsed.set_fqdn(true);
    let question = Query::query(parsed, qtype);
    let mut message = Message::new(0, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(question.clone());
    if edns {
        let mut opt = Edns::new();
        opt.set_max_payload(EDNS_PAYLOAD).set_version(0);
        message.set_edns(opt);
    }
    let bytes = message
        .to_vec()
        .map_err(|e| format!("cannot query {name}: {e}"))?;
    Ok((question, bytes))
}

/// Judges `msg` as the reply to the query with id `id` asking `question`.
pub(crate) fn read_reply(msg: &[u8], id: u16, question: &Query) -> Result<DnsReply, ReplyError> {
    // The id and QR bit first (RFC 1035 §4.1.1): a stray datagram costs no decoding.
    let Some(header) = msg.get(..4) else {
        return Err(ReplyError::Malformed("shorter than a DNS header".into()));
    };
    if header[2] & 0x80 == 0 {
        return Err(ReplyError::Malformed("a query, not a response".into()));
    }
    if u16::from_be_bytes([header[0], header[1]]) != id {
        return Err(ReplyError::WrongId);
    }
    let truncated = header[2] & 0x02 != 0;
    let message = match Message::from_vec(msg) {
        Ok(m) => m,
        // A truncated reply may stop anywhere after its question: judge what is there.
        Err(_) if truncated => {
            let mut cut = msg.to_vec();
            // Zero counts of answers, authorities and additionals: header and question only.
            if let Some(counts) = cut.get_mut(6..12) {
                counts.fill(0);
            }
            Message::from_vec(&cut).map_err(|e| ReplyError::Malformed(e.to_string()))?
        }
        Err(e) => return Err(ReplyError::Malformed(e.to_string())),
    };
    let rcode = message.metadata.response_code;
    // RFC 1035 §4.1.2 has the question copied into the response; a server may leave it
    // out of an error reply, but it may not answer another one.
    match message.queries.as_slice() {
        [] if rcode != ResponseCode::NoError => {}
        [q] if q.name == question.name
            && q.query_type == question.query_type
            && q.query_class == question.query_class => {}
        [] => return Err(ReplyError::OtherQuestion("no question".into())),
        [q, rest @ ..] => {
            let more = if rest.is_empty() {
                String::new()
            } else {
                format!(" and {} more", rest.len())
            };
            return Err(ReplyError::OtherQuestion(format!(
                "{} {}{}{more}",
                q.name,
                q.query_type,
                if q.query_class == DNSClass::IN {
                    String::new()
                } else {
                    format!(" {}", q.query_class)
                }
            )));
        }
    }
    let addresses = message
        .answers
        .iter()
        .filter(|r| r.dns_class == DNSClass::IN)
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    Ok(DnsReply {
        rcode,
        truncated,
        answer_count: message.answers.len(),
        addresses,
    })
}

fn record_type(t: DnsType) -> RecordType {
    match t {
        DnsType::A => RecordType::A,
        DnsType::Aaaa => RecordType::AAAA,
        DnsType::Ns => RecordType::NS,
        DnsType::Cname => RecordType::CNAME,
        DnsType::Soa => RecordType::SOA,
        DnsType::Mx => RecordType::MX,
        DnsType::Txt => RecordType::TXT,
    }
}

fn response_code(r: DnsRcode) -> ResponseCode {
    match r {
        DnsRcode::NoError => ResponseCode::NoError,
        DnsRcode::FormErr => ResponseCode::FormErr,
        DnsRcode::ServFail => ResponseCode::ServFail,
        DnsRcode::NxDomain => ResponseCode::NXDomain,
        DnsRcode::NotImp => ResponseCode::NotImp,
        DnsRcode::Refused => ResponseCode::Refused,
    }
}

/// `SERVFAIL`, or `RCODE 9` for the ones without a common name (as dig prints them).
pub(crate) fn rcode_name(code: ResponseCode) -> String {
    match u16::from(code) {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        16 => "BADVERS".into(),
        other => format!("RCODE {other}"),
    }
}

/// Query ids: unpredictable enough that a stray reply does not match (this is a health
/// check, not a resolver, so spoofing is not the concern).
fn query_id() -> u16 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let mut z = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question(name: &str, qtype: RecordType) -> Query {
        encode_query(name, qtype, false).expect("encode").0
    }

    /// A reply to `query` (its bytes) with `rcode` and the given A/AAAA answers, built
    /// with hickory the way a server would.
    fn reply(query: &[u8], id: u16, rcode: ResponseCode, answers: &[IpAddr]) -> Vec<u8> {
        let asked = Message::from_vec(query).expect("our query decodes");
        let mut m = Message::response(id, OpCode::Query);
        m.metadata.response_code = rcode;
        m.add_queries(asked.queries.iter().cloned());
        for ip in answers {
            let data = match ip {
                IpAddr::V4(v4) => RData::A((*v4).into()),
                IpAddr::V6(v6) => RData::AAAA((*v6).into()),
            };
            let name = asked.queries[0].name.clone();
            m.add_answer(hickory_proto::rr::Record::from_rdata(name, 60, data));
        }
        m.to_vec().expect("encode reply")
    }

    #[test]
    fn query_layout_with_and_without_edns() {
        let (_, q) = encode_query("example.org", RecordType::A, false).expect("encode");
        // id 0, RD, one question, nothing else (RFC 1035 §4.1.1).
        assert_eq!(&q[..12], &[0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..], b"\x07example\x03org\x00\x00\x01\x00\x01");
        let (_, q) = encode_query("example.org.", RecordType::A, true).expect("encode");
        // One additional record: the OPT pseudo-RR (RFC 6891 §6.1.2): root name, type 41,
        // CLASS = payload size, TTL = extended rcode 0, version 0, flags 0; no options.
        assert_eq!(&q[10..12], &[0, 1]);
        let opt = &q[q.len() - 11..];
        assert_eq!(opt, &[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        let (_, root) = encode_query(".", RecordType::SOA, false).expect("root");
        assert_eq!(&root[12..], &[0, 0, 6, 0, 1]);
        assert!(encode_query("a..b", RecordType::A, false).is_err());
    }

    #[test]
    fn decodes_rcode_and_addresses() {
        let (asked, q) = encode_query("example.org", RecordType::A, true).expect("encode");
        let ips: Vec<IpAddr> = vec![
            "192.0.2.1".parse().expect("ip"),
            "2001:db8::1".parse().expect("ip"),
        ];
        let r = read_reply(&reply(&q, 0, ResponseCode::NoError, &ips), 0, &asked).expect("decode");
        assert_eq!(
            (r.rcode, r.answer_count, r.truncated),
            (ResponseCode::NoError, 2, false)
        );
        assert_eq!(r.addresses, ips);
        let nx = reply(&q, 0, ResponseCode::NXDomain, &[]);
        assert_eq!(
            read_reply(&nx, 0, &asked).expect("decode").rcode,
            ResponseCode::NXDomain
        );
        assert_eq!(rcode_name(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode_name(ResponseCode::from_low(9)), "RCODE 9");
    }

    /// RFC 1035 §7.3: a resolver checks that a reply answers the question it asked.
    #[test]
    fn a_reply_to_another_question_is_refused() {
        let (asked, q) = encode_query("example.org", RecordType::A, false).expect("encode");
        let (_, other) = encode_query("example.net", RecordType::A, false).expect("encode");
        let r = read_reply(&reply(&other, 0, ResponseCode::NoError, &[]), 0, &asked);
        assert_eq!(r, Err(ReplyError::OtherQuestion("example.net. A".into())));
        let (_, aaaa) = encode_query("example.org", RecordType::AAAA, false).expect("encode");
        let r = read_reply(&reply(&aaaa, 0, ResponseCode::NoError, &[]), 0, &asked);
        assert!(matches!(r, Err(ReplyError::OtherQuestion(_))), "{r:?}");
        // Case does not matter (RFC 4343), and an error reply may omit the question.
        let (_, upper) = encode_query("EXAMPLE.org", RecordType::A, false).expect("encode");
        assert!(read_reply(&reply(&upper, 0, ResponseCode::NoError, &[]), 0, &asked).is_ok());
        let mut m = Message::response(0, OpCode::Query);
        m.metadata.response_code = ResponseCode::FormErr;
        let bare = m.to_vec().expect("encode");
        assert_eq!(
            read_reply(&bare, 0, &asked).expect("decode").rcode,
            ResponseCode::FormErr
        );
        m.metadata.response_code = ResponseCode::NoError;
        let bare = m.to_vec().expect("encode");
        assert_eq!(
            read_reply(&bare, 0, &asked),
            Err(ReplyError::OtherQuestion("no question".into()))
        );
        let _ = q;
    }

    #[test]
    fn rejects_wrong_id_queries_and_cut_messages() {
        let (asked, q) = encode_query("example.org", RecordType::A, false).expect("encode");
        let msg = reply(
            &q,
            7,
            ResponseCode::NoError,
            &["192.0.2.1".parse().expect("ip")],
        );
        assert_eq!(read_reply(&msg, 8, &asked), Err(ReplyError::WrongId));
        assert!(matches!(
            read_reply(&q, 0, &asked),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            read_reply(&msg[..msg.len() - 1], 7, &asked),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            read_reply(&msg[..3], 7, &asked),
            Err(ReplyError::Malformed(_))
        ));
        // TC set and cut inside the answers: the header and question still count.
        let mut cut = msg[..msg.len() - 3].to_vec();
        cut[2] |= 0x02;
        let r = read_reply(&cut, 7, &asked).expect("truncated reply");
        assert!(r.truncated);
        assert!(r.addresses.is_empty());
    }

    #[test]
    fn never_panics_on_any_prefix_or_byte_flip() {
        let asked = question("example.org", RecordType::A);
        let (_, q) = encode_query("example.org", RecordType::A, true).expect("encode");
        let msg = reply(
            &q,
            7,
            ResponseCode::NoError,
            &["192.0.2.1".parse().expect("ip"), "::1".parse().expect("ip")],
        );
        for cut in 0..msg.len() {
            let _ = read_reply(&msg[..cut], 7, &asked);
        }
        for i in 0..msg.len() {
            for b in [0u8, 0x3f, 0xc0, 0xff] {
                let mut m = msg.clone();
                m[i] = b;
                let _ = read_reply(&m, 7, &asked);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_or_error_without_panicking(
            msg in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            id in proptest::prelude::any::<u16>(),
        ) {
            let asked = question("example.org", RecordType::A);
            let _ = read_reply(&msg, id, &asked);
        }
    }
}
