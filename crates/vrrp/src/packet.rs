//! VRRP advertisement wire format: VRRPv3 (RFC 5798 §5.2) for IPv4 and IPv6 and VRRPv2
//! (RFC 3768 §5.3) for IPv4, with the RFC 2338 simple text password that keepalived still
//! speaks.
//!
//! ```text
//! VRRPv3 (RFC 5798 §5.2)                  VRRPv2 (RFC 3768 §5.3)
//!  0    4    8       16       24      31   0    4    8       16       24      31
//! |Ver=3|Typ|  VRID  |Priority|Count  |   |Ver=2|Typ|  VRID  |Priority|Count  |
//! |Rsvd|Max Adver Int|   Checksum      |   |AuthType|AdverInt|   Checksum      |
//! |   IPvX address(es), Count of them  |   |   IPv4 address(es), Count of them  |
//!                                          |   Authentication data (8 bytes)    |
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use thiserror::Error;

use crate::checksum;
use crate::drop_reason::DropReason;

pub use crate::checksum::IP_PROTOCOL_VRRP;
/// The only TTL / hop limit a VRRP packet may be sent or accepted with (RFC 5798 §5.1.1.3,
/// §5.1.2.3; RFC 3768 §5.2.3).
pub const REQUIRED_TTL: u8 = 255;
/// IPv4 multicast group for adverts (RFC 5798 §5.1.1.2).
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group for adverts (RFC 5798 §5.1.2.2).
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// Length of the fixed fields before the address list.
pub const FIXED_HEADER_LEN: usize = 8;
/// Length of the VRRPv2 authentication data that trails the address list.
pub const V2_AUTH_DATA_LEN: usize = 8;
/// Largest value of the 12-bit VRRPv3 Max Adver Int field, in centiseconds.
pub const V3_MAX_INTERVAL_CENTIS: u16 = 0x0fff;
/// The only packet type defined (RFC 5798 §5.2.2, RFC 3768 §5.3.2).
pub(crate) const TYPE_ADVERTISEMENT: u8 = 1;

const AUTH_TYPE_NONE: u8 = 0;
const AUTH_TYPE_SIMPLE_PASSWORD: u8 = 1;
const CENTISECOND: Duration = Duration::from_millis(10);

/// Protocol version of a VRRP instance; the two do not interoperate on one VRID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768: IPv4 only, interval in whole seconds, optional simple password.
    V2,
    /// RFC 5798: IPv4 and IPv6, interval in centiseconds, pseudo-header checksum.
    V3,
}

impl Version {
    /// The value of the 4-bit version field.
    pub fn number(self) -> u8 {
        match self {
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }
}

/// Address family of an instance, of its adverts and of the IP packets carrying them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => Self::Ipv4,
            IpAddr::V6(_) => Self::Ipv6,
        }
    }

    /// Bytes one address of this family takes in the address list.
    pub fn address_len(self) -> usize {
        match self {
            Self::Ipv4 => 4,
            Self::Ipv6 => 16,
        }
    }
}

/// The virtual addresses an advert carries; one family per advert (RFC 5798 §5.2.9:
/// "IPv4 and IPv6 MUST NOT both be carried in one IPvX Address field").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VirtualAddresses {
    V4(Vec<Ipv4Addr>),
    V6(Vec<Ipv6Addr>),
}

