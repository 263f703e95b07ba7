//! Netlink and generic-netlink framing on `netlink-packet-core` and
//! `netlink-packet-generic`: their buffers write and read every header and attribute
//! header (`NetlinkBuffer`, `GenlHeader`, `NlaBuffer`, `ErrorBuffer`, `DoneBuffer`) and
//! the controller's family lookup is their `GenlCtrl` message. What stays here is the
//! length checking that turns a malformed reply into a typed [`DecodeError`] (fuzzed),
//! and the zero-copy iteration the reconciler's dumps and pipelined acks go through.
//!
//! Everything here is pure: it builds request bytes into a `Vec<u8>` and reads reply
//! bytes from a `&[u8]`. No socket is touched. All integers in netlink headers and in
//! attributes are host byte order unless an attribute says otherwise (ports and IPv4
//! masks in IPVS are network order; see [`crate::codec`]).
//!
//! Layout reminders (`include/uapi/linux/netlink.h`, `include/uapi/linux/genetlink.h`):
//!
//! ```text
//! nlmsghdr   { u32 len; u16 type; u16 flags; u32 seq; u32 pid }      16 bytes
//! genlmsghdr { u8 cmd; u8 version; u16 reserved }                      4 bytes
//! nlattr     { u16 len; u16 type } + payload, padded to 4 bytes        4 bytes + ...
//! nlmsgerr   { i32 error; nlmsghdr msg } [+ msg payload] [+ TLVs]
//! ```

use netlink_packet_core::{
    DoneBuffer, Emitable, ErrorBuffer, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NlaBuffer,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlHeader, GenlMessage};

use crate::error::DecodeError;

/// `NLMSG_ALIGNTO` / `NLA_ALIGNTO` (netlink.h).
pub const ALIGNTO: usize = netlink_packet_core::NLA_ALIGNTO;
/// `sizeof(struct nlmsghdr)` (netlink.h).
pub const NLMSG_HDRLEN: usize = 16;
/// `GENL_HDRLEN` (genetlink.h).
pub use netlink_packet_generic::constants::GENL_HDRLEN;
/// `NLA_HDRLEN` (netlink.h).
pub const NLA_HDRLEN: usize = netlink_packet_core::NLA_HEADER_SIZE;
/// `NLMSG_MIN_TYPE` (netlink.h): types below are control messages.
pub const NLMSG_MIN_TYPE: u16 = 0x10;

pub use netlink_packet_core::{
    NLA_F_NESTED, NLA_F_NET_BYTEORDER, NLA_TYPE_MASK, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED,
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN,
};
/// `NLM_F_MULTI` (netlink.h): part of a multipart (dump) reply.
pub const NLM_F_MULTI: u16 = netlink_packet_core::NLM_F_MULTIPART;

/// `NLMSGERR_ATTR_MSG` (netlink.h): human-readable error string.
pub const NLMSGERR_ATTR_MSG: u16 = 1;
/// `NLMSGERR_ATTR_OFFS` (netlink.h): offset of the offending attribute in the request.
pub const NLMSGERR_ATTR_OFFS: u16 = 2;
/// `NLMSGERR_ATTR_MISS_TYPE` (netlink.h): type of a missing required attribute.
pub const NLMSGERR_ATTR_MISS_TYPE: u16 = 5;

pub use netlink_packet_generic::constants::{
    CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME, CTRL_ATTR_VERSION, CTRL_CMD_GETFAMILY,
    CTRL_CMD_NEWFAMILY, GENL_ID_CTRL,
};

const fn align(len: usize) -> usize {
    (len + ALIGNTO - 1) & !(ALIGNTO - 1)
}

/// What follows a header of `header_len` bytes in the `len` (its own length field,
/// `len_field`) bytes at the front of `rest`, a message or attribute (`what`); `rest`
/// moves past it and its alignment padding.
fn take_aligned<'a>(
    rest: &mut &'a [u8],
    len: usize,
    header_len: usize,
    len_field: &'static str,
    what: &'static str,
) -> Result<&'a [u8], DecodeError> {
    if len < header_len {
        return Err(DecodeError::BadLength {
            what: len_field,
            len,
        });
    }
    if len > rest.len() {
        return Err(DecodeError::Truncated {
            what,
            need: len,
            have: rest.len(),
        });
    }
    let body = &rest[header_len..len];
    *rest = &rest[align(len).min(rest.len())..];
    Ok(body)
}

