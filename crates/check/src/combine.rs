//! Several checks of one real server into one verdict, sans-IO: the server is up only
//! when every one of its checks is up (keepalived counts every checker of a
//! real_server), down as soon as one is down, and undecided while none is down and one
//! has no verdict yet. Dynamic checks also move its weight:
//!
//! - exec with `dynamic_weight` (keepalived's `misc_dynamic`): a pass with exit status
//!   2–255 sets the weight to the status minus 2; exit 0 leaves it as it was.
//! - file with a `weight`: the value read times the weight is added to the configured
//!   weight.
//!
//! As in keepalived, each dynamic check contributes the difference it makes to the
//! configured weight (a set weight contributes `set - configured`) and the
//! contributions add up; the result is kept within 0–65535 (the weights a cluster file
//! may give).

use std::collections::HashMap;
use std::net::SocketAddr;

use vigil_config::ServiceKey;

use crate::scheduler::{Health, WeightEffect};
use crate::target::{CheckKey, Target};

/// The highest weight the combination gives (that of a cluster file's `weight`).
pub const MAX_WEIGHT: u32 = 65_535;

/// A real server's verdict over all of its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Combined {
    pub health: Health,
    /// The weight its dynamic checks give it; `None` when it has none (the configured
    /// weight applies).
    pub weight: Option<u32>,
}

/// The combined state of every real server of a set of checks.
#[derive(Debug, Default)]
pub struct Combiner {
    servers: HashMap<(ServiceKey, SocketAddr), Server>,
}

#[derive(Debug)]
struct Server {
    configured: u32,
    parts: Vec<Part>,
    /// What was last reported; `None` before the first verdict.
    reported: Option<Combined>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Part {
    /// The check's verdict, `None` until its first.
    health: Option<Health>,
    dynamic: bool,
    effect: Option<WeightEffect>,
}

impl Combiner {
    pub fn new() -> Self {
        Combiner::default()
    }

    /// Makes the set of real servers that of `targets` (a start or a reload): a known
    /// server keeps the verdicts of the checks it still has; a check added to it starts
    /// without one (so the server is not reported again until it has one).
    pub fn set_targets<'a>(&mut self, targets: impl IntoIterator<Item = &'a Target>) {
        let mut seen = std::collections::HashSet::new();
        for t in targets {
            let key = t.key.real_server();
            seen.insert(key);
            let server = self.servers.entry(key).or_insert_with(|| Server {
                configured: t.weight,
                parts: Vec::new(),
                reported: None,
            });
            server.configured = t.weight;
            server
                .parts
                .resize(usize::from(t.checks.max(1)), Part::default());
            if let Some(part) = server.parts.get_mut(usize::from(t.key.index)) {
                let dynamic = t.check.kind.moves_weight();
                if part.dynamic != dynamic {
                    part.effect = None;
                }
                part.dynamic = dynamic;
            }
        }
        self.servers.retain(|k, _| seen.contains(k));
    }

    /// One result of check `key`: `verdict` is the check's health when the scheduler
    /// reported one (a change or a first verdict), `effect` the weight a passing dynamic
    /// result gives. Returns the server's new verdict when it (or its weight) changed,
    /// or when it is the server's first.
    pub fn on_result(
        &mut self,
        key: &CheckKey,
        verdict: Option<Health>,
        passed: bool,
        effect: Option<WeightEffect>,
    ) -> Option<Combined> {
        let server = self.servers.get_mut(&key.real_server())?;
        let part = server.parts.get_mut(usize::from(key.index))?;
        if let Some(h) = verdict {
            part.health = Some(h);
        }
        if passed && part.dynamic && effect.is_some() {
            part.effect = effect;
        }
        let now = server.combined()?;
        if server.reported == Some(now) {
            return None;
        }
        server.reported = Some(now);
        Some(now)
    }

    /// A real server's last reported verdict.
    pub fn get(&self, service: ServiceKey, real: SocketAddr) -> Option<Combined> {
        self.servers.get(&(service, real))?.reported
    }
}

