//! The reconciler: makes the kernel's table match a desired one with the fewest writes,
//! touching only the services this director owns.
//!
//! Three layers, the first two pure:
//!
//! * [`diff`] / [`diff_service`]: desired table + kernel table + owned keys → the
//!   [`Request`]s that turn one into the other. Minimal (a changed weight, threshold,
//!   forwarding method or tunnel setting is one `SET_DEST`, never delete + add: the
//!   kernel changes them in place, as the kernel-lab tests check; a changed scheduler,
//!   flag set, persistence timeout or netmask is one `SET_SERVICE`) and deterministic (services in key order; within a
//!   service: the service itself, destination adds and edits, then destination deletes,
//!   so a swap to the sorry server and back never leaves the service empty). A service
//!   whose destination list must keep an order (`mh`, [`DesiredService::order`]) is
//!   added in that order, and an insertion before kept destinations re-adds those.
//! * [`Backoff`]: when a failed write may be tried again.
//! * [`Reconciler`]: keeps the last known kernel state, the owned keys and the retry
//!   schedule; [`Reconciler::sync`] and [`Reconciler::sync_service`] diff and apply
//!   through the pipelined [`Client::apply`], and report what happened.
//!
//! # Owned services
//!
//! A service is the director's if it is in the desired table, or if the caller says it
//! was (`owned`: the keys of the previous configuration, or a state file written from
//! [`Reconciler::owned`]). Anything else in the kernel (an operator's `ipvsadm`
//! entries, kube-proxy's) is never written, whatever its state. A desired key that
//! already exists in the kernel is adopted: edited into shape, not re-created.
//!
//! # How the daemon drives it
//!
//! ```text
//! start:            r = Reconciler::new(owned_from_state_file, Backoff::default())
//!                   r.sync(&mut client, &desired_table(config, health, drains), now)
//!                     (the first call dumps the kernel: an unchanged table writes nothing)
//! health change,    e = policy::evaluate(&service_policy, previous_quorum[key])
//! drain:            previous_quorum[key] = e.quorum
//!                   r.sync_service(&mut client, key, Some(&e.desired), now)
//! reload:           r.sync(&mut client, &new_desired_table, now)
//!                     (services gone from the config are deleted: they are owned)
//! r.next_retry():   call sync/sync_service again at that instant to retry failed writes
//! every minute:     r.mark_stale(); r.sync(...) to repair drift (someone's ipvsadm -d)
//! after each call:  persist r.owned() if it changed; log report.errors; export
//!                   r.counters() as metrics
//! ```
//!
//! [`Client`] blocks; from tokio, run these calls in `spawn_blocking` with the
//! `Reconciler` and `Client` moved in (or behind a mutex): a toggle is one `SET_DEST`
//! and its ack.
//!
//! Errors of single writes never stop the others: they are in the
//! [`ReconcileReport`] (for the caller to log), counted, retried with back-off, and the
//! services they concern are re-read from the kernel before the next diff, since a
//! refusal (`EEXIST`, `ENOENT`) usually means our idea of the kernel was wrong. Only a
//! socket that stopped working, or a dump that fails, is an `Err` of the whole call.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::codec::Request;
use crate::error::Error;
use crate::model::{Destination, DestinationKey, Service, ServiceKey};

/// What one service should look like in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredService {
    /// The service's settings.
    pub service: Service,
    /// Destinations that must be there exactly like this.
    pub destinations: BTreeMap<DestinationKey, Destination>,
    /// Destinations left as the kernel has them, whatever their settings (health not yet
    /// known). If the kernel does not have one, the `Some` value is added; `None` adds
    /// nothing. A key in both maps counts as in `destinations`.
    pub unsettled: BTreeMap<DestinationKey, Option<Destination>>,
    /// The sorry server while the quorum is undecided (see [`crate::policy`]): if the
    /// kernel has this destination, the service is on its sorry server and stays there
    /// until the checks decide, so the `unsettled` fallbacks are not added.
    pub sorry_undecided: Option<DestinationKey>,
    /// The order the kernel's destination list must follow (the configured order), for a
    /// scheduler that builds its table from that order (`mh`, see
    /// [`crate::policy::keeps_every_real_server`]); empty: any order. Destinations are
    /// added in this order, and one added before destinations the kernel already has
    /// makes those be deleted and added again after it (see [`diff_service`]).
    pub order: Vec<DestinationKey>,
}

impl DesiredService {
    /// A service with no destinations.
    pub fn new(service: Service) -> DesiredService {
        DesiredService {
            service,
            destinations: BTreeMap::new(),
            unsettled: BTreeMap::new(),
            sorry_undecided: None,
            order: Vec::new(),
        }
    }

    /// Adds (or replaces) a destination that must be there.
    pub fn with(mut self, d: Destination) -> DesiredService {
        self.destinations.insert(d.key(), d);
        self
    }
}

/// The desired table: every service this director wants, by key.
pub type DesiredTable = BTreeMap<ServiceKey, DesiredService>;

/// A service as the kernel has it (settings only, no statistics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelService {
    /// The service's settings.
    pub service: Service,
    /// Its destinations.
    pub destinations: BTreeMap<DestinationKey, Destination>,
}

/// The kernel's table, by key.
pub type KernelTable = BTreeMap<ServiceKey, KernelService>;

impl From<&DesiredService> for KernelService {
    /// What the kernel holds once `desired` is applied to an empty table.
    fn from(desired: &DesiredService) -> KernelService {
        let mut destinations = desired.destinations.clone();
        for (k, d) in &desired.unsettled {
            if let Some(d) = d {
                destinations.entry(*k).or_insert_with(|| d.clone());
            }
        }
        KernelService {
            service: desired.service.clone(),
            destinations,
        }
    }
}

/// What the reconciler needs from the kernel. [`Client`] is the real one; tests can
/// stand in a model of the kernel to exercise retries and partial failures.
pub trait Table {
    /// The whole table.
    fn dump(&mut self) -> Result<KernelTable, Error>;
    /// One service, `None` if absent.
    fn dump_service(&mut self, key: &ServiceKey) -> Result<Option<KernelService>, Error>;
    /// Writes, one result per request, as [`Client::apply`].
    fn apply(&mut self, requests: &[Request]) -> Result<Vec<Result<(), Error>>, Error>;
}

impl Table for Client {
    fn dump(&mut self) -> Result<KernelTable, Error> {
        dump(self)
    }
    fn dump_service(&mut self, key: &ServiceKey) -> Result<Option<KernelService>, Error> {
        dump_service(self, key)
    }
    fn apply(&mut self, requests: &[Request]) -> Result<Vec<Result<(), Error>>, Error> {
        Client::apply(self, requests)
    }
}

/// Reads the whole table: one service dump, then one destination dump per service.
pub fn dump(client: &mut Client) -> Result<KernelTable, Error> {
    let mut table = KernelTable::new();
    for s in client.services()? {
        let destinations = client
            .destinations(&s.service.key)?
            .into_iter()
            .map(|d| (d.destination.key(), d.destination))
            .collect();
        table.insert(
            s.service.key,
            KernelService {
                service: s.service,
                destinations,
            },
        );
    }
    Ok(table)
}