/// Builds one netlink message (header, generic-netlink header, attributes) at the end of
/// a buffer. Several messages can be built back to back into one buffer and sent with a
/// single `send` (that is how batches are pipelined).
#[derive(Debug)]
pub struct MessageWriter<'a> {
    buf: &'a mut Vec<u8>,
    start: usize,
}

impl<'a> MessageWriter<'a> {
    /// Starts a generic-netlink message: `nlmsghdr` (length filled in by [`Self::finish`])
    /// and `genlmsghdr`.
    pub fn new(
        buf: &'a mut Vec<u8>,
        msg_type: u16,
        flags: u16,
        seq: u32,
        cmd: u8,
        version: u8,
    ) -> Self {
        let start = buf.len();
        buf.resize(start + NLMSG_HDRLEN + GENL_HDRLEN, 0);
        // nlmsg_len is patched in finish(); nlmsg_pid stays 0 (the kernel fills ours in).
        let mut header = NetlinkBuffer::new(&mut buf[start..]);
        header.set_message_type(msg_type);
        header.set_flags(flags);
        header.set_sequence_number(seq);
        GenlHeader { cmd, version }.emit(&mut buf[start + NLMSG_HDRLEN..]);
        MessageWriter { buf, start }
    }

    /// Appends an attribute with a raw payload, padded to 4 bytes.
    pub fn put(&mut self, kind: u16, payload: &[u8]) {
        let at = self.buf.len();
        let len = NLA_HDRLEN + payload.len();
        self.buf.resize(at + len, 0);
        let mut nla = NlaBuffer::new(&mut self.buf[at..]);
        // Attribute payloads here are at most a few dozen bytes; saturate rather than wrap.
        nla.set_length(u16::try_from(len).unwrap_or(u16::MAX));
        nla.set_kind(kind);
        nla.value_mut().copy_from_slice(payload);
        self.pad();
    }

    /// `u8` attribute.
    pub fn put_u8(&mut self, kind: u16, v: u8) {
        self.put(kind, &[v]);
    }
    /// `u16` attribute, host order.
    pub fn put_u16(&mut self, kind: u16, v: u16) {
        self.put(kind, &v.to_ne_bytes());
    }
    /// `u16` attribute, network order (`nla_put_be16`).
    pub fn put_be16(&mut self, kind: u16, v: u16) {
        self.put(kind, &v.to_be_bytes());
    }
    /// `u32` attribute, host order.
    pub fn put_u32(&mut self, kind: u16, v: u32) {
        self.put(kind, &v.to_ne_bytes());
    }
    /// NUL-terminated string attribute (`nla_put_string`).
    pub fn put_str(&mut self, kind: u16, s: &str) {
        let mut payload = Vec::with_capacity(s.len() + 1);
        payload.extend_from_slice(s.as_bytes());
        payload.push(0);
        self.put(kind, &payload);
    }

    /// Opens a nested attribute; returns a token for [`Self::end_nested`]. The type carries
    /// `NLA_F_NESTED`, as the kernel's `nla_nest_start` does since 5.2.
    pub fn begin_nested(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.buf.resize(at + NLA_HDRLEN, 0);
        let mut nla = NlaBuffer::new(&mut self.buf[at..]);
        nla.set_kind(kind);
        nla.set_nested_flag();
        at
    }

    /// Closes a nested attribute opened at `token`.
    pub fn end_nested(&mut self, token: usize) {
        let len = self.buf.len() - token;
        NlaBuffer::new(&mut self.buf[token..]).set_length(u16::try_from(len).unwrap_or(u16::MAX));
    }

    fn pad(&mut self) {
        let want = align(self.buf.len() - self.start) + self.start;
        self.buf.resize(want, 0);
    }

    /// Writes the final length into the header.
    pub fn finish(self) {
        let len = self.buf.len() - self.start;
        NetlinkBuffer::new(&mut self.buf[self.start..])
            .set_length(u32::try_from(len).unwrap_or(u32::MAX));
    }
}

