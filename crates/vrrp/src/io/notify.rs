//! The notify hooks: the programs run on a state change of an instance
//! ([`crate::notify`] says which, with which arguments), sandboxed and one change at a
//! time (vigil-child's hook runner).

use std::time::Duration;

use crate::io::status::Transition;
use crate::notify::{NotifyHooks, Subject};

/// How long one notify hook may run before its whole process tree is killed so the next
/// can start.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// How many transitions may wait behind a running hook. When an instance changes state
/// faster than its hook runs, the newest waiting one is replaced: hooks still run in
/// order and the latest state is always delivered, but a flapping instance cannot queue
/// hundreds of runs.
pub const NOTIFY_QUEUE: usize = 4;

/// Of a failing hook's stdout and stderr, this much is kept for the log.
pub const NOTIFY_OUTPUT: usize = 1024;

/// How long a stopping runner waits for its last hooks (`notify_stop`, `notify ...
/// STOP`) before it returns.
pub const NOTIFY_STOP_WAIT: Duration = Duration::from_secs(10);

/// Runs the notify programs (as configured when the transition happened) for each
/// transition, one batch at a time and in order, so a hook never races its successor
/// for the same instance. Hooks run sandboxed (vigil-child): as the daemon's user but
/// without its capabilities, with a cleared environment plus the `VIGIL_*` variables
/// below.
pub(crate) struct Notifier {
    instance: String,
    hooks: vigil_child::hook::HookRunner,
}

impl Notifier {
    /// Queues the programs `hooks` names for `t` ([`NotifyHooks::programs`]).
    pub(crate) fn send(&self, hooks: &NotifyHooks, t: &Transition) {
        let batch = hooks
            .programs(
                Subject::Instance(&self.instance),
                t.to,
                t.priority,
                t.stopping,
            )
            .into_iter()
            .map(|(program, args)| hook_command(program, args, &self.instance, t))
            .collect();
        self.hooks.submit_batch(batch);
    }

    /// Runs what is queued (a stop's hooks), for at most [`NOTIFY_STOP_WAIT`].
    pub(crate) async fn finish(self) {
        self.hooks.finish(NOTIFY_STOP_WAIT).await;
    }
}

pub(crate) fn spawn_notifier(instance: String) -> Notifier {
    Notifier {
        hooks: vigil_child::hook::HookRunner::spawn(format!("notify {instance}"), NOTIFY_QUEUE),
        instance,
    }
}

/// The sandboxed command of one hook program for one transition.
pub fn hook_command(
    program: String,
    args: Vec<String>,
    instance: &str,
    t: &Transition,
) -> vigil_child::Command {
    let mut command = vigil_child::Command::new(program);
    command.args = args;
    command.env = [
        ("VIGIL_INSTANCE", instance.to_string()),
        ("VIGIL_STATE", t.to.as_str().to_string()),
        ("VIGIL_PREVIOUS_STATE", t.from.as_str().to_string()),
        ("VIGIL_REASON", t.reason.as_str().to_string()),
        ("VIGIL_PRIORITY", t.priority.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    command.timeout = NOTIFY_TIMEOUT;
    command.output_limit = NOTIFY_OUTPUT;
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsm::{State, TransitionReason};

    #[test]
    fn hook_gets_instance_state_and_priority_after_its_own_args() {
        let t = Transition {
            from: State::Backup,
            to: State::Master,
            reason: TransitionReason::MasterDown,
            priority: 150,
            at_unix: 0.0,
            stopping: false,
        };
        let hooks = NotifyHooks {
            notify: Some(vec!["/usr/bin/hook".to_string(), "--flag".to_string()]),
            ..NotifyHooks::default()
        };
        let mut programs = hooks.programs(Subject::Instance("web"), t.to, t.priority, false);
        assert_eq!(programs.len(), 1);
        let (program, args) = programs.remove(0);
        let c = hook_command(program, args, "web", &t);
        assert_eq!(c.program, "/usr/bin/hook");
        assert_eq!(c.args, ["--flag", "web", "master", "150"]);
        assert_eq!(c.run_as, vigil_child::RunAs::Daemon);
        assert_eq!(c.timeout, NOTIFY_TIMEOUT);
        let env: Vec<String> = c.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            env,
            [
                "VIGIL_INSTANCE=web",
                "VIGIL_STATE=master",
                "VIGIL_PREVIOUS_STATE=backup",
                "VIGIL_REASON=master_down",
                "VIGIL_PRIORITY=150"
            ]
        );
    }
}