/// Reads one service, `None` if the kernel does not have it.
pub fn dump_service(client: &mut Client, key: &ServiceKey) -> Result<Option<KernelService>, Error> {
    let service = match client.service(key) {
        Ok(s) => s.service,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let destinations = client
        .destinations(key)?
        .into_iter()
        .map(|d| (d.destination.key(), d.destination))
        .collect();
    Ok(Some(KernelService {
        service,
        destinations,
    }))
}

/// The requests that turn `kernel` into `desired` for one service. `desired == None`
/// deletes the service (the caller decides whether it is owned).
pub fn diff_service(
    desired: Option<&DesiredService>,
    kernel: Option<&KernelService>,
) -> Vec<Request> {
    let mut out = Vec::new();
    diff_service_into(desired, kernel, &mut out);
    out
}

fn diff_service_into(
    desired: Option<&DesiredService>,
    kernel: Option<&KernelService>,
    out: &mut Vec<Request>,
) {
    let Some(desired) = desired else {
        if let Some(k) = kernel {
            out.push(Request::DeleteService(k.service.key));
        }
        return;
    };
    let key = desired.service.key;
    let Some(kernel) = kernel else {
        out.push(Request::AddService(desired.service.clone()));
        let added = KernelService::from(desired);
        let mut rest = added.destinations;
        for k in &desired.order {
            if let Some(d) = rest.remove(k) {
                out.push(Request::AddDestination(key, d));
            }
        }
        out.extend(rest.into_values().map(|d| Request::AddDestination(key, d)));
        return;
    };
    if desired.service != kernel.service {
        out.push(Request::UpdateService(desired.service.clone()));
    }
    // On the sorry server only if it stays (it is kept by `unsettled` or desired).
    let on_sorry = desired.sorry_undecided.is_some_and(|k| {
        kernel.destinations.contains_key(&k)
            && (desired.unsettled.contains_key(&k) || desired.destinations.contains_key(&k))
    });
    if desired.order.is_empty() {
        // Adds and edits first, deletes last: a service never goes through "no destination".
        for (k, d) in &desired.destinations {
            match kernel.destinations.get(k) {
                None => out.push(Request::AddDestination(key, d.clone())),
                // The kernel changes forwarding, weight, thresholds and tunnel settings in
                // place (SET_DEST), so an edit never needs delete + add.
                Some(have) if have != d => out.push(Request::UpdateDestination(key, d.clone())),
                Some(_) => {}
            }
        }
        for (k, d) in &desired.unsettled {
            if desired.destinations.contains_key(k) || kernel.destinations.contains_key(k) {
                continue;
            }
            if let Some(d) = d
                && !on_sorry
            {
                out.push(Request::AddDestination(key, d.clone()));
            }
        }
    } else {
        ordered_adds_and_edits(desired, kernel, on_sorry, out);
    }
    for k in kernel.destinations.keys() {
        if !desired.destinations.contains_key(k) && !desired.unsettled.contains_key(k) {
            out.push(Request::DeleteDestination(key, *k));
        }
    }
}

/// Adds and edits of a service whose destination list must follow `desired.order` (mh).
/// The kernel puts each added destination at the head of its list, so adding in `order`
/// gives the same list as a fresh start. A destination added before some the kernel
/// already has (a reload inserting a server mid-list) makes those be deleted and added
/// again after it, in order: their connections stay (a deleted destination waits in the
/// kernel's trash and is taken back on re-add), and the first add comes before the
/// deletes, so the service never goes through "no destination".
fn ordered_adds_and_edits(
    desired: &DesiredService,
    kernel: &KernelService,
    on_sorry: bool,
    out: &mut Vec<Request>,
) {
    let key = desired.service.key;
    // What the kernel lacks, with the settings it gets.
    let mut adds: BTreeMap<DestinationKey, Destination> = BTreeMap::new();
    for (k, d) in &desired.destinations {
        if !kernel.destinations.contains_key(k) {
            adds.insert(*k, d.clone());
        }
    }
    for (k, d) in &desired.unsettled {
        if desired.destinations.contains_key(k) || kernel.destinations.contains_key(k) {
            continue;
        }
        if let Some(d) = d
            && !on_sorry
        {
            adds.insert(*k, d.clone());
        }
    }
    if adds.is_empty() {
        // Nothing added: the kernel's order stays as it is, edits are in place.
        for (k, d) in &desired.destinations {
            if let Some(have) = kernel.destinations.get(k)
                && have != d
            {
                out.push(Request::UpdateDestination(key, d.clone()));
            }
        }
        return;
    }
    let index: BTreeMap<DestinationKey, usize> = desired
        .order
        .iter()
        .enumerate()
        .map(|(i, k)| (*k, i))
        .collect();
    let position = |k: &DestinationKey| index.get(k).copied();
    let first = adds.keys().filter_map(position).min();
    // Kept destinations after the first add, as they are to be (unsettled: as they are).
    let mut readd: BTreeMap<usize, (DestinationKey, Destination)> = BTreeMap::new();
    if let Some(first) = first {
        for (k, have) in &kernel.destinations {
            let Some(i) = position(k).filter(|&i| i > first) else {
                continue;
            };
            if let Some(d) = desired.destinations.get(k) {
                readd.insert(i, (*k, d.clone()));
            } else if desired.unsettled.contains_key(k) {
                readd.insert(i, (*k, have.clone()));
            }
        }
    }
    let mut ordered: BTreeMap<usize, Destination> = BTreeMap::new();
    adds.retain(|k, d| match position(k) {
        Some(i) => {
            ordered.insert(i, d.clone());
            false
        }
        None => true,
    });
    let mut ordered = ordered.into_iter();
    if !readd.is_empty()
        && let Some((_, d)) = ordered.next()
    {
        out.push(Request::AddDestination(key, d));
        for (k, _) in readd.values() {
            out.push(Request::DeleteDestination(key, *k));
        }
    }
    let mut rest: BTreeMap<usize, Destination> = ordered.collect();
    for (i, (_, d)) in &readd {
        rest.insert(*i, d.clone());
    }
    out.extend(rest.into_values().map(|d| Request::AddDestination(key, d)));
    // Edits in place (SET_DEST), except of those just added again.
    let readded: BTreeSet<DestinationKey> = readd.values().map(|(k, _)| *k).collect();
    for (k, d) in &desired.destinations {
        if let Some(have) = kernel.destinations.get(k)
            && have != d
            && !readded.contains(k)
        {
            out.push(Request::UpdateDestination(key, d.clone()));
        }
    }
    // Destinations outside `order` (the sorry server), in key order.
    out.extend(adds.into_values().map(|d| Request::AddDestination(key, d)));
}

/// The requests that turn `kernel` into `desired`, touching only services in `desired`
/// or in `owned`. Services in key order.
pub fn diff(desired: &DesiredTable, kernel: &KernelTable, owned: &BTreeSet<ServiceKey>) -> Plan {
    let mut requests = Vec::new();
    let keys: BTreeSet<&ServiceKey> = desired
        .keys()
        .chain(owned.iter().filter(|k| kernel.contains_key(k)))
        .collect();
    for k in keys {
        diff_service_into(desired.get(k), kernel.get(k), &mut requests);
    }
    Plan { requests }
}

/// Writes in the order they are to be sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The requests.
    pub requests: Vec<Request>,
}

impl Plan {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// The requests by kind.
    pub fn counts(&self) -> OpCounts {
        let mut c = OpCounts::default();
        for r in &self.requests {
            c.count(r);
        }
        c
    }
}

/// Writes by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// `NEW_SERVICE`.
    pub add_service: usize,
    /// `SET_SERVICE`.
    pub update_service: usize,
    /// `DEL_SERVICE`.
    pub delete_service: usize,
    /// `NEW_DEST`.
    pub add_destination: usize,
    /// `SET_DEST`.
    pub update_destination: usize,
    /// `DEL_DEST`.
    pub delete_destination: usize,
}