impl VirtualAddresses {
    pub fn family(&self) -> Family {
        match self {
            Self::V4(_) => Family::Ipv4,
            Self::V6(_) => Family::Ipv6,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::V4(list) => list.len(),
            Self::V6(list) => list.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The addresses as `IpAddr`, in wire order.
    pub fn to_ip_addrs(&self) -> Vec<IpAddr> {
        match self {
            Self::V4(list) => list.iter().copied().map(IpAddr::V4).collect(),
            Self::V6(list) => list.iter().copied().map(IpAddr::V6).collect(),
        }
    }

    /// Builds a single-family list; `None` if `addresses` mixes families.
    pub fn from_ip_addrs(family: Family, addresses: &[IpAddr]) -> Option<Self> {
        match family {
            Family::Ipv4 => addresses
                .iter()
                .map(|address| match address {
                    IpAddr::V4(v4) => Some(*v4),
                    IpAddr::V6(_) => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(Self::V4),
            Family::Ipv6 => addresses
                .iter()
                .map(|address| match address {
                    IpAddr::V6(v6) => Some(*v6),
                    IpAddr::V4(_) => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(Self::V6),
        }
    }
}

/// An RFC 2338 simple text password: up to 8 bytes, zero padded on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Password([u8; V2_AUTH_DATA_LEN]);

/// Rejected password.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("a VRRPv2 password is at most 8 bytes, got {0}")]
pub struct PasswordTooLong(pub usize);

impl Password {
    /// Zero-pads `secret` to 8 bytes, as keepalived does with `auth_pass`.
    pub fn new(secret: &[u8]) -> Result<Self, PasswordTooLong> {
        let mut padded = [0u8; V2_AUTH_DATA_LEN];
        padded
            .get_mut(..secret.len())
            .ok_or(PasswordTooLong(secret.len()))?
            .copy_from_slice(secret);
        Ok(Self(padded))
    }

    /// The padded bytes exactly as they appear on the wire.
    pub fn from_wire(bytes: [u8; V2_AUTH_DATA_LEN]) -> Self {
        Self(bytes)
    }

    pub fn as_wire(&self) -> &[u8; V2_AUTH_DATA_LEN] {
        &self.0
    }
}

impl fmt::Debug for Password {
    // Never print the secret into logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// VRRPv2 authentication (RFC 3768 §5.3.6 reserves types 1 and 2; type 1 is the RFC 2338
/// simple text password keepalived implements as `auth_type PASS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Type 0. The 8 authentication bytes are sent as zero and ignored on receipt
    /// (RFC 3768 §5.3.10).
    None,
    /// Type 1.
    SimplePassword(Password),
}

impl Auth {
    pub fn type_number(&self) -> u8 {
        match self {
            Self::None => AUTH_TYPE_NONE,
            Self::SimplePassword(_) => AUTH_TYPE_SIMPLE_PASSWORD,
        }
    }
}

/// The fields whose layout differs between the two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionFields {
    V2 {
        /// Adver Int, whole seconds (RFC 3768 §5.3.7).
        advert_interval_secs: u8,
        auth: Auth,
    },
    V3 {
        /// Max Adver Int, centiseconds, 12 bits (RFC 5798 §5.2.7).
        max_advert_interval_centis: u16,
    },
}

/// One decoded or to-be-encoded VRRP advertisement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Advertisement {
    pub vrid: u8,
    /// 0 means the sender is leaving (RFC 5798 §5.2.4).
    pub priority: u8,
    pub addresses: VirtualAddresses,
    pub version_fields: VersionFields,
}

/// Why an advertisement could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("VRID 0 is not a valid virtual router id (1..=255)")]
    ZeroVrid,
    #[error("an advertisement carries at most 255 addresses, got {0}")]
    TooManyAddresses(usize),
    #[error("VRRPv2 carries IPv4 addresses only")]
    V2RequiresIpv4,
    #[error("VRRPv3 Max Adver Int is 12 bits of centiseconds (at most 4095), got {0}")]
    IntervalTooLarge(u16),
    #[error("IP source and destination must be of the advertised address family")]
    FamilyMismatch,
}

/// Why an interval cannot be carried by a version.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IntervalError {
    #[error("VRRPv2 advert interval must be a whole number of seconds in 1..=255, got {0:?}")]
    V2(Duration),
    #[error(
        "VRRPv3 advert interval must be a whole number of centiseconds in 10ms..=40.95s, got {0:?}"
    )]
    V3(Duration),
}

