//! What a state change tells the outside world: the notify programs' argument lists and
//! the notify FIFO lines, in vigil's convention and in keepalived's (so that scripts and
//! FIFO readers written for keepalived work unchanged). Pure: the runner and the daemon
//! run the programs and write the lines.
//!
//! keepalived's conventions, as keepalived 2.2.7 behaves (checked side by side in
//! tests/vrrp_notify.rs): on each change the state's own program (`notify_master` ...)
//! runs first with only its configured arguments, then `notify` with
//! `INSTANCE|GROUP NAME STATE PRIORITY` appended, the state in upper case; a group's
//! priority is always 0. A FIFO line is `INSTANCE "NAME" STATE PRIORITY`.

use crate::fsm::State;

/// Whose state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    Instance(&'a str),
    Group(&'a str),
}

impl Subject<'_> {
    fn keyword(self) -> &'static str {
        match self {
            Subject::Instance(_) => "INSTANCE",
            Subject::Group(_) => "GROUP",
        }
    }
}

/// What `notify` gets after its configured arguments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NotifyArgs {
    /// `NAME STATE PRIORITY`, state in lower case (and `VIGIL_*` variables).
    #[default]
    Vigil,
    /// `INSTANCE|GROUP NAME STATE PRIORITY`, state in upper case.
    Keepalived,
}

/// The programs run on state changes of one instance or group (argv: program first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyHooks {
    pub notify: Option<Vec<String>>,
    pub args: NotifyArgs,
    pub master: Option<Vec<String>>,
    pub backup: Option<Vec<String>>,
    pub fault: Option<Vec<String>>,
    pub stop: Option<Vec<String>>,
}

impl NotifyHooks {
    pub fn is_empty(&self) -> bool {
        self.notify.is_none()
            && self.master.is_none()
            && self.backup.is_none()
            && self.fault.is_none()
            && self.stop.is_none()
    }

    /// The programs to run, in order, for a change to `to`: the state's own program,
    /// then `notify`. Each is (program, arguments). A change made `stopping` (a master
    /// resigning before it stops) runs only vigil's own `notify`: keepalived reports
    /// only the STOP that follows.
    pub fn programs(
        &self,
        subject: Subject<'_>,
        to: State,
        priority: u8,
        stopping: bool,
    ) -> Vec<(String, Vec<String>)> {
        let resigning = stopping && to != State::Initialize;
        if resigning && self.args == NotifyArgs::Keepalived {
            return Vec::new();
        }
        let own = match to {
            _ if resigning => &None,
            State::Master => &self.master,
            State::Backup => &self.backup,
            State::Fault => &self.fault,
            State::Initialize => &self.stop,
        };
        let mut out = Vec::new();
        if let Some((program, args)) = own.as_deref().and_then(<[String]>::split_first) {
            out.push((program.clone(), args.to_vec()));
        }
        if let Some((program, args)) = self.notify.as_deref().and_then(<[String]>::split_first) {
            let mut args = args.to_vec();
            args.extend(notify_args(self.args, subject, to, priority));
            out.push((program.clone(), args));
        }
        out
    }
}

/// The arguments `notify` gets appended for a change of `subject` to `to`.
pub fn notify_args(
    style: NotifyArgs,
    subject: Subject<'_>,
    to: State,
    priority: u8,
) -> Vec<String> {
    let (Subject::Instance(name) | Subject::Group(name)) = subject;
    match style {
        NotifyArgs::Vigil => vec![
            name.to_string(),
            to.as_str().to_string(),
            priority.to_string(),
        ],
        NotifyArgs::Keepalived => vec![
            subject.keyword().to_string(),
            name.to_string(),
            keepalived_state(to).to_string(),
            keepalived_priority(subject, priority).to_string(),
        ],
    }
}

/// keepalived's word for a state; Initialize is where a runner ends when it stops.
pub fn keepalived_state(state: State) -> &'static str {
    match state {
        State::Master => "MASTER",
        State::Backup => "BACKUP",
        State::Fault => "FAULT",
        State::Initialize => "STOP",
    }
}

