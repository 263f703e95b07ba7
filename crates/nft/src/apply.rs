//! The applier: keeps what the kernel holds, and writes only differences.

use serde_json::Value;
use vigil_ipvs::ServiceKey;
use vigil_ipvs::reconcile::{DesiredService, DesiredTable};

use crate::diff::{Batch, diff, diff_one};
use crate::error::Error;
use crate::model::{Model, Options};
use crate::nft::Nft;
use crate::readback::{Current, parse};
use crate::render::{plan, plan_one};

/// What an [`Applier::apply`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// A transaction was written (false: the kernel already matched).
    pub written: bool,
    /// The whole table was (re)created.
    pub full: bool,
    /// Commands in the transaction.
    pub commands: usize,
    /// Services added, changed or deleted.
    pub services_changed: usize,
}

/// Applies desired tables to `table inet vigil`.
///
/// The first apply (and the first after [`Applier::mark_stale`] or a failure) reads the
/// table back and compares; later ones diff against what the last apply wrote.
#[derive(Debug)]
pub struct Applier {
    nft: Nft,
    options: Options,
    /// `None`: unknown, read it back; `Some(None)`: no table.
    current: Option<Option<Current>>,
}

impl Applier {
    /// An applier running `nft` as given.
    pub fn new(nft: Nft, options: Options) -> Applier {
        Applier {
            nft,
            options,
            current: None,
        }
    }

    /// Reads the table back before the next apply (drift repair).
    pub fn mark_stale(&mut self) {
        self.current = None;
    }

    /// The table as the kernel has it now, read back.
    pub fn read_back(&self) -> Result<Option<Current>, Error> {
        Ok(self.nft.list()?.as_ref().map(parse))
    }

    /// The model and transaction that would make the kernel match `desired`, without
    /// writing anything (reads the table back first if it is not known).
    pub fn plan(&mut self, desired: &DesiredTable) -> Result<(Model, Batch), Error> {
        if self.current.is_none() {
            self.current = Some(self.read_back()?);
        }
        let cur = self.current.as_ref().and_then(Option::as_ref);
        let want = plan(desired, cur.map(|c| &c.model), &self.options)?;
        let batch = diff(&want, cur);
        Ok((want, batch))
    }

    /// Makes the kernel's table match `desired` in one transaction, or writes nothing if
    /// it does. A render error writes nothing; a refused transaction changes nothing.
    pub fn apply(&mut self, desired: &DesiredTable) -> Result<ApplyReport, Error> {
        let (want, batch) = self.plan(desired)?;
        let report = ApplyReport {
            written: !batch.is_empty(),
            full: batch.full,
            commands: batch.commands.len() + batch.after.len(),
            services_changed: batch.services_changed,
        };
        if batch.is_empty() {
            return Ok(report);
        }
        if let Err(e) = self.nft.apply(&batch) {
            self.current = None;
            return Err(e);
        }
        self.current = Some(Some(Current::from_model(want)));
        Ok(report)
    }

    /// Makes the kernel's table match `desired` for one service only (`None`: delete
    /// it), in one transaction: a health change or drain costs the same at any table
    /// size (as `vigil_ipvs::Reconciler::sync_service`). Needs a table this applier can
    /// patch: after [`Applier::apply`], or one read back intact.
    pub fn apply_service(
        &mut self,
        key: ServiceKey,
        desired: Option<&DesiredService>,
    ) -> Result<ApplyReport, Error> {
        if self.current.is_none() {
            self.current = Some(self.read_back()?);
        }
        let Some(Some(cur)) = self.current.as_mut() else {
            return Err(Error::NotIntact("there is no table".into()));
        };
        if !cur.intact() {
            return Err(Error::NotIntact(cur.foreign.join("; ")));
        }
        let want = desired
            .map(|d| plan_one(&key, d, cur.model.services.get(&key)))
            .transpose()?;
        let batch = diff_one(&key, want.as_ref(), cur, self.options.masquerade);
        let report = ApplyReport {
            written: !batch.is_empty(),
            full: false,
            commands: batch.commands.len() + batch.after.len(),
            services_changed: batch.services_changed,
        };
        if batch.is_empty() {
            return Ok(report);
        }
        if let Err(e) = self.nft.apply(&batch) {
            self.current = None;
            return Err(e);
        }
        // What the kernel holds now: the batch's effect on the known table.
        cur.rewrite.remove(&key);
        match &want {
            Some(w) => cur.model.services.insert(key, w.clone()),
            None => cur.model.services.remove(&key),
        };
        if self.options.masquerade {
            for cmd in batch.commands.iter().chain(&batch.after) {
                let (verb, body) = match cmd.as_object().and_then(|m| m.iter().next()) {
                    Some(x) => x,
                    None => continue,
                };
                let Some(el) = body.get("element") else {
                    continue;
                };
                if !el["name"].as_str().is_some_and(|n| n.starts_with("masq")) {
                    continue;
                }
                for ip in el["elem"].as_array().into_iter().flatten() {
                    if let Some(ip) = ip.as_str().and_then(|s| s.parse().ok()) {
                        if verb == "add" {
                            cur.model.masquerade.insert(ip);
                        } else {
                            cur.model.masquerade.remove(&ip);
                        }
                    }
                }
            }
        }
        Ok(report)
    }

    /// Deletes the table (vigil stops serving through nftables).
    pub fn remove(&mut self) -> Result<(), Error> {
        let cmds: Vec<Value> = vec![
            serde_json::json!({"add": {"table": {"family": crate::model::FAMILY, "name": crate::model::TABLE}}}),
            serde_json::json!({"delete": {"table": {"family": crate::model::FAMILY, "name": crate::model::TABLE}}}),
        ];
        let batch = Batch {
            commands: cmds,
            after: Vec::new(),
            full: true,
            services_changed: 0,
        };
        self.current = None;
        self.nft.apply(&batch)?;
        self.current = Some(None);
        Ok(())
    }
}
