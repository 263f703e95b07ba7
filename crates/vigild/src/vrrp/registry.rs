//! The registry the status socket reads: each running instance's status and control
//! channel, the stream of state changes, and the instances held in fault for IPVS.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use vigil_proto::{ProtocolError, VrrpControlReply};
use vigil_vrrp::io::{Control, InstanceStatus, StateEvent};

use super::manager::Command;

/// What the status socket can see and steer: each running instance's status and control
/// channel, and the stream of state changes.
pub struct Registry {
    entries: RwLock<BTreeMap<String, Entry>>,
    pub(super) events: broadcast::Sender<StateEvent>,
    /// The VRRP task's requests, once it runs.
    pub(super) commands: OnceLock<mpsc::UnboundedSender<Command>>,
    /// Instances held in fault because IPVS cannot be programmed, with the reason.
    pub(super) ipvs_faults: RwLock<BTreeMap<String, String>>,
}

#[derive(Clone)]
pub(super) struct Entry {
    pub(super) status: watch::Receiver<InstanceStatus>,
    pub(super) control: mpsc::Sender<Control>,
}

impl Registry {
    pub fn new() -> Arc<Self> {
        let (events, _) = broadcast::channel(256);
        Arc::new(Self {
            entries: RwLock::new(BTreeMap::new()),
            events,
            commands: OnceLock::new(),
            ipvs_faults: RwLock::new(BTreeMap::new()),
        })
    }

    /// Why instance `name` is held in fault by the daemon (IPVS cannot be programmed).
    pub fn fault_reason(&self, name: &str) -> Option<String> {
        self.ipvs_faults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Hands over (`handover`) or reclaims instance `name`, through the VRRP task (in
    /// order with reloads); answered at once, without waiting for the runner.
    pub async fn request(
        &self,
        name: &str,
        handover: bool,
    ) -> Result<VrrpControlReply, ProtocolError> {
        let stopping = ProtocolError::shutting_down;
        let Some(commands) = self.commands.get() else {
            return Err(stopping());
        };
        let (reply, rx) = oneshot::channel();
        commands
            .send(Command::Control {
                instance: name.to_string(),
                handover,
                reply,
            })
            .map_err(|_| stopping())?;
        rx.await.unwrap_or_else(|_| Err(stopping()))
    }

    /// The live status of instance `name`, if it runs.
    pub fn status(&self, name: &str) -> Option<InstanceStatus> {
        self.read().get(name).map(|e| e.status.borrow().clone())
    }

    pub fn control(&self, name: &str) -> Option<mpsc::Sender<Control>> {
        self.read().get(name).map(|e| e.control.clone())
    }

    /// Every state change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StateEvent> {
        self.events.subscribe()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        // A panicked writer can only have left a whole map behind.
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }
}