fn keepalived_priority(subject: Subject<'_>, priority: u8) -> u8 {
    match subject {
        Subject::Instance(_) => priority,
        // keepalived reports a group's priority as 0.
        Subject::Group(_) => 0,
    }
}

/// One notify FIFO line, newline included: `INSTANCE "VI_1" MASTER 150`.
pub fn fifo_line(subject: Subject<'_>, to: State, priority: u8) -> String {
    let (Subject::Instance(name) | Subject::Group(name)) = subject;
    format!(
        "{} \"{name}\" {} {}\n",
        subject.keyword(),
        keepalived_state(to),
        keepalived_priority(subject, priority)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    fn all_hooks(args: NotifyArgs) -> NotifyHooks {
        NotifyHooks {
            notify: argv(&["/n", "x"]),
            args,
            master: argv(&["/m", "VI_1"]),
            backup: argv(&["/b"]),
            fault: argv(&["/f"]),
            stop: argv(&["/s"]),
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keepalived_runs_the_state_program_then_notify_with_upper_case_state() {
        let hooks = all_hooks(NotifyArgs::Keepalived);
        assert_eq!(
            hooks.programs(Subject::Instance("VI_1"), State::Master, 150, false),
            vec![
                ("/m".to_string(), strings(&["VI_1"])),
                (
                    "/n".to_string(),
                    strings(&["x", "INSTANCE", "VI_1", "MASTER", "150"])
                ),
            ]
        );
        assert_eq!(
            hooks.programs(Subject::Group("G1"), State::Fault, 150, false),
            vec![
                ("/f".to_string(), vec![]),
                (
                    "/n".to_string(),
                    strings(&["x", "GROUP", "G1", "FAULT", "0"])
                ),
            ]
        );
        assert_eq!(
            hooks.programs(Subject::Instance("VI_1"), State::Initialize, 100, false)[1].1,
            strings(&["x", "INSTANCE", "VI_1", "STOP", "100"])
        );
    }

    #[test]
    fn vigil_convention_is_unchanged() {
        let hooks = NotifyHooks {
            notify: argv(&["/n", "x"]),
            ..NotifyHooks::default()
        };
        assert_eq!(
            hooks.programs(Subject::Instance("web"), State::Backup, 100, false),
            vec![("/n".to_string(), strings(&["x", "web", "backup", "100"]))]
        );
        assert_eq!(
            hooks.programs(Subject::Instance("web"), State::Initialize, 100, false)[0].1,
            strings(&["x", "web", "initialize", "100"])
        );
    }

    #[test]
    fn a_master_resigning_to_stop_reports_only_the_stop_like_keepalived() {
        let hooks = all_hooks(NotifyArgs::Keepalived);
        assert!(
            hooks
                .programs(Subject::Instance("a"), State::Backup, 1, true)
                .is_empty()
        );
        assert_eq!(
            hooks
                .programs(Subject::Instance("a"), State::Initialize, 1, true)
                .len(),
            2
        );
        // vigil's own notify still hears every change.
        let vigil = all_hooks(NotifyArgs::Vigil);
        assert_eq!(
            vigil.programs(Subject::Instance("a"), State::Backup, 1, true),
            vec![("/n".to_string(), strings(&["x", "a", "backup", "1"]))]
        );
    }

    #[test]
    fn only_the_configured_programs_run() {
        let hooks = NotifyHooks {
            backup: argv(&["/b"]),
            ..NotifyHooks::default()
        };
        assert!(
            hooks
                .programs(Subject::Instance("a"), State::Master, 1, false)
                .is_empty()
        );
        assert_eq!(
            hooks
                .programs(Subject::Instance("a"), State::Backup, 1, false)
                .len(),
            1
        );
    }

    #[test]
    fn fifo_lines_match_keepalived() {
        assert_eq!(
            fifo_line(Subject::Instance("VI_1"), State::Backup, 150),
            "INSTANCE \"VI_1\" BACKUP 150\n"
        );
        assert_eq!(
            fifo_line(Subject::Group("G1"), State::Master, 150),
            "GROUP \"G1\" MASTER 0\n"
        );
        assert_eq!(
            fifo_line(Subject::Instance("VI_1"), State::Initialize, 100),
            "INSTANCE \"VI_1\" STOP 100\n"
        );
    }
}