/// A parsed `nlmsghdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// `nlmsg_len`.
    pub len: u32,
    /// `nlmsg_type`: a family id, or `NLMSG_ERROR`/`NLMSG_DONE`/...
    pub msg_type: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// `nlmsg_pid`.
    pub pid: u32,
}

impl Header {
    fn parse(b: &[u8]) -> Result<Header, DecodeError> {
        if b.len() < NLMSG_HDRLEN {
            return Err(DecodeError::Truncated {
                what: "nlmsghdr",
                need: NLMSG_HDRLEN,
                have: b.len(),
            });
        }
        // Unchecked on purpose: the length field is judged by the caller, which
        // reports it as a typed error.
        let b = NetlinkBuffer::new(b);
        Ok(Header {
            len: b.length(),
            msg_type: b.message_type(),
            flags: b.flags(),
            seq: b.sequence_number(),
            pid: b.port_number(),
        })
    }
}

/// Extended-ack information attached to an error (or to a dump's `NLMSG_DONE`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtAck {
    /// `NLMSGERR_ATTR_MSG`: the kernel's explanation, if it gave one.
    pub message: Option<String>,
    /// `NLMSGERR_ATTR_OFFS`: byte offset of the offending attribute in the request.
    pub offset: Option<u32>,
    /// `NLMSGERR_ATTR_MISS_TYPE`: a required attribute that was missing.
    pub missing_type: Option<u32>,
}

/// One message out of a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A generic-netlink data message (type >= `NLMSG_MIN_TYPE`).
    Data {
        /// Its netlink header.
        header: Header,
        /// `genlmsghdr.cmd`.
        cmd: u8,
        /// `genlmsghdr.version`.
        version: u8,
        /// The attribute area after the `genlmsghdr`.
        attrs: &'a [u8],
    },
    /// `NLMSG_ERROR`. `errno` is positive, or 0 for a plain ack.
    Error {
        /// Its netlink header (`seq` is the request's).
        header: Header,
        /// Positive errno; 0 = success ack.
        errno: i32,
        /// Extended ack, if the kernel attached one.
        ext_ack: ExtAck,
    },
    /// `NLMSG_DONE`. `errno` is positive if the dump failed, else 0.
    Done {
        /// Its netlink header.
        header: Header,
        /// Positive errno; 0 = the dump completed.
        errno: i32,
        /// Extended ack, if the kernel attached one.
        ext_ack: ExtAck,
    },
    /// `NLMSG_NOOP`, `NLMSG_OVERRUN` or another control type: ignored by callers.
    Other {
        /// Its netlink header.
        header: Header,
    },
}

impl Message<'_> {
    /// The message's netlink header.
    pub fn header(&self) -> &Header {
        match self {
            Message::Data { header, .. }
            | Message::Error { header, .. }
            | Message::Done { header, .. }
            | Message::Other { header } => header,
        }
    }
}

/// Iterates over the messages in one received datagram. After the first error it stops.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
    failed: bool,
}

/// Splits a datagram into messages.
pub fn messages(datagram: &[u8]) -> Messages<'_> {
    Messages {
        rest: datagram,
        failed: false,
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let r = self.parse_one();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

impl<'a> Messages<'a> {
    fn parse_one(&mut self) -> Result<Message<'a>, DecodeError> {
        let header = Header::parse(self.rest)?;
        let body = take_aligned(
            &mut self.rest,
            header.len as usize,
            NLMSG_HDRLEN,
            "nlmsghdr.nlmsg_len",
            "netlink message",
        )?;

        match header.msg_type {
            NLMSG_ERROR | NLMSG_DONE => {
                let (errno, ext_ack) = parse_error_body(&header, body)?;
                if header.msg_type == NLMSG_ERROR {
                    Ok(Message::Error {
                        header,
                        errno,
                        ext_ack,
                    })
                } else {
                    Ok(Message::Done {
                        header,
                        errno,
                        ext_ack,
                    })
                }
            }
            t if t >= NLMSG_MIN_TYPE => {
                if body.len() < GENL_HDRLEN {
                    return Err(DecodeError::Truncated {
                        what: "genlmsghdr",
                        need: GENL_HDRLEN,
                        have: body.len(),
                    });
                }
                Ok(Message::Data {
                    header,
                    cmd: body[0],
                    version: body[1],
                    attrs: &body[GENL_HDRLEN..],
                })
            }
            _ => Ok(Message::Other { header }),
        }
    }
}

