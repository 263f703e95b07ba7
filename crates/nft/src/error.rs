//! The crate's errors.

use std::time::Duration;

use crate::render::RenderErrors;

/// What went wrong rendering or applying the table.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The desired table has services this datapath cannot serve; nothing was written.
    #[error("cannot render for nftables: {0}")]
    Render(#[from] RenderErrors),
    /// `nft` could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// `nft` did not finish in time (it was killed; a transaction it had not committed
    /// is not applied).
    #[error("nft {what} did not finish within {after:?} (killed)")]
    Timeout {
        /// "listing" or "applying".
        what: &'static str,
        /// The limit.
        after: Duration,
    },
    /// `nft` refused; `object` is the command that failed when it could be found.
    #[error("nft {what} failed ({status}){}: {stderr}", object.as_ref().map(|o| format!(" at {o}")).unwrap_or_default())]
    Nft {
        /// "listing" or "applying".
        what: &'static str,
        /// Its exit status.
        status: String,
        /// What it printed (trimmed).
        stderr: String,
        /// The first command of the batch nft refuses on its own (`nft -c`), described.
        object: Option<String>,
    },
    /// The table holds something vigil did not write: one service cannot be patched,
    /// the whole desired table must be applied (`Applier::apply`).
    #[error("table inet vigil needs a full apply before one service can be patched: {0}")]
    NotIntact(String),
    /// The listing was not JSON.
    #[error("nft listing is not JSON: {0}")]
    Listing(String),
}
