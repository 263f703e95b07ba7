//! The requests a VRRP instance makes besides its addresses: its routes and rules
//! (`virtual_routes`, `virtual_rules`) and its virtual MAC interface (`use_vmac`).

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST};

use crate::route::kernel;
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
        self.request_ack(routing::route(true, route, oif), REPLACE_FLAGS)
            .map_err(|errno| kernel(format!("adding route {route}"), errno))
    }

    /// Removes `route`. `Ok(false)` when it was not there.
    pub fn del_route(&mut self, route: &RouteSpec) -> Result<bool, Error> {
        let oif = match self.oif(route) {
            Ok(oif) => oif,
            // Its interface is gone, and the route with it.
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(false),
            Err(e) => return Err(e),
        };
        match self.request_ack(routing::route(false, route, oif), codec::ACK_FLAGS) {
            Ok(()) => Ok(true),
            Err(libc::ESRCH | libc::ENOENT) => Ok(false),
            Err(errno) => Err(kernel(format!("removing route {route}"), errno)),
        }
    }

    /// Adds `rule`. `Ok(false)` when the same rule was there already.
    pub fn add_rule(&mut self, rule: &RuleSpec) -> Result<bool, Error> {
        match self.request_ack(routing::rule(true, rule), CREATE_FLAGS) {
            Ok(()) => Ok(true),
            Err(libc::EEXIST) => Ok(false),
            Err(errno) => Err(kernel(format!("adding rule {rule}"), errno)),
        }
    }

    /// Removes `rule`. `Ok(false)` when it was not there.
    pub fn del_rule(&mut self, rule: &RuleSpec) -> Result<bool, Error> {
        match self.request_ack(routing::rule(false, rule), codec::ACK_FLAGS) {
            Ok(()) => Ok(true),
            Err(libc::ENOENT | libc::ESRCH) => Ok(false),
            Err(errno) => Err(kernel(format!("removing rule {rule}"), errno)),
        }
    }

    /// Creates macvlan `name` (private mode, hardware address `mac`) on link `parent`,
    /// down; returns its index.
    pub fn add_macvlan(&mut self, name: &str, parent: u32, mac: [u8; 6]) -> Result<u32, Error> {
        self.request_ack(vmac::new_macvlan(name, parent, mac), CREATE_FLAGS)
            .map_err(|errno| {
                kernel(
                    format!("creating macvlan {name} on interface {parent}"),
                    errno,
                )
            })?;
        Ok(self.link(name)?.index)
    }

    /// Sets link `index` up or down.
    pub fn set_link_up(&mut self, index: u32, up: bool) -> Result<(), Error> {
        self.request_ack(vmac::set_up(index, up), codec::ACK_FLAGS)
            .map_err(|errno| kernel(format!("setting interface {index} up={up}"), errno))
    }

    /// Deletes link `index`. `Ok(false)` when it was gone already.
    pub fn del_link(&mut self, index: u32) -> Result<bool, Error> {
        match self.request_ack(vmac::del_link(index), codec::ACK_FLAGS) {
            Ok(()) => Ok(true),
            Err(libc::ENODEV) => Ok(false),
            Err(errno) => Err(kernel(format!("deleting interface {index}"), errno)),
        }
    }

    /// Sets IPv4 per-interface settings of link `index` (`vmac::devconf` ids).
    pub fn set_ipv4_conf(&mut self, index: u32, settings: &[(u16, u32)]) -> Result<(), Error> {
        self.request_ack(vmac::ipv4_conf(index, settings), codec::ACK_FLAGS)
            .map_err(|errno| kernel(format!("setting IPv4 options of interface {index}"), errno))
    }

    /// Turns IPv6 address generation off on link `index` (no link-local address).
    pub fn no_ipv6_address_generation(&mut self, index: u32) -> Result<(), Error> {
        self.request_ack(vmac::no_ipv6_address_generation(index), codec::ACK_FLAGS)
            .map_err(|errno| {
                kernel(
                    format!("turning IPv6 address generation off on interface {index}"),
                    errno,
                )
            })
    }
}