/// Body of `NLMSG_ERROR` (`struct nlmsgerr`) or `NLMSG_DONE` (an `int`, possibly followed by
/// TLVs). A `NLMSG_DONE` with an empty body (old kernels, other families) means success.
fn parse_error_body(header: &Header, body: &[u8]) -> Result<(i32, ExtAck), DecodeError> {
    if header.msg_type == NLMSG_DONE && body.is_empty() {
        return Ok((0, ExtAck::default()));
    }
    if body.len() < 4 {
        return Err(DecodeError::Truncated {
            what: "nlmsgerr.error",
            need: 4,
            have: body.len(),
        });
    }
    let raw = if header.msg_type == NLMSG_ERROR {
        ErrorBuffer::new(body).code().map_or(0, |c| c.get())
    } else {
        DoneBuffer::new(body).code()
    };
    // The kernel sends -errno; anything positive is not something it produces.
    let errno = raw
        .checked_neg()
        .filter(|e| *e >= 0)
        .ok_or(DecodeError::InvalidValue {
            what: "nlmsgerr.error",
            value: i64::from(raw),
        })?;
    let mut tlv_at = 4;
    if header.msg_type == NLMSG_ERROR {
        // The echoed request header, and unless capped its payload too.
        let inner = Header::parse(&body[4..])?;
        let echoed = if header.flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            (inner.len as usize).max(NLMSG_HDRLEN)
        };
        tlv_at = 4 + align(echoed);
    }
    let mut ext_ack = ExtAck::default();
    if header.flags & NLM_F_ACK_TLVS != 0 && tlv_at <= body.len() {
        for attr in attrs(&body[tlv_at..]) {
            let attr = attr?;
            match attr.kind {
                NLMSGERR_ATTR_MSG => ext_ack.message = Some(attr.string("NLMSGERR_ATTR_MSG")?),
                NLMSGERR_ATTR_OFFS => ext_ack.offset = Some(attr.u32("NLMSGERR_ATTR_OFFS")?),
                NLMSGERR_ATTR_MISS_TYPE => {
                    ext_ack.missing_type = Some(attr.u32("NLMSGERR_ATTR_MISS_TYPE")?);
                }
                _ => {}
            }
        }
    }
    Ok((errno, ext_ack))
}

/// One attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    /// Type with `NLA_F_NESTED`/`NLA_F_NET_BYTEORDER` masked off.
    pub kind: u16,
    /// Payload, without header or padding.
    pub payload: &'a [u8],
}

/// Iterates over a run of attributes. After the first error it stops.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
    failed: bool,
}

/// Iterates over the attributes in `area`.
pub fn attrs(area: &[u8]) -> Attrs<'_> {
    Attrs {
        rest: area,
        failed: false,
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let r = self.parse_one();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

impl<'a> Attrs<'a> {
    fn parse_one(&mut self) -> Result<Attr<'a>, DecodeError> {
        if self.rest.len() < NLA_HDRLEN {
            return Err(DecodeError::Truncated {
                what: "nlattr header",
                need: NLA_HDRLEN,
                have: self.rest.len(),
            });
        }
        let nla = NlaBuffer::new(self.rest);
        let (len, kind) = (usize::from(nla.length()), nla.kind());
        let payload = take_aligned(&mut self.rest, len, NLA_HDRLEN, "nlattr.nla_len", "nlattr")?;
        Ok(Attr { kind, payload })
    }
}

impl<'a> Attr<'a> {
    fn exact<const N: usize>(&self, what: &'static str) -> Result<[u8; N], DecodeError> {
        <[u8; N]>::try_from(self.payload).map_err(|_| DecodeError::BadLength {
            what,
            len: self.payload.len(),
        })
    }

