//! The client on a kernel without IPVS (the development host): a clear, typed error.

use vigil_ipvs::{Client, Error};

#[test]
fn missing_ipvs_is_a_typed_error() {
    match Client::connect() {
        Err(e @ Error::Unavailable) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with("IPVS is not available in this kernel: load ip_vs"),
                "{msg}"
            );
        }
        Err(other) => panic!("expected Error::Unavailable, got {other:?}"),
        // This kernel has IPVS (or autoloaded it): the typed error can't be shown here.
        Ok(c) => eprintln!(
            "IPVS present here (family id {}): nothing to check",
            c.family_id()
        ),
    }
}