impl OpCounts {
    fn count(&mut self, r: &Request) {
        match r {
            Request::AddService(_) => self.add_service += 1,
            Request::UpdateService(_) => self.update_service += 1,
            Request::DeleteService(_) => self.delete_service += 1,
            Request::AddDestination(..) => self.add_destination += 1,
            Request::UpdateDestination(..) => self.update_destination += 1,
            Request::DeleteDestination(..) => self.delete_destination += 1,
            _ => {}
        }
    }

    /// All writes.
    pub fn total(&self) -> usize {
        self.add_service
            + self.update_service
            + self.delete_service
            + self.add_destination
            + self.update_destination
            + self.delete_destination
    }
}

/// Exponential back-off for failed writes: `initial`, then times `factor` per further
/// failure, at most `max`. No jitter: one director retries its own writes, there is no
/// herd to spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Growth per further failure.
    pub factor: u32,
    /// Ceiling.
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 s, 2 s, 4 s ... up to 60 s.
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            factor: 2,
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The wait after the `failures`-th consecutive failure (1-based; 0 means none).
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let mut d = self.initial;
        for _ in 1..failures {
            d = d.saturating_mul(self.factor.max(1));
            if d >= self.max {
                return self.max;
            }
        }
        d.min(self.max)
    }
}

/// What a write is about: a service, or one destination of it.
type Target = (ServiceKey, Option<DestinationKey>);

fn target_of(r: &Request) -> Option<Target> {
    Some(match r {
        Request::AddService(s) | Request::UpdateService(s) => (s.key, None),
        Request::DeleteService(k) => (*k, None),
        Request::AddDestination(k, d) | Request::UpdateDestination(k, d) => (*k, Some(d.key())),
        Request::DeleteDestination(k, d) => (*k, Some(*d)),
        _ => return None,
    })
}

/// A failed write waiting for its next attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Retry {
    request: Request,
    failures: u32,
    not_before: Instant,
}

/// One write that failed.
#[derive(Debug)]
pub struct OpError {
    /// What was asked.
    pub request: Request,
    /// Why it failed; its text names the operation and the errno.
    pub error: Error,
    /// Consecutive failures of this write so far, this one included (0 when the write
    /// failed only because its service could not be added in the same batch: it is
    /// simply sent again with the service).
    pub failures: u32,
    /// When it will be tried again, at the earliest.
    pub retry_at: Instant,
}

impl std::fmt::Display for OpError {
    /// `adding destination 10.0.0.2:80 to tcp 192.0.2.1:80: Invalid argument (EINVAL)
    /// (failure 2, retry in 2 s)`: one log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.failures == 0 {
            write!(f, "{} (its service failed; sent again with it)", self.error)
        } else {
            write!(
                f,
                "{} (failure {}, retried after {:?})",
                self.error,
                self.failures,
                self.retry_at.saturating_duration_since(Instant::now())
            )
        }
    }
}

/// What one [`Reconciler::sync`] or [`Reconciler::sync_service`] did.
#[derive(Debug, Default)]
pub struct ReconcileReport {
    /// The writes the diff asked for.
    pub planned: OpCounts,
    /// The writes the kernel acknowledged.
    pub applied: OpCounts,
    /// Writes not sent because their back-off had not expired.
    pub deferred: usize,
    /// Writes that failed.
    pub errors: Vec<OpError>,
    /// The whole table was dumped first (first call, or after [`Reconciler::mark_stale`]).
    pub full_dump: bool,
    /// Services re-read first because an earlier write of theirs failed.
    pub refreshed: usize,
    /// Wall time of the call.
    pub duration: Duration,
}

impl ReconcileReport {
    /// Nothing was written and nothing failed.
    pub fn is_noop(&self) -> bool {
        self.applied.total() == 0 && self.errors.is_empty()
    }
}

/// Running totals, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Reconcile calls.
    pub syncs: u64,
    /// Writes sent.
    pub writes: u64,
    /// Writes that failed.
    pub write_errors: u64,
    /// Writes held back by back-off.
    pub deferred: u64,
    /// Full table dumps.
    pub full_dumps: u64,
    /// Single services re-read.
    pub service_dumps: u64,
}

/// Keeps the kernel's IPVS table equal to the desired one. See the module doc.
#[derive(Debug)]
pub struct Reconciler {
    known: KernelTable,
    fresh: bool,
    owned: BTreeSet<ServiceKey>,
    stale: BTreeSet<ServiceKey>,
    retries: HashMap<Target, Retry>,
    backoff: Backoff,
    counters: Counters,
}

impl Reconciler {
    /// A reconciler that considers `owned` its own besides whatever it is asked to sync.
    /// Nothing is read until the first sync.
    pub fn new(owned: impl IntoIterator<Item = ServiceKey>, backoff: Backoff) -> Reconciler {
        Reconciler {
            known: KernelTable::new(),
            fresh: false,
            owned: owned.into_iter().collect(),
            stale: BTreeSet::new(),
            retries: HashMap::new(),
            backoff,
            counters: Counters::default(),
        }
    }

    /// Keys this director owns: persist them so that after a restart with a changed
    /// config the services it no longer wants are still recognised as its own.
    pub fn owned(&self) -> &BTreeSet<ServiceKey> {
        &self.owned
    }

    /// The kernel's table as last read and written (empty before the first sync).
    pub fn known(&self) -> &KernelTable {
        &self.known
    }

    /// Running totals.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// When a failed write may be retried, at the earliest: call a sync again then.
    pub fn next_retry(&self) -> Option<Instant> {
        self.retries.values().map(|r| r.not_before).min()
    }

    /// Forget the known table: the next sync dumps the kernel again (drift repair).
    pub fn mark_stale(&mut self) {
        self.fresh = false;
    }

    fn refresh(
        &mut self,
        client: &mut impl Table,
        report: &mut ReconcileReport,
    ) -> Result<(), Error> {
        if !self.fresh {
            self.known = client.dump()?;
            self.fresh = true;
            self.stale.clear();
            self.counters.full_dumps += 1;
            report.full_dump = true;
            return Ok(());
        }
        while let Some(key) = self.stale.pop_first() {
            match client.dump_service(&key) {
                Ok(Some(s)) => {
                    self.known.insert(key, s);
                }
                Ok(None) => {
                    self.known.remove(&key);
                }
                Err(e) => {
                    self.stale.insert(key);
                    return Err(e);
                }
            }
            self.counters.service_dumps += 1;
            report.refreshed += 1;
        }
        Ok(())
    }

    /// Makes every owned service match `desired`: adds and edits what differs, deletes
    /// owned services that are not desired (any more). The first call dumps the kernel.
    /// `now` drives the retry schedule.
    pub fn sync(
        &mut self,
        client: &mut impl Table,
        desired: &DesiredTable,
        now: Instant,
    ) -> Result<ReconcileReport, Error> {
        let t0 = Instant::now();
        let mut report = ReconcileReport::default();
        self.refresh(client, &mut report)?;
        self.owned.extend(desired.keys().copied());
        let plan = diff(desired, &self.known, &self.owned);
        // Retries of writes the diff no longer wants are dropped.
        let wanted: BTreeSet<Target> = plan.requests.iter().filter_map(target_of).collect();
        self.retries.retain(|t, _| wanted.contains(t));
        self.execute(client, plan, now, &mut report)?;
        report.duration = t0.elapsed();
        Ok(report)
    }

