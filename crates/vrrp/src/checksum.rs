//! The Internet checksum (RFC 1071) and the pseudo-headers VRRPv3 puts under it.
//!
//! VRRPv2 sums the VRRP message alone (RFC 3768 §5.3.8). VRRPv3 sums a pseudo-header
//! followed by the message, for IPv4 as well as IPv6 (RFC 5798 §5.2.8). keepalived
//! computes and requires the IPv4 pseudo-header form for v3, so that is what vigil sends;
//! RFC 9568 §5.2.8 later changed IPv4 to message-only, which a receiver may choose to
//! accept as well (see [`crate::ChecksumForm`]).

use std::net::{Ipv4Addr, Ipv6Addr};

/// IP protocol number of VRRP (RFC 5798 §5.1.1.4 and §5.1.2.4): the pseudo-headers
/// below carry it, and the advert socket opens it.
pub const IP_PROTOCOL_VRRP: u8 = 112;

/// Running one's-complement sum over a sequence of byte slices treated as one stream.
///
/// Slices are joined before pairing bytes into 16-bit words, so an odd-length slice in the
/// middle does not shift the words after it.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct OnesComplementSum {
    sum: u64,
    pending_high_byte: Option<u8>,
}

impl OnesComplementSum {
    pub(crate) fn add(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        if let Some(high) = self.pending_high_byte.take() {
            match rest.split_first() {
                Some((&low, tail)) => {
                    self.sum += u64::from(u16::from_be_bytes([high, low]));
                    rest = tail;
                }
                None => {
                    self.pending_high_byte = Some(high);
                    return;
                }
            }
        }
        let mut words = rest.chunks_exact(2);
        for word in &mut words {
            self.sum += u64::from(u16::from_be_bytes([word[0], word[1]]));
        }
        if let [last] = words.remainder() {
            self.pending_high_byte = Some(*last);
        }
    }

    /// The one's complement of the folded sum: the value to put in a checksum field, or
    /// zero when verifying a message whose checksum field was included in the sum.
    pub(crate) fn finish(self) -> u16 {
        let mut sum = self.sum;
        if let Some(high) = self.pending_high_byte {
            // RFC 1071: an odd trailing byte is padded with a zero low byte.
            sum += u64::from(u16::from_be_bytes([high, 0]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        // Folded to 16 bits above, so the cast loses nothing.
        !(sum as u16)
    }
}

/// Checksum of the VRRP message alone: VRRPv2 (RFC 3768 §5.3.8), and the IPv4 form of
/// RFC 9568 §5.2.8.
pub(crate) fn message_only(message: &[u8]) -> u16 {
    let mut sum = OnesComplementSum::default();
    sum.add(message);
    sum.finish()
}

/// VRRPv3 over IPv4: the classic IPv4 pseudo-header (source, destination, zero, protocol
/// 112, VRRP length) followed by the message. This is what RFC 5798 §5.2.8 is read to mean
/// for IPv4 and what keepalived computes.
pub(crate) fn with_ipv4_pseudo_header(
    source: Ipv4Addr,
    destination: Ipv4Addr,
    message: &[u8],
) -> u16 {
    let mut sum = OnesComplementSum::default();
    sum.add(&source.octets());
    sum.add(&destination.octets());
    sum.add(&[0, IP_PROTOCOL_VRRP]);
    sum.add(&length_u16(message).to_be_bytes());
    sum.add(message);
    sum.finish()
}

/// VRRPv3 over IPv6: the RFC 2460 §8.1 pseudo-header (source, destination, 32-bit
/// upper-layer length, three zero bytes, next header 112) followed by the message
/// (RFC 5798 §5.2.8).
pub(crate) fn with_ipv6_pseudo_header(
    source: Ipv6Addr,
    destination: Ipv6Addr,
    message: &[u8],
) -> u16 {
    let mut sum = OnesComplementSum::default();
    sum.add(&source.octets());
    sum.add(&destination.octets());
    sum.add(&length_u32(message).to_be_bytes());
    sum.add(&[0, 0, 0, IP_PROTOCOL_VRRP]);
    sum.add(message);
    sum.finish()
}

// A VRRP message is at most 8 + 255 * 16 bytes, so these never saturate for real messages;
// saturating keeps arbitrary input from panicking.
fn length_u16(message: &[u8]) -> u16 {
    u16::try_from(message.len()).unwrap_or(u16::MAX)
}

fn length_u32(message: &[u8]) -> u32 {
    u32::try_from(message.len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_sums_to_the_published_value() {
        // RFC 1071 §3 worked example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 (before
        // complement).
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(message_only(&bytes), !0xddf2);
    }

    #[test]
    fn splitting_the_stream_at_odd_offsets_does_not_change_the_sum() {
        let bytes: Vec<u8> = (0u8..=40).collect();
        let whole = message_only(&bytes);
        for split in 0..bytes.len() {
            let mut sum = OnesComplementSum::default();
            sum.add(&bytes[..split]);
            sum.add(&bytes[split..]);
            assert_eq!(sum.finish(), whole, "split at {split}");
        }
    }

    #[test]
    fn odd_trailing_byte_is_padded_with_zero() {
        assert_eq!(message_only(&[0x12]), !0x1200);
    }

    #[test]
    fn a_message_carrying_its_checksum_verifies_to_zero() {
        let mut message = vec![0x31, 0x01, 0x64, 0x01, 0x00, 0x64, 0x00, 0x00, 10, 0, 0, 1];
        let checksum = message_only(&message);
        message[6..8].copy_from_slice(&checksum.to_be_bytes());
        assert_eq!(message_only(&message), 0);
    }
}
