//! Receive validation: RFC 5798 §7.1 (VRRPv3) and RFC 3768 §7.1 (VRRPv2).
//!
//! [`decode`] takes the VRRP message (the IP payload) plus the IP-layer facts the checks
//! need, and either returns the advertisement or the one [`DropReason`] the daemon counts.
//! Checks run in the order the RFCs list them, so a packet that fails several is counted
//! under the first.

use std::net::IpAddr;
use std::time::Duration;

use crate::checksum;
use crate::drop_reason::DropReason;
use crate::packet::{
    Advertisement, Auth, Family, REQUIRED_TTL, Version, VersionFields, check_structure,
};

/// IP-layer facts about a received advert, from the IP header (or `recvmsg` control data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpFacts {
    pub source: IpAddr,
    pub destination: IpAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
}

/// Per-instance expectations a received advert is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveRules {
    pub version: Version,
    pub family: Family,
    pub vrid: u8,
    /// The local router owns the virtual addresses (base priority 255).
    pub local_is_owner: bool,
    /// VRRPv2 only: the configured authentication.
    pub auth: Auth,
    /// VRRPv2 only: the configured advert interval, which received adverts must match.
    pub advert_interval: Duration,
    /// When set, the advert's address list is compared with it (the optional "MAY verify"
    /// check of §7.1); `None` skips the comparison.
    pub expected_addresses: Option<Vec<IpAddr>>,
    /// VRRPv3 over IPv4: also accept a checksum over the message alone, the form RFC 9568
    /// §5.2.8 specifies, besides the RFC 5798 pseudo-header form keepalived sends.
    pub accept_message_only_ipv4_checksum: bool,
    /// When set, only adverts whose IP source is listed are considered (unicast peers, or
    /// a multicast allow-list); others are dropped as [`DropReason::UnknownPeer`] before
    /// any RFC check, so a forged advert from elsewhere on the link cannot move the
    /// election. `None` accepts any source, as RFC 5798 §7.1 does.
    pub allowed_sources: Option<Vec<IpAddr>>,
    /// Skip the TTL / hop limit 255 check of RFC 5798 §7.1 (RFC 3768 §7.1). Only for
    /// unicast peers reached across routers, where the TTL is decremented on the way;
    /// the check is what keeps adverts from off the link out (RFC 5798 §9).
    pub waive_ttl: bool,
}

/// Which checksum computation a received advert satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumForm {
    /// VRRPv2: the message alone (RFC 3768 §5.3.8).
    MessageOnlyV2,
    /// VRRPv3: pseudo-header + message (RFC 5798 §5.2.8), as keepalived sends.
    PseudoHeader,
    /// VRRPv3 over IPv4 with the message alone (RFC 9568 §5.2.8); only when
    /// [`ReceiveRules::accept_message_only_ipv4_checksum`] allows it.
    MessageOnlyRfc9568,
}

/// A received advert that passed every mandatory check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub advert: Advertisement,
    /// The sender's primary address (IP source), used to break priority ties.
    pub source: IpAddr,
    pub checksum_form: ChecksumForm,
    /// `Some(false)` when [`ReceiveRules::expected_addresses`] was given and the advert's
    /// list differs. VRRPv3 only logs this (RFC 5798 §7.1); VRRPv2 drops it unless the
    /// sender is the address owner (RFC 3768 §7.1), so a returned v2 mismatch always comes
    /// from a priority-255 sender.
    pub address_list_matches: Option<bool>,
}

/// Whether `message` belongs to another virtual router this router runs on the same
/// interface and address family (`is_local_vrid` answers for those), rather than to the
/// instance `rules` describe.
///
/// RFC 5798 §7.1 (RFC 3768 §7.1 alike): "MUST verify that the VRID is configured on the
/// receiving interface". The check is per interface, not per instance: an advert for a
/// VRID that a sibling instance runs on this interface is that sibling's to check and
/// count, and no drop of this one; only a VRID configured nowhere on the interface is
/// discarded as [`DropReason::Vrid`]. VRIDs are unique per interface and family (the
/// configuration refuses duplicates), and the VRID sits in the second byte in both
/// versions, so it alone names the addressee, whatever the version nibble says.
pub fn is_for_sibling(
    message: &[u8],
    rules: &ReceiveRules,
    is_local_vrid: impl Fn(u8) -> bool,
) -> bool {
    match message.get(1) {
        Some(&vrid) => vrid != 0 && vrid != rules.vrid && is_local_vrid(vrid),
        None => false,
    }
}