/// Converts a configured interval to the wire field of `version`.
///
/// v2 takes whole seconds 1..=255 (RFC 3768 §5.3.7); v3 whole centiseconds 1..=4095
/// (RFC 5798 §5.2.7). Zero is refused for both: no router can advertise continuously.
pub fn interval_to_wire(version: Version, interval: Duration) -> Result<u16, IntervalError> {
    match version {
        Version::V2 => {
            let whole = interval.subsec_nanos() == 0;
            match u8::try_from(interval.as_secs()) {
                Ok(secs) if whole && secs > 0 => Ok(u16::from(secs)),
                _ => Err(IntervalError::V2(interval)),
            }
        }
        Version::V3 => {
            let whole = interval.as_nanos().is_multiple_of(CENTISECOND.as_nanos());
            let centis = interval.as_nanos() / CENTISECOND.as_nanos();
            match u16::try_from(centis) {
                Ok(centis) if whole && (1..=V3_MAX_INTERVAL_CENTIS).contains(&centis) => Ok(centis),
                _ => Err(IntervalError::V3(interval)),
            }
        }
    }
}

impl Advertisement {
    /// Builds an advert from configuration-level values.
    ///
    /// `auth` is ignored for v3, which has no authentication (RFC 5798 §9).
    pub fn new(
        version: Version,
        vrid: u8,
        priority: u8,
        interval: Duration,
        auth: Auth,
        addresses: VirtualAddresses,
    ) -> Result<Self, AdvertisementError> {
        let units = interval_to_wire(version, interval)?;
        let version_fields = match version {
            Version::V2 => VersionFields::V2 {
                // interval_to_wire bounds v2 to 1..=255.
                advert_interval_secs: u8::try_from(units).unwrap_or(u8::MAX),
                auth,
            },
            Version::V3 => VersionFields::V3 {
                max_advert_interval_centis: units,
            },
        };
        let advert = Self {
            vrid,
            priority,
            addresses,
            version_fields,
        };
        advert.check_encodable()?;
        Ok(advert)
    }

    pub fn version(&self) -> Version {
        match self.version_fields {
            VersionFields::V2 { .. } => Version::V2,
            VersionFields::V3 { .. } => Version::V3,
        }
    }

    pub fn family(&self) -> Family {
        self.addresses.family()
    }

    /// The advertised interval as a duration (seconds for v2, centiseconds for v3).
    pub fn advert_interval(&self) -> Duration {
        match self.version_fields {
            VersionFields::V2 {
                advert_interval_secs,
                ..
            } => Duration::from_secs(u64::from(advert_interval_secs)),
            VersionFields::V3 {
                max_advert_interval_centis,
            } => CENTISECOND * u32::from(max_advert_interval_centis),
        }
    }

    /// Size of the encoded message.
    pub fn encoded_len(&self) -> usize {
        message_len(self.version(), self.family(), self.addresses.len())
    }

    fn check_encodable(&self) -> Result<(), EncodeError> {
        if self.vrid == 0 {
            return Err(EncodeError::ZeroVrid);
        }
        if self.addresses.len() > usize::from(u8::MAX) {
            return Err(EncodeError::TooManyAddresses(self.addresses.len()));
        }
        match self.version_fields {
            VersionFields::V2 { .. } if self.family() != Family::Ipv4 => {
                Err(EncodeError::V2RequiresIpv4)
            }
            VersionFields::V3 {
                max_advert_interval_centis,
            } if max_advert_interval_centis > V3_MAX_INTERVAL_CENTIS => {
                Err(EncodeError::IntervalTooLarge(max_advert_interval_centis))
            }
            _ => Ok(()),
        }
    }

