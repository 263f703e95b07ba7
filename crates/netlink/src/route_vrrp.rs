//! The requests a VRRP instance makes besides its addresses: its routes and rules
//! (`virtual_routes`, `virtual_rules`) and its virtual MAC interface (`use_vmac`).

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST};

use crate::route::{ALREADY_GONE, ALREADY_THERE};
use crate::routing::{self, RouteSpec, RuleSpec};
use crate::{Error, Route, codec, vmac};

/// A route replaces one with the same key (destination, table, metric...): the master's
/// route must win over whatever a crash or an operator left.
const REPLACE_FLAGS: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
const CREATE_FLAGS: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;

impl Route {
    fn oif(&mut self, route: &RouteSpec) -> Result<Option<u32>, Error> {
        match &route.dev {
            Some(dev) => Ok(Some(self.link(dev)?.index)),
            None => Ok(None),
        }
    }

    /// Adds (or replaces) `route`.
    pub fn add_route(&mut self, route: &RouteSpec) -> Result<(), Error> {
        let oif = self.oif(route)?;
        self.ack(routing::route(true, route, oif), REPLACE_FLAGS, || {
            format!("adding route {route}")
        })
    }

    /// Removes `route`. `Ok(false)` when it was not there.
    pub fn del_route(&mut self, route: &RouteSpec) -> Result<bool, Error> {
        let oif = match self.oif(route) {
            Ok(oif) => oif,
            // Its interface is gone, and the route with it.
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(false),
            Err(e) => return Err(e),
        };
        let message = routing::route(false, route, oif);
        self.ack_idempotent(message, codec::ACK_FLAGS, ALREADY_GONE, || {
            format!("removing route {route}")
        })
    }

    /// Adds `rule`. `Ok(false)` when the same rule was there already.
    pub fn add_rule(&mut self, rule: &RuleSpec) -> Result<bool, Error> {
        self.ack_idempotent(
            routing::rule(true, rule),
            CREATE_FLAGS,
            ALREADY_THERE,
            || format!("adding rule {rule}"),
        )
    }

    /// Removes `rule`. `Ok(false)` when it was not there.
    pub fn del_rule(&mut self, rule: &RuleSpec) -> Result<bool, Error> {
        self.ack_idempotent(
            routing::rule(false, rule),
            codec::ACK_FLAGS,
            ALREADY_GONE,
            || format!("removing rule {rule}"),
        )
    }

    /// Creates macvlan `name` (private mode, hardware address `mac`) on link `parent`,
    /// down; returns its index.
    pub fn add_macvlan(&mut self, name: &str, parent: u32, mac: [u8; 6]) -> Result<u32, Error> {
        self.ack(vmac::new_macvlan(name, parent, mac), CREATE_FLAGS, || {
            format!("creating macvlan {name} on interface {parent}")
        })?;
        Ok(self.link(name)?.index)
    }

    /// Sets link `index` up or down.
    pub fn set_link_up(&mut self, index: u32, up: bool) -> Result<(), Error> {
        self.ack(vmac::set_up(index, up), codec::ACK_FLAGS, || {
            format!("setting interface {index} up={up}")
        })
    }

    /// Deletes link `index`. `Ok(false)` when it was gone already.
    pub fn del_link(&mut self, index: u32) -> Result<bool, Error> {
        self.ack_idempotent(
            vmac::del_link(index),
            codec::ACK_FLAGS,
            &[libc::ENODEV],
            || format!("deleting interface {index}"),
        )
    }

    /// Sets IPv4 per-interface settings of link `index` (`vmac::devconf` ids).
    pub fn set_ipv4_conf(&mut self, index: u32, settings: &[(u16, u32)]) -> Result<(), Error> {
        self.ack(vmac::ipv4_conf(index, settings), codec::ACK_FLAGS, || {
            format!("setting IPv4 options of interface {index}")
        })
    }

    /// Turns IPv6 address generation off on link `index` (no link-local address).
    pub fn no_ipv6_address_generation(&mut self, index: u32) -> Result<(), Error> {
        self.ack(
            vmac::no_ipv6_address_generation(index),
            codec::ACK_FLAGS,
            || format!("turning IPv6 address generation off on interface {index}"),
        )
    }
}
