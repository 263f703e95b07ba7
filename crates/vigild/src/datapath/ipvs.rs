//! The IPVS datapath: [`crate::ipvs_worker`]'s thread, unchanged, behind [`Datapath`].

use std::sync::{Arc, RwLock};

use vigil_ipvs::SyncDaemon;

use super::{Datapath, DatapathStatus};
use crate::ipvs_worker::{IpvsWorker, Job};

impl Datapath for IpvsWorker {
    fn send(&self, job: Job) {
        IpvsWorker::send(self, job);
    }

    fn set_sync_daemon(&self, daemon: Option<SyncDaemon>) {
        IpvsWorker::set_sync_daemon(self, daemon);
    }

    fn status_handle(&self) -> Arc<RwLock<DatapathStatus>> {
        IpvsWorker::status_handle(self)
    }

    fn stop(self: Box<Self>) {
        IpvsWorker::stop(*self);
    }
}