    /// Encodes the VRRP message (no IP header) with its checksum filled in.
    ///
    /// `source` and `destination` are the IP header's addresses: VRRPv3 sums them in its
    /// pseudo-header (RFC 5798 §5.2.8); VRRPv2 only checks they are IPv4.
    pub fn encode(&self, source: IpAddr, destination: IpAddr) -> Result<Vec<u8>, EncodeError> {
        self.check_encodable()?;
        let family = self.family();
        if Family::of(source) != family || Family::of(destination) != family {
            return Err(EncodeError::FamilyMismatch);
        }
        let mut message = Vec::with_capacity(self.encoded_len());
        message.push((self.version().number() << 4) | TYPE_ADVERTISEMENT);
        message.push(self.vrid);
        message.push(self.priority);
        // Bounded to 255 by check_encodable.
        message.push(u8::try_from(self.addresses.len()).unwrap_or(u8::MAX));
        match self.version_fields {
            VersionFields::V2 {
                advert_interval_secs,
                auth,
            } => {
                message.push(auth.type_number());
                message.push(advert_interval_secs);
            }
            VersionFields::V3 {
                max_advert_interval_centis,
            } => {
                // RFC 5798 §5.2.6: the 4 reserved bits MUST be zero on transmission.
                message.extend_from_slice(&max_advert_interval_centis.to_be_bytes());
            }
        }
        message.extend_from_slice(&[0, 0]); // checksum, computed over a zero field
        match &self.addresses {
            VirtualAddresses::V4(list) => list
                .iter()
                .for_each(|address| message.extend_from_slice(&address.octets())),
            VirtualAddresses::V6(list) => list
                .iter()
                .for_each(|address| message.extend_from_slice(&address.octets())),
        }
        if let VersionFields::V2 { auth, .. } = self.version_fields {
            match auth {
                // RFC 3768 §5.3.10: SHOULD be set to zero on transmission.
                Auth::None => message.extend_from_slice(&[0; V2_AUTH_DATA_LEN]),
                Auth::SimplePassword(password) => message.extend_from_slice(password.as_wire()),
            }
        }
        let sum = match (self.version(), source, destination) {
            (Version::V2, _, _) => checksum::message_only(&message),
            (Version::V3, IpAddr::V4(src), IpAddr::V4(dst)) => {
                checksum::with_ipv4_pseudo_header(src, dst, &message)
            }
            (Version::V3, IpAddr::V6(src), IpAddr::V6(dst)) => {
                checksum::with_ipv6_pseudo_header(src, dst, &message)
            }
            _ => return Err(EncodeError::FamilyMismatch),
        };
        message[6..8].copy_from_slice(&sum.to_be_bytes());
        Ok(message)
    }

