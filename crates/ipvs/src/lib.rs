//! Linux IP Virtual Server driver.
//!
//! Owns: the generic-netlink "IPVS" family (message codec, socket client) and the
//! reconciler that turns a desired table into the minimal set of kernel writes.
//!
//! Must not: decide health or policy beyond what the desired table says, or touch
//! services it does not own (those created by `ipvsadm`, kube-proxy and the like).