/// Validates and decodes one received VRRP message.
///
/// Never panics, whatever the bytes.
pub fn decode(message: &[u8], ip: &IpFacts, rules: &ReceiveRules) -> Result<Received, DropReason> {
    // The IP header and the instance must agree on the family before anything is read as
    // addresses of that family.
    let family = Family::of(ip.source);
    if Family::of(ip.destination) != family || family != rules.family {
        return Err(DropReason::AddressFamily);
    }
    // Not an RFC check: the operator's list of peers (unicast peers, or `allowed_peers`
    // in multicast mode) comes first, so a stranger's packet is counted as such whatever
    // else is wrong with it. RFC 5798 §9 leaves source filtering to the operator.
    if !source_allowed(ip.source, rules) {
        return Err(DropReason::UnknownPeer);
    }
    // RFC 5798 §7.1: "If the received packet is an IPv4 packet, MUST verify that the IP TTL
    // is 255. If the received packet is an IPv6 packet, MUST verify that the IPv6 Hop Limit
    // is 255." (RFC 3768 §7.1: "MUST verify that the IP TTL is 255.") Waived only on the
    // operator's word, for unicast peers behind routers.
    if ip.ttl != REQUIRED_TTL && !rules.waive_ttl {
        return Err(DropReason::Ttl);
    }
    // RFC 5798 §7.1: "MUST verify that the VRRP version is 3." (RFC 3768: "is 2".)
    let version_nibble = message.first().map(|first| first >> 4);
    if version_nibble.is_some_and(|nibble| nibble != rules.version.number()) {
        return Err(DropReason::Version);
    }
    // "MUST verify that the received packet contains the complete VRRP packet", plus the
    // type check of RFC 5798 §5.2.2.
    let version = check_structure(message, family)?;
    // "MUST verify the VRRP checksum."
    let checksum_form = verify_checksum(message, version, ip, rules)?;
    let advert = Advertisement::parse_checked(message, version, family)?;
    // "MUST verify that the VRID is configured on the receiving interface and the local
    // router is not the IPvX address owner (Priority = 255 (decimal))."
    // VRID 0 is outside the 1..=255 range (RFC 5798 §5.2.3), so it is never configured,
    // even if the rules were built with it (found by fuzzing: encode refuses it).
    if advert.vrid == 0 || advert.vrid != rules.vrid {
        return Err(DropReason::Vrid);
    }
    if rules.local_is_owner {
        return Err(DropReason::LocalOwner);
    }
    if let VersionFields::V2 {
        advert_interval_secs,
        auth,
    } = advert.version_fields
    {
        check_v2_auth(&auth, &rules.auth)?;
        // RFC 3768 §7.1: "MUST verify that the Adver Interval in the packet is the same as
        // the locally configured for this virtual router. If the above check fails, the
        // receiver MUST discard the packet". keepalived drops these too.
        if Duration::from_secs(u64::from(advert_interval_secs)) != rules.advert_interval {
            return Err(DropReason::Interval);
        }
    }
    // A zero VRRPv3 interval would make Master_Down_Interval a bare Skew_Time and let a
    // backup take over between two adverts; no conforming sender emits it.
    if advert.version() == Version::V3 && advert.advert_interval().is_zero() {
        return Err(DropReason::Interval);
    }
    let address_list_matches = rules
        .expected_addresses
        .as_ref()
        .map(|expected| same_addresses(&advert.addresses.to_ip_addrs(), expected));
    // RFC 3768 §7.1: "MAY verify that "Count IP Addrs" and the list of IP Address matches
    // the IP_Addresses configured for the VRID ... If the packet was not generated by the
    // address owner (Priority does not equal 255 (decimal)), the receiver MUST drop the
    // packet, otherwise continue processing." RFC 5798 §7.1 keeps only the logging.
    if version == Version::V2 && address_list_matches == Some(false) && advert.priority != 255 {
        return Err(DropReason::AddressList);
    }
    Ok(Received {
        advert,
        source: ip.source,
        checksum_form,
        address_list_matches,
    })
}

/// Whether `source` may speak to this instance: listed in
/// [`ReceiveRules::allowed_sources`], or no list is configured.
pub fn source_allowed(source: IpAddr, rules: &ReceiveRules) -> bool {
    rules
        .allowed_sources
        .as_ref()
        .is_none_or(|allowed| allowed.contains(&source))
}

fn verify_checksum(
    message: &[u8],
    version: Version,
    ip: &IpFacts,
    rules: &ReceiveRules,
) -> Result<ChecksumForm, DropReason> {
    // Summing a message that carries its own checksum yields zero when it is intact.
    match (version, ip.source, ip.destination) {
        (Version::V2, _, _) => (checksum::message_only(message) == 0)
            .then_some(ChecksumForm::MessageOnlyV2)
            .ok_or(DropReason::Checksum),
        (Version::V3, IpAddr::V4(src), IpAddr::V4(dst)) => {
            if checksum::with_ipv4_pseudo_header(src, dst, message) == 0 {
                Ok(ChecksumForm::PseudoHeader)
            } else if rules.accept_message_only_ipv4_checksum
                && checksum::message_only(message) == 0
            {
                Ok(ChecksumForm::MessageOnlyRfc9568)
            } else {
                Err(DropReason::Checksum)
            }
        }
        (Version::V3, IpAddr::V6(src), IpAddr::V6(dst)) => {
            (checksum::with_ipv6_pseudo_header(src, dst, message) == 0)
                .then_some(ChecksumForm::PseudoHeader)
                .ok_or(DropReason::Checksum)
        }
        _ => Err(DropReason::AddressFamily),
    }
}

/// RFC 3768 §7.1: "MUST perform authentication specified by Auth Type", and §5.3.6: "A
/// packet with unknown authentication type or that does not match the locally configured
/// authentication method MUST be discarded."
fn check_v2_auth(received: &Auth, configured: &Auth) -> Result<(), DropReason> {
    match (received, configured) {
        (Auth::None, Auth::None) => Ok(()),
        (Auth::SimplePassword(got), Auth::SimplePassword(want)) => {
            // Compare every byte so the time taken does not depend on where they differ.
            let differing = got
                .as_wire()
                .iter()
                .zip(want.as_wire())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if differing == 0 {
                Ok(())
            } else {
                Err(DropReason::Auth)
            }
        }
        _ => Err(DropReason::AuthType),
    }
}

/// Order-insensitive comparison: keepalived and RFC 5798 compare sets of addresses.
fn same_addresses(received: &[IpAddr], expected: &[IpAddr]) -> bool {
    received.len() == expected.len() && expected.iter().all(|address| received.contains(address))
}
