//! Why a received packet is dropped: one reason per packet, each with a stable metric
//! label. The structural decode (`packet`) and the receive rules (`receive`) both end in
//! one of these.

use thiserror::Error;

/// Why a received packet was dropped. Each has a stable metric label ([`Self::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum DropReason {
    /// Shorter than its fixed fields plus the address count (and v2 auth data).
    #[error("packet shorter than the VRRP message it announces")]
    Truncated,
    /// Longer than the fixed fields plus the address count announce.
    #[error("packet length does not match its address count")]
    Length,
    /// TTL or hop limit other than 255.
    #[error("TTL / hop limit is not 255")]
    Ttl,
    /// Version field other than the instance's.
    #[error("VRRP version does not match the instance")]
    Version,
    /// Type field other than 1 (ADVERTISEMENT).
    #[error("unknown VRRP packet type")]
    Type,
    #[error("bad VRRP checksum")]
    Checksum,
    /// VRID not this instance's. The shell sets aside adverts for a VRID another local
    /// instance runs on the interface ([`crate::is_for_sibling`]), so what it counts under this
    /// reason is configured nowhere on the interface (RFC 5798 §7.1).
    #[error("VRID does not match the instance")]
    Vrid,
    /// The local router owns the addresses, so no other router may advertise them.
    #[error("local router is the address owner")]
    LocalOwner,
    /// VRRPv2 authentication type unknown or different from the configured one.
    #[error("VRRPv2 authentication type mismatch")]
    AuthType,
    /// VRRPv2 password does not match.
    #[error("VRRPv2 authentication failed")]
    Auth,
    /// VRRPv2 interval differs from the configured one, or a VRRPv3 interval of zero.
    #[error("advertisement interval mismatch")]
    Interval,
    /// IP source, destination and instance are not all one address family, or VRRPv2 over
    /// IPv6.
    #[error("address family mismatch")]
    AddressFamily,
    /// VRRPv2 address list differs from the configured one and the sender is not the
    /// address owner.
    #[error("virtual address list mismatch")]
    AddressList,
    /// IP source not in [`crate::ReceiveRules::allowed_sources`] (a unicast peer list or the
    /// multicast allow-list).
    #[error("source is not an allowed peer")]
    UnknownPeer,
}

impl DropReason {
    /// Every reason, for pre-registering metric series.
    pub const ALL: [Self; 14] = [
        Self::Truncated,
        Self::Length,
        Self::Ttl,
        Self::Version,
        Self::Type,
        Self::Checksum,
        Self::Vrid,
        Self::LocalOwner,
        Self::AuthType,
        Self::Auth,
        Self::Interval,
        Self::AddressFamily,
        Self::AddressList,
        Self::UnknownPeer,
    ];

    /// Stable snake_case label for metrics; never change a published one.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::Length => "length",
            Self::Ttl => "ttl",
            Self::Version => "version",
            Self::Type => "type",
            Self::Checksum => "checksum",
            Self::Vrid => "vrid",
            Self::LocalOwner => "local_owner",
            Self::AuthType => "auth_type",
            Self::Auth => "auth",
            Self::Interval => "interval",
            Self::AddressFamily => "address_family",
            Self::AddressList => "address_list",
            Self::UnknownPeer => "unknown_peer",
        }
    }
}