    /// `u8` payload.
    pub fn u8(&self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.exact::<1>(what)?[0])
    }
    /// `u16` payload, host order.
    pub fn u16(&self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_ne_bytes(self.exact(what)?))
    }
    /// `u16` payload, network order.
    pub fn be16(&self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.exact(what)?))
    }
    /// `u32` payload, host order.
    pub fn u32(&self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_ne_bytes(self.exact(what)?))
    }
    /// `u64` payload, host order.
    pub fn u64(&self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_ne_bytes(self.exact(what)?))
    }
    /// String payload: up to the first NUL (or the whole payload if none), UTF-8.
    pub fn string(&self, what: &'static str) -> Result<String, DecodeError> {
        let end = self
            .payload
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(self.payload.len());
        std::str::from_utf8(&self.payload[..end])
            .map(str::to_owned)
            .map_err(|_| DecodeError::BadString { what })
    }
    /// Nested attributes inside this one.
    pub fn nested(&self) -> Attrs<'a> {
        attrs(self.payload)
    }
}

/// Encodes `CTRL_CMD_GETFAMILY` for `name` (the controller resolves a family name to its
/// id), as `netlink-packet-generic`'s controller message.
pub fn encode_get_family(buf: &mut Vec<u8>, seq: u32, name: &str) {
    let ctrl = GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(name.to_string())],
    };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK;
    header.sequence_number = seq;
    let mut message = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(GenlMessage::from_payload(ctrl)),
    );
    message.finalize();
    let at = buf.len();
    buf.resize(at + message.buffer_len(), 0);
    message.serialize(&mut buf[at..]);
}

/// A family as the controller describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyInfo {
    /// `CTRL_ATTR_FAMILY_ID`: the `nlmsg_type` to use for this family.
    pub id: u16,
    /// `CTRL_ATTR_VERSION`.
    pub version: u32,
}