    /// Parses the fields of a message whose length was already checked by
    /// [`check_structure`]. Does not verify the checksum.
    pub(crate) fn parse_checked(
        message: &[u8],
        version: Version,
        family: Family,
    ) -> Result<Self, DropReason> {
        let header = message
            .get(..FIXED_HEADER_LEN)
            .ok_or(DropReason::Truncated)?;
        let count = usize::from(header[3]);
        let list_end = FIXED_HEADER_LEN + count * family.address_len();
        let list = message
            .get(FIXED_HEADER_LEN..list_end)
            .ok_or(DropReason::Truncated)?;
        let addresses = match family {
            Family::Ipv4 => VirtualAddresses::V4(
                list.chunks_exact(4)
                    .map(|octets| Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
                    .collect(),
            ),
            Family::Ipv6 => VirtualAddresses::V6(
                list.chunks_exact(16)
                    .map(|octets| {
                        let mut bytes = [0u8; 16];
                        bytes.copy_from_slice(octets);
                        Ipv6Addr::from(bytes)
                    })
                    .collect(),
            ),
        };
        let version_fields = match version {
            Version::V2 => {
                let auth_bytes = message
                    .get(list_end..list_end + V2_AUTH_DATA_LEN)
                    .ok_or(DropReason::Truncated)?;
                let mut auth_data = [0u8; V2_AUTH_DATA_LEN];
                auth_data.copy_from_slice(auth_bytes);
                let auth = match header[4] {
                    AUTH_TYPE_NONE => Auth::None,
                    AUTH_TYPE_SIMPLE_PASSWORD => {
                        Auth::SimplePassword(Password::from_wire(auth_data))
                    }
                    // RFC 3768 §5.3.6: "A packet with unknown authentication type ... MUST be
                    // discarded." Type 2 (IP AH, RFC 2338) is not supported by vigil.
                    _ => return Err(DropReason::AuthType),
                };
                VersionFields::V2 {
                    advert_interval_secs: header[5],
                    auth,
                }
            }
            Version::V3 => VersionFields::V3 {
                // RFC 5798 §5.2.6: the reserved nibble is ignored on reception.
                max_advert_interval_centis: u16::from_be_bytes([header[4], header[5]])
                    & V3_MAX_INTERVAL_CENTIS,
            },
        };
        Ok(Self {
            vrid: header[1],
            priority: header[2],
            addresses,
            version_fields,
        })
    }

    /// Structural decode of a VRRP message arriving in an IP packet of `family`: version,
    /// type, length and address count, authentication type. Does not verify the checksum
    /// and applies no instance rules; see [`crate::decode`] for the full receive checks.
    pub fn parse(message: &[u8], family: Family) -> Result<Self, DropReason> {
        let version = check_structure(message, family)?;
        Self::parse_checked(message, version, family)
    }
}

/// Either kind of failure building an advert from configuration values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdvertisementError {
    #[error(transparent)]
    Interval(#[from] IntervalError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Encoded size of a message of `version` carrying `count` addresses of `family`.
pub fn message_len(version: Version, family: Family, count: usize) -> usize {
    let auth = match version {
        Version::V2 => V2_AUTH_DATA_LEN,
        Version::V3 => 0,
    };
    FIXED_HEADER_LEN + count * family.address_len() + auth
}

/// Size of the IP packet an advert of `count` addresses travels in: the message plus an
/// option-less IPv4 header (20 bytes, as we build it) or the IPv6 header (40). It must fit
/// the interface's MTU, since adverts are not fragmented (RFC 5798 §5.1.1.3 / §5.1.2.3 set
/// the TTL / hop limit to 255 and say nothing of fragments; keepalived drops them).
pub fn advert_packet_len(version: Version, family: Family, count: usize) -> usize {
    let ip_header = match family {
        Family::Ipv4 => 20,
        Family::Ipv6 => 40,
    };
    ip_header + message_len(version, family, count)
}

/// Reads the version nibble and checks type and length against the address count.
///
/// RFC 5798 §7.1 / RFC 3768 §7.1: "MUST verify that the received packet contains the
/// complete VRRP packet (including fixed fields, and IPvX address)". A message shorter than
/// that is `Truncated`; one with bytes past it is `Length`, as keepalived also refuses.
pub(crate) fn check_structure(message: &[u8], family: Family) -> Result<Version, DropReason> {
    let first = *message.first().ok_or(DropReason::Truncated)?;
    let version = match first >> 4 {
        2 => Version::V2,
        3 => Version::V3,
        _ => return Err(DropReason::Version),
    };
    // RFC 5798 §5.2.2: "A packet with unknown type MUST be discarded."
    if first & 0x0f != TYPE_ADVERTISEMENT {
        return Err(DropReason::Type);
    }
    // VRRPv2 is defined for IPv4 only (RFC 3768 §1).
    if version == Version::V2 && family == Family::Ipv6 {
        return Err(DropReason::AddressFamily);
    }
    let count = usize::from(*message.get(3).ok_or(DropReason::Truncated)?);
    if message.len() < FIXED_HEADER_LEN {
        return Err(DropReason::Truncated);
    }
    let expected = message_len(version, family, count);
    if message.len() < expected {
        return Err(DropReason::Truncated);
    }
    if message.len() > expected {
        return Err(DropReason::Length);
    }
    Ok(version)
}
