//! Test support for vigil's real-kernel tests.
//!
//! Owns: the network-namespace lab guard (`NetnsLab`) and the harness that runs a whole
//! test binary inside the IPVS kernel lab. The lab scripts themselves live in `tests/lab/`.
//!
//! Must not: be a dependency of anything but tests, or fake the kernel.