/// Decodes the attribute area of a `CTRL_CMD_NEWFAMILY` reply.
pub fn decode_family(attr_area: &[u8]) -> Result<FamilyInfo, DecodeError> {
    let mut id = None;
    let mut version = 0;
    for a in attrs(attr_area) {
        let a = a?;
        match a.kind {
            CTRL_ATTR_FAMILY_ID => id = Some(a.u16("CTRL_ATTR_FAMILY_ID")?),
            CTRL_ATTR_VERSION => version = a.u32("CTRL_ATTR_VERSION")?,
            _ => {}
        }
    }
    Ok(FamilyInfo {
        id: id.ok_or(DecodeError::MissingAttr {
            what: "CTRL_ATTR_FAMILY_ID",
        })?,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ne_u16(b: &[u8]) -> u16 {
        u16::from_ne_bytes([b[0], b[1]])
    }

    #[test]
    fn get_family_bytes() {
        let mut buf = Vec::new();
        encode_get_family(&mut buf, 7, "IPVS");
        let mut want = Vec::new();
        want.extend_from_slice(&32u32.to_ne_bytes()); // 16 + 4 + attr(4 + 5, padded to 12)
        want.extend_from_slice(&0x10u16.to_ne_bytes());
        want.extend_from_slice(&5u16.to_ne_bytes()); // REQUEST | ACK
        want.extend_from_slice(&7u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        // CTRL_CMD_GETFAMILY, version 2: netlink-packet-generic's controller version.
        want.extend_from_slice(&[3, 2, 0, 0]);
        want.extend_from_slice(&9u16.to_ne_bytes());
        want.extend_from_slice(&2u16.to_ne_bytes());
        want.extend_from_slice(b"IPVS\0\0\0\0");
        assert_eq!(buf, want);
    }

    #[test]
    fn nested_and_padding() {
        let mut buf = Vec::new();
        let mut w = MessageWriter::new(&mut buf, 0x20, NLM_F_REQUEST, 1, 9, 1);
        let t = w.begin_nested(1);
        w.put_u8(2, 0xaa);
        w.put_be16(3, 0x1234);
        w.end_nested(t);
        w.finish();
        assert_eq!(buf.len(), 20 + 4 + 8 + 8);
        let attrs_area = &buf[20..];
        assert_eq!(ne_u16(&attrs_area[0..2]), 20);
        assert_eq!(ne_u16(&attrs_area[2..4]), 1 | NLA_F_NESTED);
        assert_eq!(&attrs_area[4..12], &[5, 0, 2, 0, 0xaa, 0, 0, 0]);
        assert_eq!(&attrs_area[12..20], &[6, 0, 3, 0, 0x12, 0x34, 0, 0]);
        let top: Vec<_> = attrs(attrs_area).collect::<Result<_, _>>().unwrap();
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].kind, 1);
        let inner: Vec<_> = top[0].nested().collect::<Result<_, _>>().unwrap();
        assert_eq!(inner[0].u8("x").unwrap(), 0xaa);
        assert_eq!(inner[1].be16("y").unwrap(), 0x1234);
    }

    #[test]
    fn attr_errors() {
        // header says 8 bytes, only 6 present
        let bad = [8u8, 0, 1, 0, 0, 0];
        let r: Result<Vec<_>, _> = attrs(&bad).collect();
        assert!(matches!(r, Err(DecodeError::Truncated { .. })));
        // nla_len < 4
        let bad = [2u8, 0, 1, 0];
        let r: Result<Vec<_>, _> = attrs(&bad).collect();
        assert!(matches!(r, Err(DecodeError::BadLength { .. })));
        // 2 trailing bytes
        let bad = [4u8, 0, 1, 0, 0, 0];
        let r: Result<Vec<_>, _> = attrs(&bad).collect();
        assert!(matches!(r, Err(DecodeError::Truncated { .. })));
        // wrong width
        let a = Attr {
            kind: 1,
            payload: &[1, 2, 3],
        };
        assert!(matches!(a.u32("x"), Err(DecodeError::BadLength { .. })));
    }

    fn error_msg(flags: u16, errno: i32, echoed_len: u32, extra: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&42u32.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&(-errno).to_ne_bytes());
        b.extend_from_slice(&echoed_len.to_ne_bytes());
        b.extend_from_slice(&[0u8; 12]);
        b.extend_from_slice(extra);
        let len = b.len() as u32;
        b[0..4].copy_from_slice(&len.to_ne_bytes());
        b
    }

    #[test]
    fn ack_and_error_with_tlvs() {
        let ack = error_msg(NLM_F_CAPPED, 0, 36, &[]);
        let m: Vec<_> = messages(&ack).collect::<Result<_, _>>().unwrap();
        assert!(matches!(m[0], Message::Error { errno: 0, .. }));

        let mut tlv = Vec::new();
        tlv.extend_from_slice(&9u16.to_ne_bytes());
        tlv.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        tlv.extend_from_slice(b"oops\0\0\0\0");
        let e = error_msg(NLM_F_CAPPED | NLM_F_ACK_TLVS, 17, 36, &tlv);
        let m: Vec<_> = messages(&e).collect::<Result<_, _>>().unwrap();
        match &m[0] {
            Message::Error {
                header,
                errno,
                ext_ack,
            } => {
                assert_eq!(header.seq, 42);
                assert_eq!(*errno, 17);
                assert_eq!(ext_ack.message.as_deref(), Some("oops"));
            }
            other => panic!("{other:?}"),
        }

        // Uncapped: the echoed request (36 bytes here: header + 20 bytes) precedes the TLVs.
        let mut extra = vec![0u8; 20];
        extra.extend_from_slice(&tlv);
        let e = error_msg(NLM_F_ACK_TLVS, 22, 36, &extra);
        let m: Vec<_> = messages(&e).collect::<Result<_, _>>().unwrap();
        assert!(
            matches!(&m[0], Message::Error { errno: 22, ext_ack, .. } if ext_ack.message.as_deref() == Some("oops"))
        );
    }

    #[test]
    fn message_errors() {
        let mut ack = error_msg(NLM_F_CAPPED, 0, 36, &[]);
        ack[0] = 200; // length past the buffer
        let r: Result<Vec<_>, _> = messages(&ack).collect();
        assert!(matches!(r, Err(DecodeError::Truncated { .. })));
        ack[0] = 3; // shorter than a header
        let r: Result<Vec<_>, _> = messages(&ack).collect();
        assert!(matches!(r, Err(DecodeError::BadLength { .. })));
        let r: Result<Vec<_>, _> = messages(&ack[..10]).collect();
        assert!(matches!(r, Err(DecodeError::Truncated { .. })));
    }
}