    /// Makes one service match `desired` (`None`: delete `key` if it is owned). For a
    /// health change or a drain: cost is one service's diff and its writes.
    pub fn sync_service(
        &mut self,
        client: &mut impl Table,
        key: ServiceKey,
        desired: Option<&DesiredService>,
        now: Instant,
    ) -> Result<ReconcileReport, Error> {
        let t0 = Instant::now();
        let mut report = ReconcileReport::default();
        self.refresh(client, &mut report)?;
        // The desired service's own key wins over `key` (which only names what to delete).
        let key = desired.map_or(key, |d| d.service.key);
        if desired.is_some() {
            self.owned.insert(key);
        } else if !self.owned.contains(&key) {
            report.duration = t0.elapsed();
            return Ok(report);
        }
        let plan = Plan {
            requests: diff_service(desired, self.known.get(&key)),
        };
        let wanted: BTreeSet<Target> = plan.requests.iter().filter_map(target_of).collect();
        self.retries.retain(|t, _| t.0 != key || wanted.contains(t));
        self.execute(client, plan, now, &mut report)?;
        report.duration = t0.elapsed();
        Ok(report)
    }

    /// Applies a plan made elsewhere (e.g. [`diff`] against [`Reconciler::known`]) with
    /// the same back-off, bookkeeping and report as a sync. Services it adds become owned.
    pub fn apply(
        &mut self,
        client: &mut impl Table,
        plan: Plan,
        now: Instant,
    ) -> Result<ReconcileReport, Error> {
        let t0 = Instant::now();
        let mut report = ReconcileReport::default();
        self.execute(client, plan, now, &mut report)?;
        report.duration = t0.elapsed();
        Ok(report)
    }

    fn execute(
        &mut self,
        client: &mut impl Table,
        plan: Plan,
        now: Instant,
        report: &mut ReconcileReport,
    ) -> Result<(), Error> {
        report.planned = plan.counts();
        if plan.is_empty() {
            self.counters.syncs += 1;
            return Ok(());
        }
        // Hold back writes whose back-off runs; a service add held back holds back the
        // destination writes of that service too (they would fail with ESRCH).
        let mut held_services = BTreeSet::new();
        let mut send = Vec::with_capacity(plan.requests.len());
        for r in plan.requests {
            let Some(t) = target_of(&r) else { continue };
            let waiting = self
                .retries
                .get(&t)
                .is_some_and(|x| x.request == r && x.not_before > now);
            let blocked = t.1.is_some() && held_services.contains(&t.0);
            if waiting || blocked {
                if matches!(r, Request::AddService(_)) {
                    held_services.insert(t.0);
                }
                report.deferred += 1;
                continue;
            }
            send.push(r);
        }
        self.counters.syncs += 1;
        self.counters.deferred += report.deferred as u64;
        if send.is_empty() {
            return Ok(());
        }
        let results = match client.apply(&send) {
            Ok(r) => r,
            Err(e) => {
                // The socket failed mid-way: what was written is unknown.
                self.fresh = false;
                return Err(e);
            }
        };
        self.counters.writes += send.len() as u64;
        let mut failed_adds = BTreeSet::new();
        for (r, res) in send.into_iter().zip(results) {
            let Some(t) = target_of(&r) else { continue };
            match res {
                Ok(()) => {
                    report.applied.count(&r);
                    self.retries.remove(&t);
                    self.record(&r);
                }
                Err(error) => {
                    self.counters.write_errors += 1;
                    self.stale.insert(t.0);
                    if matches!(r, Request::AddService(_)) {
                        failed_adds.insert(t.0);
                    }
                    if t.1.is_some() && failed_adds.contains(&t.0) {
                        // Not this write's fault: it goes again with its service.
                        report.errors.push(OpError {
                            request: r,
                            error,
                            failures: 0,
                            retry_at: now,
                        });
                        continue;
                    }
                    let failures = match self.retries.get(&t) {
                        Some(x) if x.request == r => x.failures + 1,
                        _ => 1,
                    };
                    let retry_at = now + self.backoff.delay(failures);
                    self.retries.insert(
                        t,
                        Retry {
                            request: r.clone(),
                            failures,
                            not_before: retry_at,
                        },
                    );
                    report.errors.push(OpError {
                        request: r,
                        error,
                        failures,
                        retry_at,
                    });
                }
            }
        }
        Ok(())
    }

