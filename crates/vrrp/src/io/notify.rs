//! The notify hook: a program run on every state change of an instance, sandboxed and
//! one at a time (vigil-child's hook runner).

use std::time::Duration;

use crate::io::status::Transition;

/// How long one notify hook may run before its whole process tree is killed so the next
/// can start.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// How many transitions may wait behind a running hook. When an instance changes state
/// faster than its hook runs, the newest waiting one is replaced: hooks still run in
/// order and the latest state is always delivered, but a flapping instance cannot queue
/// hundreds of runs.
pub const NOTIFY_QUEUE: usize = 4;

/// Of a failing hook's stdout and stderr, this much is kept for the log.
const NOTIFY_OUTPUT: usize = 1024;

/// Runs the notify hook (as configured when the transition happened) for each
/// transition, one at a time and in order, so a hook never races its successor for the
/// same instance. Hooks run sandboxed (vigil-child): as the daemon's user but without
/// its capabilities, with a cleared environment plus the `VIGIL_*` variables below.
pub(crate) struct Notifier {
    instance: String,
    hooks: vigil_child::hook::HookRunner,
}

impl Notifier {
    /// Queues the hook for `t`; false when `argv` is empty.
    pub(crate) fn send(&self, (argv, t): (Vec<String>, Transition)) -> bool {
        let Some(command) = hook_command(&argv, &self.instance, &t) else {
            return false;
        };
        self.hooks.submit(command);
        true
    }
}

pub(crate) fn spawn_notifier(instance: String) -> Notifier {
    Notifier {
        hooks: vigil_child::hook::HookRunner::spawn(format!("notify {instance}"), NOTIFY_QUEUE),
        instance,
    }
}

/// The hook's argument list: the configured argv, then instance, state and priority.
pub fn hook_args(argv: &[String], instance: &str, transition: &Transition) -> Vec<String> {
    let mut args: Vec<String> = argv.iter().skip(1).cloned().collect();
    args.push(instance.to_string());
    args.push(transition.to.as_str().to_string());
    args.push(transition.priority.to_string());
    args
}

/// The sandboxed command for one transition; `None` for an empty argv.
pub fn hook_command(
    argv: &[String],
    instance: &str,
    t: &Transition,
) -> Option<vigil_child::Command> {
    let program = argv.first()?;
    let mut command = vigil_child::Command::new(program.clone());
    command.args = hook_args(argv, instance, t);
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
    Some(command)
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
        };
        let argv = vec!["/usr/bin/hook".to_string(), "--flag".to_string()];
        assert_eq!(
            hook_args(&argv, "web", &t),
            ["--flag", "web", "master", "150"]
        );
        let c = hook_command(&argv, "web", &t).expect("a command");
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
        assert!(hook_command(&[], "web", &t).is_none());
    }
}
