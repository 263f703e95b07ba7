//! exec: run a program directly (never through a shell) as an unprivileged user; exit 0
//! means up. With `dynamic_weight` (keepalived's `misc_dynamic`), exit 2–255 is up too
//! and sets the weight to the status minus 2. The program runs sandboxed by vigil-child (no capabilities, a clean
//! environment, its own session and cgroup); on timeout its whole tree is killed.

use std::time::Duration;

use super::Verdict;
use crate::failure::{Failure, FailureCause};
use crate::scheduler::WeightEffect;
use crate::target::Target;

/// Of a failing program's output, this much is kept (its first line goes in the reason).
const MAX_OUTPUT: usize = 1024;

#[derive(Debug)]
pub(crate) struct ExecProbe {
    command: vigil_child::Command,
    user: String,
    dynamic_weight: bool,
}

impl ExecProbe {
    pub(crate) fn new(
        target: &Target,
        command: &[String],
        user: &str,
        dynamic_weight: bool,
        timeout: Duration,
    ) -> Result<Self, String> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| "exec check has an empty command".to_string())?;
        let run_as = vigil_child::lookup_user(user).map_err(|e| e.to_string())?;
        let probe = target.probe_address();
        let env = [
            ("VIGIL_VIRTUAL_SERVER", target.virtual_server.clone()),
            ("VIGIL_REAL_ADDRESS", target.key.real.ip().to_string()),
            ("VIGIL_REAL_PORT", target.key.real.port().to_string()),
            ("VIGIL_CHECK_ADDRESS", probe.ip().to_string()),
            ("VIGIL_CHECK_PORT", probe.port().to_string()),
        ];
        let mut command = vigil_child::Command::new(program.clone());
        command.args = args.to_vec();
        command.env = env.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        command.run_as = run_as;
        // The probe's own timeout governs (dropping this future kills the tree); this
        // one is only a backstop.
        command.timeout = timeout + Duration::from_secs(1);
        command.output_limit = MAX_OUTPUT;
        Ok(ExecProbe {
            command,
            user: user.to_string(),
            dynamic_weight,
        })
    }

    pub(crate) fn program(&self) -> &str {
        &self.command.program
    }

    pub(crate) fn timeout_reason(&self, within: &str) -> String {
        format!(
            "{} did not exit within {within}: its process tree was killed",
            self.program()
        )
    }

    pub(crate) async fn run(&self) -> Verdict {
        self.run_weighed().await.0
    }

    /// The verdict, and with `dynamic_weight` the weight an exit status of 2–255 sets
    /// (keepalived.conf(5), MISC_CHECK `misc_dynamic`).
    pub(crate) async fn run_weighed(&self) -> (Verdict, Option<WeightEffect>) {
        let program = self.program();
        let out = match vigil_child::run(&self.command).await {
            Ok(out) => out,
            Err(e) => {
                let why = format!("cannot run {program} as user {}: {e}", self.user);
                return (Err(Failure::setup(why)), None);
            }
        };
        if let vigil_child::Status::Exited(code @ 2..=255) = out.status
            && self.dynamic_weight
        {
            let weight = u32::try_from(code - 2).unwrap_or(0);
            return (
                Ok(format!("{program} exited {code}: weight {weight}")),
                Some(WeightEffect::Set(weight)),
            );
        }
        (self.judge(&out), None)
    }

    fn judge(&self, out: &vigil_child::Output) -> Verdict {
        let program = self.program();
        if out.success() {
            return Ok(format!("{program} exited 0"));
        }
        let verdict = format!("{program} {}", out.describe(self.command.timeout));
        let cause = match out.status {
            vigil_child::Status::TimedOut { .. } => FailureCause::ExecTimeout,
            _ => FailureCause::ExecExit,
        };
        match out.first_line() {
            Some(line) => Err(Failure::new(cause, format!("{verdict}: {line}"))),
            None => Err(Failure::new(cause, verdict)),
        }
    }
}