impl Server {
    fn combined(&self) -> Option<Combined> {
        let health = if self.parts.iter().any(|p| p.health == Some(Health::Down)) {
            Health::Down
        } else if self.parts.iter().all(|p| p.health == Some(Health::Up)) {
            Health::Up
        } else {
            return None;
        };
        let weight = self.parts.iter().any(|p| p.dynamic).then(|| {
            let configured = i64::from(self.configured);
            let sum: i64 = self
                .parts
                .iter()
                .filter(|p| p.dynamic)
                .map(|p| match p.effect {
                    Some(WeightEffect::Set(w)) => i64::from(w) - configured,
                    Some(WeightEffect::Add(d)) => d,
                    None => 0,
                })
                .fold(configured, i64::saturating_add);
            u32::try_from(sum.clamp(0, i64::from(MAX_WEIGHT))).unwrap_or(MAX_WEIGHT)
        });
        Some(Combined { health, weight })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_config::{Check, CheckKind, FileCheck, InitialState, Protocol};

    fn check(kind: CheckKind) -> Check {
        Check {
            kind,
            interval: std::time::Duration::from_secs(1),
            timeout: std::time::Duration::from_millis(500),
            rise: 1,
            fall: 1,
            initial_state: InitialState::Down,
            retry_delay: None,
            start_spread: std::time::Duration::ZERO,
            address: None,
            port: None,
            bind: None,
            bind_port: None,
            bind_interface: None,
            fwmark: None,
        }
    }

    fn targets(weight: u32, kinds: Vec<CheckKind>) -> Vec<Target> {
        let n = kinds.len() as u16;
        kinds
            .into_iter()
            .enumerate()
            .map(|(i, k)| Target {
                key: key(i as u16),
                virtual_server: "web".into(),
                check: check(k),
                weight,
                checks: n,
            })
            .collect()
    }

    fn key(index: u16) -> CheckKey {
        CheckKey {
            service: ServiceKey::Address {
                protocol: Protocol::Tcp,
                address: "192.0.2.1:80".parse().unwrap(),
            },
            real: "10.0.0.1:80".parse().unwrap(),
            index,
        }
    }

    fn tcp() -> CheckKind {
        CheckKind::Tcp {
            send: None,
            expect: None,
        }
    }

    fn exec(dynamic_weight: bool) -> CheckKind {
        CheckKind::Exec {
            command: vec!["/bin/true".into()],
            user: "nobody".into(),
            dynamic_weight,
        }
    }

    fn file(weight: i32) -> CheckKind {
        CheckKind::File(FileCheck {
            path: "/run/x".into(),
            weight,
            reverse: false,
        })
    }

    const UP: Option<Health> = Some(Health::Up);
    const DOWN: Option<Health> = Some(Health::Down);

    fn combined(health: Health, weight: Option<u32>) -> Option<Combined> {
        Some(Combined { health, weight })
    }

    #[test]
    fn up_only_when_every_check_is_up_and_down_when_one_is_down() {
        let mut c = Combiner::new();
        c.set_targets(&targets(5, vec![tcp(), tcp()]));
        // One verdict of two: undecided.
        assert_eq!(c.on_result(&key(0), UP, true, None), None);
        assert_eq!(
            c.on_result(&key(1), UP, true, None),
            combined(Health::Up, None)
        );
        // A pass that changes nothing reports nothing.
        assert_eq!(c.on_result(&key(1), None, true, None), None);
        assert_eq!(
            c.on_result(&key(1), DOWN, false, None),
            combined(Health::Down, None)
        );
        // The other one going down too changes nothing visible.
        assert_eq!(c.on_result(&key(0), DOWN, false, None), None);
        assert_eq!(c.on_result(&key(0), UP, true, None), None);
        assert_eq!(
            c.on_result(&key(1), UP, true, None),
            combined(Health::Up, None)
        );
    }

    #[test]
    fn a_down_check_decides_before_the_others_have_a_verdict() {
        let mut c = Combiner::new();
        c.set_targets(&targets(1, vec![tcp(), tcp(), tcp()]));
        assert_eq!(
            c.on_result(&key(2), DOWN, false, None),
            combined(Health::Down, None)
        );
    }

    /// keepalived.conf(5), MISC_CHECK misc_dynamic: exit 0 keeps the weight, 2–255 set
    /// it to the status minus 2 (an exit status of 10 sets weight 8).
    #[test]
    fn exec_dynamic_weight_sets_and_keeps() {
        let mut c = Combiner::new();
        c.set_targets(&targets(5, vec![exec(true)]));
        // Exit 0 first: the configured weight.
        assert_eq!(
            c.on_result(&key(0), UP, true, None),
            combined(Health::Up, Some(5))
        );
        assert_eq!(
            c.on_result(&key(0), None, true, Some(WeightEffect::Set(8))),
            combined(Health::Up, Some(8))
        );
        // Exit 0 again: unchanged.
        assert_eq!(c.on_result(&key(0), None, true, None), None);
        assert_eq!(
            c.on_result(&key(0), None, true, Some(WeightEffect::Set(253))),
            combined(Health::Up, Some(253))
        );
        // Down (exit 1) keeps the last weight for when it comes back.
        assert_eq!(
            c.on_result(&key(0), DOWN, false, None),
            combined(Health::Down, Some(253))
        );
    }

    /// keepalived adds each dynamic checker's difference to the configured weight.
    #[test]
    fn contributions_add_up_and_stay_in_range() {
        let mut c = Combiner::new();
        c.set_targets(&targets(10, vec![exec(true), file(3), tcp()]));
        c.on_result(&key(2), UP, true, None);
        c.on_result(&key(0), UP, true, Some(WeightEffect::Set(20)));
        assert_eq!(
            c.on_result(&key(1), UP, true, Some(WeightEffect::Add(6))),
            combined(Health::Up, Some(26))
        );
        assert_eq!(
            c.on_result(&key(1), None, true, Some(WeightEffect::Add(-100))),
            combined(Health::Up, Some(0))
        );
        assert_eq!(
            c.on_result(&key(1), None, true, Some(WeightEffect::Add(i64::MAX))),
            combined(Health::Up, Some(MAX_WEIGHT))
        );
    }

    #[test]
    fn a_reload_keeps_verdicts_and_forgets_removed_servers() {
        let mut c = Combiner::new();
        c.set_targets(&targets(1, vec![tcp()]));
        c.on_result(&key(0), UP, true, None);
        // A second check: undecided until it has a verdict, then reported again.
        c.set_targets(&targets(1, vec![tcp(), tcp()]));
        assert_eq!(
            c.get(key(0).service, key(0).real),
            combined(Health::Up, None)
        );
        assert_eq!(c.on_result(&key(1), UP, true, None), None);
        c.set_targets(&[]);
        assert_eq!(c.get(key(0).service, key(0).real), None);
        assert_eq!(c.on_result(&key(0), UP, true, None), None);
    }
}