    /// Updates the known table after the kernel acknowledged `r`.
    fn record(&mut self, r: &Request) {
        match r {
            Request::AddService(s) => {
                self.owned.insert(s.key);
                self.known.insert(
                    s.key,
                    KernelService {
                        service: s.clone(),
                        destinations: BTreeMap::new(),
                    },
                );
            }
            Request::UpdateService(s) => {
                if let Some(k) = self.known.get_mut(&s.key) {
                    k.service = s.clone();
                }
            }
            Request::DeleteService(key) => {
                self.known.remove(key);
                self.owned.remove(key);
            }
            Request::AddDestination(key, d) | Request::UpdateDestination(key, d) => {
                if let Some(k) = self.known.get_mut(key) {
                    k.destinations.insert(d.key(), d.clone());
                }
            }
            Request::DeleteDestination(key, d) => {
                if let Some(k) = self.known.get_mut(key) {
                    k.destinations.remove(d);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ForwardMethod, Netmask};
    use std::net::SocketAddr;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn key(n: u8) -> ServiceKey {
        ServiceKey::tcp(SocketAddr::new([192, 0, 2, n].into(), 80))
    }

    fn dest(n: u8, w: u32) -> Destination {
        Destination::new(
            SocketAddr::new([10, 0, 0, n].into(), 80),
            ForwardMethod::Masquerade,
        )
        .weight(w)
    }

    fn desired(k: ServiceKey, dests: &[Destination]) -> DesiredService {
        let mut d = DesiredService::new(Service::new(k, "wrr"));
        for x in dests {
            d = d.with(x.clone());
        }
        d
    }

    fn kernel(k: ServiceKey, dests: &[Destination]) -> KernelService {
        KernelService::from(&desired(k, dests))
    }

    fn table_of<T: Clone>(items: &[(ServiceKey, T)]) -> BTreeMap<ServiceKey, T> {
        items.iter().cloned().collect()
    }

    #[test]
    fn equal_tables_need_nothing() {
        let d = desired(key(1), &[dest(1, 1), dest(2, 2)]);
        let k = kernel(key(1), &[dest(1, 1), dest(2, 2)]);
        assert!(diff_service(Some(&d), Some(&k)).is_empty());
        let plan = diff(
            &table_of(&[(key(1), d)]),
            &table_of(&[(key(1), k)]),
            &BTreeSet::new(),
        );
        assert!(plan.is_empty());
        assert_eq!(plan.counts().total(), 0);
    }

    #[test]
    fn new_service_is_added_with_its_destinations_in_order() {
        let d = desired(key(1), &[dest(2, 1), dest(1, 1)]);
        let got = diff_service(Some(&d), None);
        assert_eq!(
            got,
            vec![
                Request::AddService(d.service.clone()),
                Request::AddDestination(key(1), dest(1, 1)),
                Request::AddDestination(key(1), dest(2, 1)),
            ]
        );
    }

    /// `desired` with `order` set as `dests` are listed (what the policy does for mh).
    fn ordered(k: ServiceKey, dests: &[Destination]) -> DesiredService {
        let mut d = desired(k, dests);
        d.service.scheduler = "mh".into();
        d.order = dests.iter().map(Destination::key).collect();
        d
    }

    /// The kernel's destination list after `requests`, from `list`: IPVS puts an added
    /// destination at the head (`__ip_vs_update_dest`), and mh builds its table from it.
    fn kernel_list(mut list: Vec<DestinationKey>, requests: &[Request]) -> Vec<DestinationKey> {
        for r in requests {
            match r {
                Request::AddDestination(_, d) => list.insert(0, d.key()),
                Request::DeleteDestination(_, k) => list.retain(|x| x != k),
                _ => {}
            }
        }
        list
    }

    #[test]
    fn ordered_service_is_added_in_configured_order() {
        // Configured 3, 1, 2: added in that order, not in address order.
        let d = ordered(key(1), &[dest(3, 1), dest(1, 1), dest(2, 0)]);
        let got = diff_service(Some(&d), None);
        assert_eq!(
            got,
            vec![
                Request::AddService(d.service.clone()),
                Request::AddDestination(key(1), dest(3, 1)),
                Request::AddDestination(key(1), dest(1, 1)),
                Request::AddDestination(key(1), dest(2, 0)),
            ]
        );
        // A server appended by a reload is one add, and the list is a fresh start's.
        let fresh = |dests: &[Destination]| {
            kernel_list(
                Vec::new(),
                &diff_service(Some(&ordered(key(1), dests)), None),
            )
        };
        let old = [dest(3, 1), dest(1, 1)];
        let new = [dest(3, 1), dest(1, 1), dest(2, 1)];
        let got = diff_service(
            Some(&ordered(key(1), &new)),
            Some(&KernelService::from(&ordered(key(1), &old))),
        );
        assert_eq!(got, vec![Request::AddDestination(key(1), dest(2, 1))]);
        assert_eq!(kernel_list(fresh(&old), &got), fresh(&new));
    }

    #[test]
    fn ordered_insert_mid_list_adds_the_followers_again() {
        let fresh = |dests: &[Destination]| {
            kernel_list(
                Vec::new(),
                &diff_service(Some(&ordered(key(1), dests)), None),
            )
        };
        // Kernel has 3, 1, 2 (configured so); a reload inserts 4 after 3 and 5 at the end,
        // and changes 2's weight.
        let old = [dest(3, 1), dest(1, 1), dest(2, 1)];
        let new = [dest(3, 1), dest(4, 1), dest(1, 1), dest(2, 7), dest(5, 1)];
        let got = diff_service(
            Some(&ordered(key(1), &new)),
            Some(&KernelService::from(&ordered(key(1), &old))),
        );
        assert_eq!(
            got,
            vec![
                // The first add before the deletes: never without a destination.
                Request::AddDestination(key(1), dest(4, 1)),
                Request::DeleteDestination(key(1), dest(1, 1).key()),
                Request::DeleteDestination(key(1), dest(2, 1).key()),
                Request::AddDestination(key(1), dest(1, 1)),
                Request::AddDestination(key(1), dest(2, 7)),
                Request::AddDestination(key(1), dest(5, 1)),
            ]
        );
        assert_eq!(kernel_list(fresh(&old), &got), fresh(&new));
        // Inserted first: everything after it goes again; a removal needs nothing more.
        let new = [dest(6, 1), dest(1, 1), dest(2, 1)];
        let got = diff_service(
            Some(&ordered(key(1), &new)),
            Some(&KernelService::from(&ordered(key(1), &old))),
        );
        assert_eq!(got[0], Request::AddDestination(key(1), dest(6, 1)));
        assert_eq!(kernel_list(fresh(&old), &got), fresh(&new));
        // Applied, the table is reached: nothing more to do.
        let mut k = KernelService::from(&ordered(key(1), &old));
        for r in &got {
            match r {
                Request::AddDestination(_, d) => {
                    k.destinations.insert(d.key(), d.clone());
                }
                Request::DeleteDestination(_, x) => {
                    k.destinations.remove(x);
                }
                _ => {}
            }
        }
        assert!(diff_service(Some(&ordered(key(1), &new)), Some(&k)).is_empty());
        // A follower whose health is unknown goes again as the kernel has it.
        let old = [dest(1, 1), dest(2, 3)];
        let mut want = ordered(key(1), &[dest(1, 1), dest(7, 1), dest(2, 1)]);
        let b = dest(2, 1).key();
        want.destinations.remove(&b);
        want.unsettled.insert(b, None);
        let got = diff_service(
            Some(&want),
            Some(&KernelService::from(&ordered(key(1), &old))),
        );
        assert_eq!(
            got,
            vec![
                Request::AddDestination(key(1), dest(7, 1)),
                Request::DeleteDestination(key(1), b),
                Request::AddDestination(key(1), dest(2, 3)),
            ]
        );
        // No add: weights are edited in place, the order is left alone.
        let got = diff_service(
            Some(&ordered(key(1), &[dest(1, 0), dest(2, 3)])),
            Some(&KernelService::from(&ordered(key(1), &old))),
        );
        assert_eq!(got, vec![Request::UpdateDestination(key(1), dest(1, 0))]);
    }

    #[test]
    fn weight_threshold_and_forwarding_changes_are_edits() {
        let mut dr = dest(2, 1);
        dr.forward = ForwardMethod::DirectRoute;
        let mut thr = dest(3, 1);
        thr.upper_threshold = 50;
        let d = desired(key(1), &[dest(1, 5), dr.clone(), thr.clone()]);
        let k = kernel(key(1), &[dest(1, 1), dest(2, 1), dest(3, 1)]);
        assert_eq!(
            diff_service(Some(&d), Some(&k)),
            vec![
                Request::UpdateDestination(key(1), dest(1, 5)),
                Request::UpdateDestination(key(1), dr),
                Request::UpdateDestination(key(1), thr),
            ]
        );
    }

    #[test]
    fn service_setting_changes_are_one_edit() {
        let k = kernel(key(1), &[dest(1, 1)]);
        for change in [
            |s: &mut Service| s.scheduler = "rr".into(),
            |s: &mut Service| *s = s.clone().persistent(300),
            |s: &mut Service| s.netmask = Netmask::V4("255.255.255.0".parse().unwrap()),
            |s: &mut Service| s.flags |= crate::model::ServiceFlags::ONE_PACKET,
            |s: &mut Service| s.pe_name = Some("sip".into()),
        ] {
            let mut d = desired(key(1), &[dest(1, 1)]);
            change(&mut d.service);
            assert_eq!(
                diff_service(Some(&d), Some(&k)),
                vec![Request::UpdateService(d.service.clone())]
            );
        }
    }

    #[test]
    fn adds_come_before_deletes_for_a_swap() {
        // Reals out, sorry server in: the add is first, so never zero destinations.
        let d = desired(key(1), &[dest(99, 1)]);
        let k = kernel(key(1), &[dest(1, 1), dest(2, 1)]);
        assert_eq!(
            diff_service(Some(&d), Some(&k)),
            vec![
                Request::AddDestination(key(1), dest(99, 1)),
                Request::DeleteDestination(key(1), dest(1, 1).key()),
                Request::DeleteDestination(key(1), dest(2, 1).key()),
            ]
        );
        // And back.
        let d = desired(key(1), &[dest(1, 1), dest(2, 1)]);
        let k = kernel(key(1), &[dest(99, 1)]);
        assert_eq!(
            diff_service(Some(&d), Some(&k)),
            vec![
                Request::AddDestination(key(1), dest(1, 1)),
                Request::AddDestination(key(1), dest(2, 1)),
                Request::DeleteDestination(key(1), dest(99, 1).key()),
            ]
        );
    }

    #[test]
    fn unsettled_destinations_are_left_alone_or_added() {
        let mut d = desired(key(1), &[dest(1, 1)]);
        d.unsettled.insert(dest(2, 1).key(), Some(dest(2, 7)));
        d.unsettled.insert(dest(3, 1).key(), None);
        d.unsettled.insert(dest(4, 1).key(), Some(dest(4, 1)));
        d.unsettled.insert(dest(5, 1).key(), None);
        // The kernel has 2 (other weight) and 3; not 4 and 5.
        let k = kernel(key(1), &[dest(1, 1), dest(2, 3), dest(3, 3)]);
        assert_eq!(
            diff_service(Some(&d), Some(&k)),
            vec![Request::AddDestination(key(1), dest(4, 1))]
        );
        // A fresh service gets the Some fallbacks.
        let got = diff_service(Some(&d), None);
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got.contains(&Request::AddDestination(key(1), dest(2, 7))));
        // A key in both maps follows `destinations`.
        d.unsettled.insert(dest(1, 1).key(), None);
        let k = kernel(key(1), &[dest(1, 9), dest(2, 3), dest(3, 3), dest(4, 1)]);
        assert_eq!(
            diff_service(Some(&d), Some(&k)),
            vec![Request::UpdateDestination(key(1), dest(1, 1))]
        );
    }

    #[test]
    fn undecided_quorum_stays_on_the_sorry_server() {
        let mut d = desired(key(1), &[]);
        d.unsettled.insert(dest(1, 1).key(), Some(dest(1, 1)));
        d.unsettled.insert(dest(99, 1).key(), None);
        d.sorry_undecided = Some(dest(99, 1).key());
        // The kernel is on its sorry server: nothing is added or removed.
        let k = kernel(key(1), &[dest(99, 1)]);
        assert!(diff_service(Some(&d), Some(&k)).is_empty());
        // It is not: the fallbacks go in.
        let k = kernel(key(1), &[]);
        assert_eq!(
            diff_service(Some(&d), Some(&k)),
            vec![Request::AddDestination(key(1), dest(1, 1))]
        );
        assert_eq!(diff_service(Some(&d), None).len(), 2);
    }

    #[test]
    fn only_owned_services_are_deleted() {
        let foreign = kernel(key(7), &[dest(1, 1)]);
        let old = kernel(key(2), &[dest(1, 1)]);
        let ours = kernel(key(1), &[dest(1, 1)]);
        let k = table_of(&[(key(1), ours.clone()), (key(2), old), (key(7), foreign)]);
        let d = table_of(&[(key(1), desired(key(1), &[dest(1, 1)]))]);
        // key(2) was ours (previous config): deleted. key(7) is someone else's.
        let owned = BTreeSet::from([key(2), key(3)]);
        assert_eq!(
            diff(&d, &k, &owned).requests,
            vec![Request::DeleteService(key(2))]
        );
        // Without the previous ownership nothing is deleted.
        assert!(diff(&d, &k, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn foreign_destinations_of_an_owned_service_are_removed() {
        // A service we own is ours whole: a destination someone added by hand goes.
        let d = desired(key(1), &[dest(1, 1)]);
        let k = kernel(key(1), &[dest(1, 1), dest(8, 1)]);
        assert_eq!(
            diff_service(Some(&d), Some(&k)),
            vec![Request::DeleteDestination(key(1), dest(8, 1).key())]
        );
    }

    #[test]
    fn desired_service_that_exists_is_adopted_not_recreated() {
        let mut d = desired(key(1), &[dest(1, 1)]);
        d.service.scheduler = "rr".into();
        let k = kernel(key(1), &[dest(1, 1)]);
        let got = diff_service(Some(&d), Some(&k));
        assert_eq!(got, vec![Request::UpdateService(d.service.clone())]);
    }

    #[test]
    fn plan_is_deterministic_and_in_key_order() {
        let d: DesiredTable = (1..=5)
            .rev()
            .map(|i| (key(i), desired(key(i), &[dest(1, 1)])))
            .collect();
        let a = diff(&d, &KernelTable::new(), &BTreeSet::new());
        let b = diff(&d, &KernelTable::new(), &BTreeSet::new());
        assert_eq!(a, b);
        let services: Vec<ServiceKey> = a
            .requests
            .iter()
            .filter_map(|r| match r {
                Request::AddService(s) => Some(s.key),
                _ => None,
            })
            .collect();
        assert_eq!(services, (1..=5).map(key).collect::<Vec<_>>());
        assert_eq!(
            a.counts(),
            OpCounts {
                add_service: 5,
                add_destination: 5,
                ..OpCounts::default()
            }
        );
    }

    #[test]
    fn counts_by_kind() {
        let plan = Plan {
            requests: vec![
                Request::AddService(Service::new(key(1), "rr")),
                Request::UpdateService(Service::new(key(1), "rr")),
                Request::DeleteService(key(1)),
                Request::AddDestination(key(1), dest(1, 1)),
                Request::UpdateDestination(key(1), dest(1, 1)),
                Request::UpdateDestination(key(1), dest(2, 1)),
                Request::DeleteDestination(key(1), dest(1, 1).key()),
                Request::Flush,
            ],
        };
        let c = plan.counts();
        assert_eq!(
            (
                c.add_service,
                c.update_service,
                c.delete_service,
                c.add_destination,
                c.update_destination,
                c.delete_destination,
                c.total()
            ),
            (1, 1, 1, 1, 2, 1, 7)
        );
    }

    #[test]
    fn diff_then_apply_reaches_the_desired_table() {
        // Applying the plan to a model of the kernel gives exactly the desired table.
        let mut k: KernelTable = table_of(&[
            (
                key(1),
                kernel(key(1), &[dest(1, 1), dest(2, 1), dest(3, 1)]),
            ),
            (key(2), kernel(key(2), &[dest(1, 1)])),
            (key(9), kernel(key(9), &[dest(1, 1)])),
        ]);
        let mut d = desired(key(1), &[dest(1, 4), dest(4, 1)]);
        d.service.scheduler = "lc".into();
        let want: DesiredTable = table_of(&[(key(1), d), (key(3), desired(key(3), &[dest(5, 2)]))]);
        let owned = BTreeSet::from([key(2)]);
        let plan = diff(&want, &k, &owned);
        let mut r = Reconciler::new([], Backoff::default());
        r.known = std::mem::take(&mut k);
        for req in &plan.requests {
            r.record(req);
        }
        for (key, d) in &want {
            assert_eq!(r.known[key], KernelService::from(d));
        }
        assert!(!r.known.contains_key(&key(2)));
        assert!(r.known.contains_key(&key(9)), "foreign service untouched");
        assert!(diff(&want, &r.known, &owned).is_empty());
    }

    #[test]
    fn backoff_doubles_to_a_ceiling() {
        let b = Backoff::default();
        let got: Vec<u64> = (0..10).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(got, [0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(60));
        let flat = Backoff {
            initial: Duration::from_millis(100),
            factor: 0,
            max: Duration::from_secs(1),
        };
        assert_eq!(flat.delay(5), Duration::from_millis(100));
    }

    /// A model of the kernel's table with the kernel's errnos, that can be told to
    /// refuse writes about some destinations.
    #[derive(Default)]
    struct FakeKernel {
        table: KernelTable,
        refuse: BTreeSet<DestinationKey>,
        refuse_services: BTreeSet<ServiceKey>,
        writes: usize,
        dumps: usize,
        broken: bool,
    }

    fn kerr(r: &Request, errno: i32) -> Error {
        Error::Kernel {
            op: r.operation(),
            errno: crate::Errno(errno),
            message: None,
        }
    }

    impl Table for FakeKernel {
        fn dump(&mut self) -> Result<KernelTable, Error> {
            self.dumps += 1;
            Ok(self.table.clone())
        }
        fn dump_service(&mut self, key: &ServiceKey) -> Result<Option<KernelService>, Error> {
            self.dumps += 1;
            Ok(self.table.get(key).cloned())
        }
        fn apply(&mut self, requests: &[Request]) -> Result<Vec<Result<(), Error>>, Error> {
            if self.broken {
                return Err(Error::Io {
                    op: crate::model::Operation::Open,
                    source: std::io::Error::from_raw_os_error(libc::EBADF),
                });
            }
            Ok(requests
                .iter()
                .map(|r| {
                    self.writes += 1;
                    if let Some((_, Some(d))) = target_of(r)
                        && self.refuse.contains(&d)
                    {
                        return Err(kerr(r, libc::EINVAL));
                    }
                    if let Request::AddService(s) = r
                        && self.refuse_services.contains(&s.key)
                    {
                        return Err(kerr(r, libc::ENOENT));
                    }
                    let t = &mut self.table;
                    match r {
                        Request::AddService(s) if t.contains_key(&s.key) => {
                            Err(kerr(r, libc::EEXIST))
                        }
                        Request::AddService(s) => {
                            t.insert(
                                s.key,
                                KernelService {
                                    service: s.clone(),
                                    destinations: BTreeMap::new(),
                                },
                            );
                            Ok(())
                        }
                        Request::UpdateService(s) => match t.get_mut(&s.key) {
                            Some(k) => {
                                k.service = s.clone();
                                Ok(())
                            }
                            None => Err(kerr(r, libc::ESRCH)),
                        },
                        Request::DeleteService(key) => match t.remove(key) {
                            Some(_) => Ok(()),
                            None => Err(kerr(r, libc::ESRCH)),
                        },
                        Request::AddDestination(key, d) => match t.get_mut(key) {
                            None => Err(kerr(r, libc::ESRCH)),
                            Some(k) if k.destinations.contains_key(&d.key()) => {
                                Err(kerr(r, libc::EEXIST))
                            }
                            Some(k) => {
                                k.destinations.insert(d.key(), d.clone());
                                Ok(())
                            }
                        },
                        Request::UpdateDestination(key, d) => match t.get_mut(key) {
                            None => Err(kerr(r, libc::ESRCH)),
                            Some(k) => match k.destinations.get_mut(&d.key()) {
                                Some(x) => {
                                    *x = d.clone();
                                    Ok(())
                                }
                                None => Err(kerr(r, libc::ENOENT)),
                            },
                        },
                        Request::DeleteDestination(key, d) => match t.get_mut(key) {
                            None => Err(kerr(r, libc::ESRCH)),
                            Some(k) => match k.destinations.remove(d) {
                                Some(_) => Ok(()),
                                None => Err(kerr(r, libc::ENOENT)),
                            },
                        },
                        _ => Ok(()),
                    }
                })
                .collect())
        }
    }

    fn table(services: &[DesiredService]) -> DesiredTable {
        services
            .iter()
            .map(|d| (d.service.key, d.clone()))
            .collect()
    }

    #[test]
    fn first_sync_adopts_an_unchanged_kernel_without_writes() {
        let want = table(&[
            desired(key(1), &[dest(1, 1), dest(2, 3)]),
            desired(key(2), &[dest(1, 1)]),
        ]);
        let mut k = FakeKernel::default();
        for (key, d) in &want {
            k.table.insert(*key, KernelService::from(d));
        }
        let mut r = Reconciler::new([], Backoff::default());
        let t0 = Instant::now();
        let rep = r.sync(&mut k, &want, t0).unwrap();
        assert!(rep.full_dump);
        assert!(rep.is_noop(), "{rep:?}");
        assert_eq!((k.writes, rep.planned.total()), (0, 0));
        assert_eq!(r.owned().len(), 2);
        // And a second sync does not dump again.
        let rep = r.sync(&mut k, &want, t0).unwrap();
        assert!(!rep.full_dump && rep.is_noop());
        assert_eq!(k.dumps, 1);
    }

    #[test]
    fn one_refused_destination_does_not_stop_the_others_and_backs_off() {
        let want = table(&[
            desired(key(1), &[dest(1, 1), dest(2, 1), dest(3, 1)]),
            desired(key(2), &[dest(1, 1)]),
        ]);
        let mut k = FakeKernel::default();
        k.refuse.insert(dest(2, 1).key());
        let mut r = Reconciler::new([], Backoff::default());
        let t0 = Instant::now();
        let rep = r.sync(&mut k, &want, t0).unwrap();
        assert_eq!(rep.applied.add_service, 2);
        assert_eq!(rep.applied.add_destination, 3);
        assert_eq!(rep.errors.len(), 1);
        let e = &rep.errors[0];
        assert_eq!(e.failures, 1);
        assert_eq!(e.retry_at, t0 + Duration::from_secs(1));
        assert_eq!(
            e.error.to_string(),
            "adding destination 10.0.0.2:80 to tcp 192.0.2.1:80: Invalid argument (EINVAL)"
        );
        assert_eq!(r.next_retry(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(r.counters().write_errors, 1);
        // Before the back-off expires: deferred, not sent (the service is re-read).
        let writes = k.writes;
        let rep = r
            .sync(&mut k, &want, t0 + Duration::from_millis(500))
            .unwrap();
        assert_eq!((rep.deferred, rep.refreshed, k.writes), (1, 1, writes));
        // After: sent again, fails again, waits twice as long.
        let t1 = t0 + Duration::from_secs(1);
        let rep = r.sync(&mut k, &want, t1).unwrap();
        assert_eq!(rep.errors[0].failures, 2);
        assert_eq!(r.next_retry(), Some(t1 + Duration::from_secs(2)));
        // The kernel relents: the retry succeeds and the schedule is cleared.
        k.refuse.clear();
        let t2 = t1 + Duration::from_secs(2);
        let rep = r.sync(&mut k, &want, t2).unwrap();
        assert_eq!((rep.applied.add_destination, rep.errors.len()), (1, 0));
        assert_eq!(r.next_retry(), None);
        assert_eq!(k.table[&key(1)].destinations.len(), 3);
        assert!(r.sync(&mut k, &want, t2).unwrap().is_noop());
    }

    #[test]
    fn a_changed_write_is_not_held_back_by_an_old_failure() {
        let mut want = table(&[desired(key(1), &[dest(1, 1)])]);
        let mut k = FakeKernel::default();
        k.refuse.insert(dest(1, 1).key());
        let mut r = Reconciler::new([], Backoff::default());
        let t0 = Instant::now();
        assert_eq!(r.sync(&mut k, &want, t0).unwrap().errors.len(), 1);
        k.refuse.clear();
        // A new weight for the same destination is a different write: sent at once.
        want.insert(key(1), desired(key(1), &[dest(1, 5)]));
        let rep = r.sync(&mut k, &want, t0).unwrap();
        assert_eq!((rep.deferred, rep.applied.add_destination), (0, 1));
        assert_eq!(k.table[&key(1)].destinations[&dest(1, 5).key()].weight, 5);
        // And a write the diff no longer wants drops its retry.
        k.refuse.insert(dest(2, 1).key());
        want.insert(key(1), desired(key(1), &[dest(1, 5), dest(2, 1)]));
        assert_eq!(r.sync(&mut k, &want, t0).unwrap().errors.len(), 1);
        assert!(r.next_retry().is_some());
        want.insert(key(1), desired(key(1), &[dest(1, 5)]));
        assert!(r.sync(&mut k, &want, t0).unwrap().is_noop());
        assert_eq!(r.next_retry(), None);
    }

    #[test]
    fn a_service_taken_meanwhile_is_reread_and_adopted() {
        let want = table(&[desired(key(1), &[dest(1, 1), dest(2, 1)])]);
        let mut k = FakeKernel::default();
        // Someone else grabs the key between our dump and our add: EEXIST.
        let mut r = Reconciler::new([], Backoff::default());
        let t0 = Instant::now();
        r.refresh(&mut k, &mut ReconcileReport::default()).unwrap();
        k.table.insert(key(1), kernel(key(1), &[dest(9, 1)]));
        let rep = r.sync(&mut k, &want, t0).unwrap();
        // The service add fails; the destination adds reach the existing service.
        assert_eq!(rep.errors.len(), 1, "{rep:?}");
        assert!(rep.errors[0].error.is_exists());
        assert_eq!(rep.applied.add_destination, 2);
        // Next sync re-reads the service, adopts it and fixes it up, no waiting.
        let rep = r.sync(&mut k, &want, t0).unwrap();
        assert_eq!(rep.refreshed, 1);
        assert!(rep.errors.is_empty(), "{rep:?}");
        assert_eq!(k.table[&key(1)], KernelService::from(&want[&key(1)]));
    }

    #[test]
    fn a_refused_service_holds_back_its_destinations() {
        let want = table(&[
            desired(key(1), &[dest(1, 1), dest(2, 1)]),
            desired(key(2), &[dest(1, 1)]),
        ]);
        let mut k = FakeKernel::default();
        k.refuse_services.insert(key(1)); // say, an unknown scheduler: ENOENT
        let mut r = Reconciler::new([], Backoff::default());
        let t0 = Instant::now();
        let rep = r.sync(&mut k, &want, t0).unwrap();
        assert_eq!(rep.errors.len(), 3, "{rep:?}");
        assert_eq!(rep.errors[0].failures, 1);
        // Its destinations fail with ESRCH but are not charged a back-off of their own.
        assert!(
            rep.errors[1..]
                .iter()
                .all(|e| e.failures == 0 && e.error.errno() == Some(crate::Errno::ESRCH))
        );
        assert_eq!(rep.applied.total(), 2, "the other service went in");
        // Within the back-off neither the service nor its destinations are sent.
        let writes = k.writes;
        let rep = r
            .sync(&mut k, &want, t0 + Duration::from_millis(10))
            .unwrap();
        assert_eq!((rep.deferred, k.writes), (3, writes));
        k.refuse_services.clear();
        let rep = r.sync(&mut k, &want, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(rep.applied.total(), 3, "{rep:?}");
        assert_eq!(r.next_retry(), None);
    }

    #[test]
    fn removed_services_are_deleted_foreign_ones_never() {
        let mut k = FakeKernel::default();
        k.table.insert(key(7), kernel(key(7), &[dest(1, 1)])); // ipvsadm's
        k.table.insert(key(2), kernel(key(2), &[dest(1, 1)])); // ours, from before
        let mut r = Reconciler::new([key(2)], Backoff::default());
        let want = table(&[desired(key(1), &[dest(1, 1)])]);
        let rep = r.sync(&mut k, &want, Instant::now()).unwrap();
        assert_eq!(rep.applied.delete_service, 1);
        assert!(k.table.contains_key(&key(7)));
        assert!(!k.table.contains_key(&key(2)));
        assert_eq!(r.owned(), &BTreeSet::from([key(1)]));
        // Dropping key(1) from the config deletes it, since it is owned now.
        let rep = r
            .sync(&mut k, &DesiredTable::new(), Instant::now())
            .unwrap();
        assert_eq!(rep.applied.delete_service, 1);
        assert_eq!(k.table.keys().copied().collect::<Vec<_>>(), vec![key(7)]);
    }

    #[test]
    fn sync_service_touches_one_service() {
        let want = table(&[
            desired(key(1), &[dest(1, 1), dest(2, 1)]),
            desired(key(2), &[dest(1, 1)]),
        ]);
        let mut k = FakeKernel::default();
        let mut r = Reconciler::new([], Backoff::default());
        let now = Instant::now();
        r.sync(&mut k, &want, now).unwrap();
        k.writes = 0;
        // Toggle one destination: one SET_DEST.
        let toggled = desired(key(1), &[dest(1, 1), dest(2, 0)]);
        let rep = r.sync_service(&mut k, key(1), Some(&toggled), now).unwrap();
        assert_eq!((rep.applied.update_destination, k.writes), (1, 1));
        assert_eq!(k.table[&key(1)].destinations[&dest(2, 0).key()].weight, 0);
        // Deleting an unowned service is refused silently; an owned one goes.
        let rep = r.sync_service(&mut k, key(9), None, now).unwrap();
        assert!(rep.is_noop());
        let rep = r.sync_service(&mut k, key(2), None, now).unwrap();
        assert_eq!(rep.applied.delete_service, 1);
        assert!(!r.owned().contains(&key(2)));
    }

    #[test]
    fn a_broken_socket_fails_the_call_and_forces_a_dump() {
        let want = table(&[desired(key(1), &[dest(1, 1)])]);
        let mut k = FakeKernel::default();
        let mut r = Reconciler::new([], Backoff::default());
        r.sync(&mut k, &DesiredTable::new(), Instant::now())
            .unwrap();
        k.broken = true;
        assert!(r.sync(&mut k, &want, Instant::now()).is_err());
        k.broken = false;
        let rep = r.sync(&mut k, &want, Instant::now()).unwrap();
        assert!(rep.full_dump);
        assert_eq!(rep.applied.total(), 2);
    }

    #[test]
    fn apply_a_plan_made_elsewhere_and_show_errors() {
        let mut k = FakeKernel::default();
        k.refuse.insert(dest(2, 1).key());
        let mut r = Reconciler::new([], Backoff::default());
        let want = table(&[desired(key(1), &[dest(1, 1), dest(2, 1)])]);
        let plan = diff(&want, r.known(), r.owned());
        let rep = r.apply(&mut k, plan, Instant::now()).unwrap();
        assert_eq!(rep.applied.total(), 2);
        assert!(r.owned().contains(&key(1)));
        let line = rep.errors[0].to_string();
        assert!(
            line.starts_with(
                "adding destination 10.0.0.2:80 to tcp 192.0.2.1:80: Invalid argument (EINVAL) \
                 (failure 1, retried after "
            ),
            "{line}"
        );
    }

    #[test]
    fn mark_stale_repairs_drift() {
        let want = table(&[desired(key(1), &[dest(1, 1), dest(2, 1)])]);
        let mut k = FakeKernel::default();
        let mut r = Reconciler::new([], Backoff::default());
        r.sync(&mut k, &want, Instant::now()).unwrap();
        // Someone deletes a destination by hand: we don't know until we look.
        k.table
            .get_mut(&key(1))
            .unwrap()
            .destinations
            .remove(&dest(2, 1).key());
        assert!(r.sync(&mut k, &want, Instant::now()).unwrap().is_noop());
        r.mark_stale();
        let rep = r.sync(&mut k, &want, Instant::now()).unwrap();
        assert!(rep.full_dump);
        assert_eq!(rep.applied.add_destination, 1);
    }

    #[test]
    fn targets_name_service_and_destination() {
        assert_eq!(
            target_of(&Request::AddDestination(key(1), dest(2, 1))),
            Some((key(1), Some(dest(2, 1).key())))
        );
        assert_eq!(
            target_of(&Request::DeleteService(key(1))),
            Some((key(1), None))
        );
        assert_eq!(target_of(&Request::Flush), None);
        let _ = sa("1.2.3.4:5");
    }
}
