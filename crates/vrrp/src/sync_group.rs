//! Sync groups: instances that must change state together (keepalived `vrrp_sync_group`),
//! e.g. the outside and inside VIPs of one director, so traffic never enters through one
//! node and leaves through the other.
//!
//! Pure helper: whenever one member reports `StateChanged`, call
//! [`sync_group_directives`] with every member's current state and feed each returned
//! directive to that member as `Event::Sync`. The rules, keyed on the member that just
//! changed (the leader):
//! - leader entered Fault → every other member not in Fault or Initialize enters Fault;
//! - leader left Fault → every other member in Fault leaves it (members with faults of
//!   their own stay, since a member's own faults and the group's are tracked apart);
//! - leader went Master → Backup → every other Master steps down (make-before-break);
//! - leader became Master → every other Backup takes over at once.
//!
//! Directives to members already in the target state are not produced, so feeding the
//! followers' own `StateChanged` back in converges instead of echoing.

use crate::fsm::{State, SyncDirective};

/// Directives for the other members after member `leader` went from `previous` to
/// `states[leader]`. Returns `(member index, directive)` pairs; empty if `leader` is out
/// of range.
pub fn sync_group_directives(
    states: &[State],
    leader: usize,
    previous: State,
) -> Vec<(usize, SyncDirective)> {
    let Some(&current) = states.get(leader) else {
        return Vec::new();
    };
    let others = states
        .iter()
        .enumerate()
        .filter(|&(index, _)| index != leader);
    match (previous, current) {
        (_, State::Fault) => others
            .filter(|(_, state)| matches!(state, State::Backup | State::Master))
            .map(|(index, _)| (index, SyncDirective::EnterFault))
            .collect(),
        (State::Fault, _) => others
            .filter(|(_, state)| **state == State::Fault)
            .map(|(index, _)| (index, SyncDirective::LeaveFault))
            .collect(),
        (State::Master, State::Backup) => others
            .filter(|(_, state)| **state == State::Master)
            .map(|(index, _)| (index, SyncDirective::StepDown))
            .collect(),
        (_, State::Master) => others
            .filter(|(_, state)| **state == State::Backup)
            .map(|(index, _)| (index, SyncDirective::TakeOver))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;

    #[test]
    fn a_fault_pulls_the_others_into_fault() {
        let directives = sync_group_directives(&[Fault, Master, Backup, Initialize], 0, Master);
        assert_eq!(
            directives,
            vec![
                (1, SyncDirective::EnterFault),
                (2, SyncDirective::EnterFault)
            ]
        );
    }

    #[test]
    fn leaving_fault_releases_the_others() {
        let directives = sync_group_directives(&[Backup, Fault, Fault], 0, Fault);
        assert_eq!(
            directives,
            vec![
                (1, SyncDirective::LeaveFault),
                (2, SyncDirective::LeaveFault)
            ]
        );
    }

    #[test]
    fn a_master_going_backup_makes_the_other_masters_step_down() {
        let directives = sync_group_directives(&[Backup, Master, Backup], 0, Master);
        assert_eq!(directives, vec![(1, SyncDirective::StepDown)]);
    }

    #[test]
    fn a_new_master_makes_the_other_backups_take_over() {
        let directives = sync_group_directives(&[Master, Backup, Master], 0, Backup);
        assert_eq!(directives, vec![(1, SyncDirective::TakeOver)]);
    }

    #[test]
    fn startup_into_backup_and_converged_groups_need_nothing() {
        assert!(sync_group_directives(&[Backup, Backup], 0, Initialize).is_empty());
        assert!(sync_group_directives(&[Master, Master], 1, Backup).is_empty());
        assert!(sync_group_directives(&[Master], 5, Backup).is_empty());
    }
}
