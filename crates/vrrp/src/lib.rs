//! VRRP for vigil: RFC 5798 (VRRPv3, IPv4 and IPv6) and RFC 3768 (VRRPv2).
//!
//! Owns: the packet codec and the per-instance state machine (sans-IO: pure functions of
//! an event and the current time that return actions), plus the thin I/O shells that
//! send and receive adverts and add and remove virtual addresses.
//!
//! Must not: program IPVS or run health checks; it learns tracked health as priority
//! inputs from `vigild`.
