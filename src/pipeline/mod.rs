//! One run, end to end:
//!
//! 1. **pre**: pre-hooks in order, each blocking until it ends, attached
//!    ones left running alongside;
//! 2. the **sandbox**: started, then supervised until the program ends —
//!    signals to antimony go to the program (after the **stopping** hooks,
//!    for the first stop signal or an `antimony stop`), **started** hooks
//!    run one after another once the program runs, `antimony enter`
//!    requests come in on the instance's control socket;
//! 3. attached and still-running started hooks get SIGTERM, then SIGKILL
//!    after the grace period;
//! 4. **post**: post-hooks in order (those whose `on` matches the outcome),
//!    even after a failed launch, so that clean-up happens;
//! 5. the run record, and antimony's exit status.
//!
//! Everything runs in one thread around one `poll(2)`: hooks (`Task`s),
//! the sandbox's channel and pidfd, signals, the control socket. Nothing
//! blocks on a hook's output or input, and the sandbox is forked from a
//! single-threaded process.

mod dbus;
mod network;
mod scheduler;
mod stage;
mod verdict;

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use crate::error::{EXIT_LAUNCHER_FAILURE, Error};
use crate::hooks::groups::Groups;
use crate::hooks::input::{self, RunState};
use crate::hooks::output::{Captured, Pipe};
use crate::hooks::records::{self, HookRecord, RunRecord};
use crate::hooks::state::{Lock, Locked, StateStore, Writer};
use crate::hooks::task::{Place, Task, Watch};
use crate::hooks::{Context, HookError};
use crate::host::Host;
use crate::instance::Registration;
use crate::instance::StatusFd;
use crate::instance::server::{Request, Server};
use crate::plan::Plan;
use crate::profile::{HookEvent, Outcome as ProgramOutcome};
use crate::sandbox::protocol::Message;
use crate::sandbox::{self, Sandbox, SandboxError};
use crate::signals::{self, Signals};
use scheduler::{Next, Queue, Slots};
use stage::Stage;

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// antimony's exit status.
    pub code: u8,
    /// A launcher failure, printed once by `main`.
    pub error: Option<Error>,
    /// Printed as warnings (hooks that may fail, failed).
    pub warnings: Vec<String>,
    /// A recording run's record (`plan.record`).
    pub recording: Option<crate::learn::Recording>,
}

pub use verdict::exit_code;

/// Runs the plan. `say` gets the warnings of the pre-hooks before the
/// sandbox starts (said then, not after the program's end); the others are
/// the outcome's.
/// `start_lock` (a `single_instance` profile's) is released once the
/// instance is registered.
pub fn run(
    plan: &Plan,
    host: &Host,
    status_fd: Option<RawFd>,
    start_lock: Option<std::os::fd::OwnedFd>,
    say: &mut dyn FnMut(Vec<String>),
) -> Outcome {
    // The plan's own warnings were said before the run (`commands::run`).
    let warnings = Vec::new();
    let fail = |error: Error, warnings: Vec<String>| Outcome {
        code: EXIT_LAUNCHER_FAILURE,
        error: Some(error),
        warnings,
        recording: None,
    };
    let status = match status_fd.map(StatusFd::open).transpose() {
        Ok(s) => s,
        Err(e) => return fail(e.into(), warnings),
    };
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => return fail(Error::io("install signal handlers", e), warnings),
    };
    let cx = match Context::new(plan, host) {
        Ok(cx) => cx,
        Err(e) => return fail(e, warnings),
    };
    // The instance registry's folder, made and checked before anything
    // runs: one that is not the user's own (another user made
    // /tmp/antimony-UID first) stops the run; any other problem only keeps
    // the instance out of `ps` (said when it registers).
    if let Err(e) = host.runtime_folder("instances") {
        if crate::host::NotPrivate::of(&e).is_some() {
            return fail(Error::io("antimony's runtime folder", e), warnings);
        }
    }
    // The profile's home folder exists before the first hook runs: a
    // pre-hook may prepare what the program finds there ($ANTIMONY_HOME).
    for dir in plan.host_dirs_to_create() {
        if let Err(e) = create_private_dir(dir) {
            return fail(e, warnings);
        }
    }
    let mut r = Run {
        plan,
        host,
        cx,
        signals,
        state: Writer::new(StateStore::new(&host.state_home, &plan.name)),
        phase: Phase::Pre,
        slots: Slots::default(),
        fg: None,
        started: Queue::default(),
        stopping: Queue::default(),
        leftovers: Vec::new(),
        groups: Groups::default(),
        sandbox: None,
        start_lock,
        proxy: None,
        pasta: None,
        recorder: None,
        stop_at: None,
        stage: Stage::Absent,
        setup_failure: None,
        channel_open: false,
        next_id: 1,
        server: None,
        status,
        stop: Stop::default(),
        interrupted: None,
        launch_error: None,
        late_error: None,
        outcome: None,
        records: Vec::new(),
        warnings,
        say,
        began: Instant::now(),
        began_at: records::now(),
    };
    r.pre_phase();
    if r.launch_error.is_none() && r.interrupted.is_none() {
        r.sandbox_phase();
    }
    r.end_background();
    r.post_phase();
    r.finish()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pre,
    Running,
    Ending,
    Post,
}

/// Stopping the sandbox: after a stop signal or `antimony stop`.
#[derive(Debug, Default)]
struct Stop {
    begun: bool,
    /// The signal the program gets once the stopping hooks have run.
    signal: i32,
    /// `antimony stop` (or a failed started hook): SIGKILL after the grace.
    escalate: bool,
    delivered: bool,
    kill_at: Option<Instant>,
}

/// What a polled descriptor is.
#[derive(Debug, Clone, Copy)]
enum Source {
    Signals,
    Channel,
    Init,
    Listener,
    Client(usize),
    Task(usize, Watch),
    Leftover(usize),
}

struct Run<'a> {
    plan: &'a Plan,
    host: &'a Host,
    /// A `single_instance` run's lock, until its instance is registered.
    start_lock: Option<std::os::fd::OwnedFd>,
    cx: Context,
    signals: Signals,
    /// Hooks' state, and the updates waiting for a lock.
    state: Writer,
    phase: Phase,
    /// Running hooks (`scheduler.rs`).
    slots: Slots,
    /// The slot of the hook the pipeline waits for (pre, post).
    fg: Option<usize>,
    /// Started hooks, one after another once the program runs.
    started: Queue,
    /// Stopping hooks, one after another when the program is to stop.
    stopping: Queue,
    /// Output pipes hooks left open; drained while antimony runs.
    leftovers: Vec<(Pipe, Captured)>,
    /// Host hooks' process groups, and the guardian.
    groups: Groups,
    sandbox: Option<Sandbox>,
    /// The session bus proxy, while the sandbox runs.
    proxy: Option<dbus::Proxy>,
    /// pasta, for an isolated network, while the sandbox runs.
    pasta: Option<network::Pasta>,
    /// A recording run's recorder, once the program's listener came.
    recorder: Option<crate::learn::Recorder>,
    /// A recording run with a time limit: when the program is stopped.
    stop_at: Option<Instant>,
    /// Where the sandbox is in its life (`stage.rs`).
    stage: Stage,
    /// What init said went wrong during the set-up.
    setup_failure: Option<SandboxError>,
    /// Init's channel, until everything it said has been read (it may
    /// outlive init).
    channel_open: bool,
    next_id: u32,
    server: Option<Server>,
    status: Option<StatusFd>,
    stop: Stop,
    /// A stop signal that cancelled the launch before the program ran.
    interrupted: Option<i32>,
    /// The run failed: the program did not start, or a started hook failed.
    launch_error: Option<Error>,
    /// A stopping or post-hook failed.
    late_error: Option<HookError>,
    outcome: Option<ProgramOutcome>,
    records: Vec<HookRecord>,
    warnings: Vec<String>,
    say: &'a mut dyn FnMut(Vec<String>),
    began: Instant,
    began_at: f64,
}

impl Run<'_> {
    // ---- phases ------------------------------------------------------

    fn pre_phase(&mut self) {
        let pre = self.indices(HookEvent::Pre);
        let (now, _) = pre.split_at(self.trailing_attached(&pre));
        for &idx in now {
            if self.interrupted.is_some() {
                break;
            }
            let result = if self.plan.hooks[idx].hook.attach {
                self.start_attached(idx)
            } else {
                self.run_foreground(idx)
            };
            if !self.accept(idx, result) {
                break;
            }
            // A stop signal between two hooks cancels the launch too.
            self.take_signals();
        }
    }

    /// Where the attached pre-hooks after the last blocking one begin.
    /// Nothing waits between them and the program: they are started
    /// while the sandbox sets itself up (its init waits for them before
    /// executing the program), not before the clone.
    fn trailing_attached(&self, pre: &[usize]) -> usize {
        pre.iter()
            .rposition(|&i| !self.plan.hooks[i].hook.attach)
            .map_or(0, |p| p + 1)
    }

    fn start_attached(&mut self, idx: usize) -> Result<(), HookError> {
        let slot = self.spawn_task(idx, false, None);
        if self.slots.is_done(slot) {
            self.finish_task(slot)
        } else {
            Ok(())
        }
    }

    /// A pre-hook's result: a warning if it may fail, else the launch's
    /// error. False when the launch is over.
    fn accept(&mut self, idx: usize, result: Result<(), HookError>) -> bool {
        match result {
            Ok(()) => true,
            Err(e) if self.plan.hooks[idx].hook.can_fail => {
                self.warnings.push(e.to_string());
                true
            }
            Err(e) => {
                self.launch_error = Some(Error::Hook(e));
                false
            }
        }
    }

    /// The warnings so far, said now (before the program starts).
    fn say_warnings(&mut self) {
        if !self.warnings.is_empty() {
            (self.say)(std::mem::take(&mut self.warnings));
        }
    }

    fn sandbox_phase(&mut self) {
        self.phase = Phase::Running;
        self.say_warnings();
        // An isolated network needs pasta and the TUN device: checked
        // before anything starts.
        let isolated = self.plan.network.isolated.as_ref();
        let pasta = match isolated.map(network::check).transpose() {
            Ok(p) => p,
            Err(e) => {
                self.launch_error = Some(e);
                return;
            }
        };
        if let Some(d) = &self.plan.dbus {
            match dbus::start(d, self.host) {
                Ok(p) => self.proxy = Some(p),
                Err(e) => {
                    self.launch_error = Some(e);
                    return;
                }
            }
        }
        let pre = self.indices(HookEvent::Pre);
        let deferred = pre[self.trailing_attached(&pre)..].to_vec();
        // The program waits for the network too.
        let waiting = !deferred.is_empty() || pasta.is_some();
        let spawned = sandbox::prepare(self.plan).and_then(|mut p| {
            p.wait_for_go = waiting;
            sandbox::spawn(&mut p)
        });
        match spawned {
            Ok(sb) => {
                self.sandbox = Some(sb);
                self.stage.spawned();
                self.channel_open = true;
            }
            Err(e) => {
                self.launch_error = Some(e.into());
                return;
            }
        }
        if let (Some(path), Some(iso), Some(sb)) = (&pasta, isolated, &self.sandbox) {
            match network::start(path, iso, sb, self.plan, self.host) {
                Ok(p) => {
                    self.groups.watch_helper(p.pid, &mut self.warnings);
                    self.pasta = Some(p);
                }
                Err(e) => self.launch_error = Some(e),
            }
        }
        // The trailing attached pre-hooks, while init sets up the sandbox.
        for idx in deferred {
            if self.launch_error.is_some() {
                break;
            }
            let result = self.start_attached(idx);
            if !self.accept(idx, result) {
                break;
            }
        }
        self.say_warnings();
        if waiting {
            if let Some(sb) = &self.sandbox {
                if self.launch_error.is_some() {
                    sb.kill();
                } else {
                    sb.go();
                }
            }
        }
        self.started.load(self.indices(HookEvent::Started));
        // Until init is gone and everything it said has been read.
        while !self.stage.init_gone() || self.channel_open {
            self.turn(None);
        }
        if let Some(f) = self.setup_failure.take() {
            self.launch_error.get_or_insert(f.into());
        }
        // Commands that were running inside died with the sandbox.
        for t in self.slots.tasks_mut() {
            if matches!(t.place, Place::Inside { .. }) && !t.is_done() {
                t.exited(libc::SIGKILL);
            }
        }
        if let Some(s) = &self.status {
            // The program's end, or its init's when it died with it (killed
            // after the grace): but only for a program that started.
            if let Some(status) = self.program_status() {
                s.exited(&self.plan.instance, status);
            }
        }
    }

    /// Attached hooks, and started hooks still running, end with the
    /// sandbox: SIGTERM, then SIGKILL after the grace period.
    fn end_background(&mut self) {
        self.phase = Phase::Ending;
        self.proxy = None;
        if let Some(p) = self.pasta.take() {
            let pid = p.pid;
            drop(p);
            self.groups.forget_helper(pid);
        }
        self.started.clear();
        let grace = self.plan.grace;
        for t in self.slots.tasks_mut() {
            if !t.is_done() {
                t.terminate(None, grace);
            } else if t.group_alive() {
                t.signal(None, libc::SIGTERM);
            }
        }
        self.groups.terminate_background();
        let deadline = Instant::now() + grace;
        loop {
            self.groups.prune();
            if self.slots.is_empty() && self.groups.background_ended() {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                self.groups.kill_background();
                // Tasks past their grace get SIGKILL from their own timers.
            }
            self.turn(Some(now + Duration::from_millis(20)));
        }
    }

    fn post_phase(&mut self) {
        self.phase = Phase::Post;
        let outcome = verdict::program_outcome(
            self.launch_error.as_ref(),
            self.program_status(),
            self.interrupted,
        );
        self.outcome = Some(outcome.clone());
        for idx in self.indices(HookEvent::Post) {
            let h = &self.plan.hooks[idx];
            if !h.hook.runs_on(&outcome) {
                self.records.push(HookRecord {
                    event: "post".into(),
                    name: h.hook.label(),
                    started_at: records::now(),
                    duration_ms: 0,
                    status: "skipped".into(),
                    exit_code: None,
                    signal: None,
                    error: None,
                    output: String::new(),
                    output_truncated: false,
                });
                continue;
            }
            if let Err(e) = self.run_foreground(idx) {
                if h.hook.can_fail {
                    self.warnings.push(e.to_string());
                } else {
                    self.late_error.get_or_insert(e);
                    break;
                }
            }
        }
    }

    fn finish(mut self) -> Outcome {
        self.state.apply_pending(true, &mut self.warnings);
        // A normal end, and no hook runs any more: the guardian leaves
        // what foreground hooks left running alone, and exits while the
        // record is written (it is reaped at the end).
        self.groups.retire();
        let fields = verdict::record_fields(self.outcome.as_ref(), self.interrupted.is_some());
        let verdict::Verdict {
            code,
            error,
            warning,
        } = self.facts().verdict();
        self.warnings.extend(warning);
        let record = RunRecord {
            profile: self.plan.name.clone(),
            instance: self.plan.instance.clone(),
            started_at: self.began_at,
            duration_ms: self.began.elapsed().as_millis() as u64,
            program: self.plan.program.to_string_lossy().into_owned(),
            arguments: self
                .plan
                .argv
                .iter()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            outcome: fields.outcome.into(),
            exit_code: fields.exit_code,
            signal: fields.signal,
            error: fields.error,
            status: code,
            hooks: std::mem::take(&mut self.records),
        };
        if let Err(e) = records::write(&records::runs_dir(&self.host.state_home), &record) {
            let w = format!(
                "the run record was not written: {}",
                crate::error::io_text(&e)
            );
            self.state.storage_warning(w, &mut self.warnings);
        }
        // Unregister before saying goodbye: `antimony stop` waits for this.
        self.server = None;
        let recording = self.recorder.take().map(crate::learn::Recorder::finish);
        // The guardian, reaped: it was told to go before the record was
        // written.
        drop(std::mem::take(&mut self.groups));
        Outcome {
            code,
            error,
            warnings: self.warnings,
            recording,
        }
    }

    /// What the verdict is drawn from, at the end (the errors are taken).
    fn facts(&mut self) -> verdict::Facts {
        verdict::Facts {
            launch_error: self.launch_error.take(),
            late_error: self.late_error.take(),
            program_status: self.program_status(),
            interrupted: self.interrupted,
            init_status: self.stage.init_status(),
        }
    }

    fn program_status(&self) -> Option<i32> {
        self.stage.program_status()
    }

    // ---- hooks -------------------------------------------------------

    fn indices(&self, event: HookEvent) -> Vec<usize> {
        (0..self.plan.hooks.len())
            .filter(|&i| self.plan.hooks[i].hook.event == event)
            .collect()
    }

    /// The state lock a foreground hook that reads its state
    /// (`stdin = true`) holds while it runs: runs of one such hook are
    /// serialized across instances, from reading the state until its update
    /// is written, so no update is lost. `None` for other hooks (they take
    /// the lock only to apply an update: `finish_task`) or when the state
    /// cannot be kept (said once). While another instance holds it,
    /// antimony waits; during the pre-hooks a stop signal ends the wait
    /// (`Err`: the hook is not started, the launch is cancelled).
    fn state_lock(&mut self, idx: usize) -> Result<Option<Lock>, ()> {
        let ph = &self.plan.hooks[idx];
        if !ph.hook.stdin {
            return Ok(None);
        }
        let key = ph.state_key.clone();
        loop {
            match self.state.try_lock(&key, &mut self.warnings) {
                Locked::Held(lock) => return Ok(Some(lock)),
                Locked::Busy => {}
                Locked::Unkept => return Ok(None),
            }
            if self.phase == Phase::Pre {
                let mut fd = libc::pollfd {
                    fd: self.signals.fd().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: poll on one pollfd we own, for 20 ms.
                unsafe { libc::poll(&mut fd, 1, 20) };
                self.take_signals();
                if self.interrupted.is_some() {
                    return Err(());
                }
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts hook `idx`; returns its slot. A hook that cannot start is a
    /// task that has already ended (with that failure).
    fn spawn_task(&mut self, idx: usize, foreground: bool, mut lock: Option<Lock>) -> usize {
        let plan = self.plan;
        let ph = &plan.hooks[idx];
        let lock = lock.take();
        let input = ph.hook.stdin.then(|| {
            let state = self.state.read(&ph.state_key);
            let run = RunState {
                // A hook inside sees the program under its PID there.
                pid: if ph.hook.inside {
                    self.stage.inside_pid()
                } else {
                    self.stage.host_pid()
                },
                outcome: self.outcome.clone(),
            };
            serde_json::to_vec(&input::input(plan, &run, ph, &state)).unwrap_or_default()
        });
        let pid = matches!(ph.hook.event, HookEvent::Started | HookEvent::Stopping)
            .then_some(self.stage.host_pid())
            .flatten();
        let task = if ph.hook.inside {
            match (&self.sandbox, self.stage.running()) {
                (Some(sb), true) => {
                    let id = self.next_id;
                    self.next_id += 1;
                    let mut env = self.inside_env();
                    // The program's PID as the hook sees it (the host's
                    // would name nothing, or another process, inside).
                    if let Some(pid) = self.stage.inside_pid() {
                        env.push(format!("ANTIMONY_PID={pid}").into_bytes());
                    }
                    Task::inside(
                        idx,
                        ph,
                        sb,
                        id,
                        &env,
                        plan.home.as_os_str().as_bytes(),
                        input,
                    )
                }
                _ => Err("the sandbox is not running".to_string()),
            }
        } else {
            self.groups.guard(&mut self.warnings);
            let slot = self.groups.reserve();
            let task = Task::host(idx, ph, &self.cx, foreground, pid, input, slot);
            if let (Err(_), Some(slot)) = (&task, slot) {
                self.groups.release(slot);
            }
            task
        };
        let mut task = task.unwrap_or_else(|e| Task::failed_start(idx, ph, e));
        task.lock = lock;
        self.slots.insert(task)
    }

    /// The environment of a command inside: the sandbox's, plus the
    /// run's name and id.
    fn inside_env(&self) -> Vec<Vec<u8>> {
        let mut env: Vec<Vec<u8>> = self
            .plan
            .env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                kv
            })
            .collect();
        env.push(format!("ANTIMONY_NAME={}", self.plan.name).into_bytes());
        env.push(format!("ANTIMONY_INSTANCE={}", self.plan.instance).into_bytes());
        env
    }

    /// Runs a hook and waits for it, serving everything else meanwhile.
    fn run_foreground(&mut self, idx: usize) -> Result<(), HookError> {
        let Ok(lock) = self.state_lock(idx) else {
            // A stop signal ended the wait: the hook never started.
            return Ok(());
        };
        let slot = self.spawn_task(idx, true, lock);
        self.fg = Some(slot);
        while !self.slots.is_done(slot) {
            self.turn(None);
        }
        self.fg = None;
        self.finish_task(slot)
    }

    /// Takes an ended task out of its slot: its record, its state update,
    /// its result.
    fn finish_task(&mut self, slot: usize) -> Result<(), HookError> {
        let Some(task) = self.slots.take(slot) else {
            return Ok(());
        };
        let ph = &self.plan.hooks[task.hook];
        let label = task.label.clone();
        // What the hook left running in its process group: ended with the
        // sandbox for background hooks, left alone for foreground ones; the
        // guardian watches both until their groups are empty.
        if let Some(pg) = task.pgid() {
            self.groups.hook_ended(
                pg,
                task.leader_unreaped(),
                task.group_alive(),
                task.foreground,
            );
        }
        let done = task.finish();
        self.leftovers
            .extend(done.leftovers.into_iter().map(|p| (p, Captured::default())));
        if done.failure.is_none() {
            if let Some(change) = done.reply.change {
                self.state
                    .update(&ph.state_key, change, done.lock, &mut self.warnings);
            }
            self.state.apply_pending(false, &mut self.warnings);
        }
        self.records.push(done.record);
        match done.failure {
            None => Ok(()),
            Some(failure) => Err(HookError {
                label,
                failure,
                message: done.reply.error,
            }),
        }
    }

    /// Ended background hooks: their results, and what follows them.
    fn collect_background(&mut self) {
        for slot in self.slots.used() {
            if Some(slot) == self.fg || !self.slots.is_done(slot) {
                continue;
            }
            let can_fail = self
                .slots
                .get(slot)
                .map(|t| self.plan.hooks[t.hook].hook.can_fail)
                .unwrap_or(true);
            let result = self.finish_task(slot);
            // In the Ending phase a hook still running was told to stop
            // because the program ended: what that does to it is not a
            // failure of the run (a started hook may well run as long as
            // the program does, like an attached one).
            let ending = self.phase == Phase::Ending;
            if self.started.ended(slot) {
                if let (Err(e), false) = (result, ending) {
                    if can_fail {
                        self.warnings.push(e.to_string());
                    } else {
                        // A started hook is part of the launch: stop the sandbox.
                        self.launch_error.get_or_insert(Error::Hook(e));
                        self.begin_stop(libc::SIGTERM, true);
                    }
                }
            } else if self.stopping.ended(slot) {
                if let (Err(e), true) = (&result, ending) {
                    // Cut short: the program ended while it ran.
                    self.warnings
                        .push(format!("{e} (stopped: the program had ended)"));
                } else if let Err(e) = result {
                    if can_fail {
                        self.warnings.push(e.to_string());
                    } else {
                        self.late_error.get_or_insert(e);
                    }
                }
            } else if let Err(e) = result {
                // An attached hook that ended by itself (not by our SIGTERM).
                if self.phase != Phase::Ending {
                    self.warnings
                        .push(format!("attached {e} while the sandbox ran"));
                }
            }
        }
        self.advance_queues();
    }

    /// Starts the next started hook, and the next stopping hook (or, when
    /// they are all done, delivers the stop signal).
    fn advance_queues(&mut self) {
        if self.phase != Phase::Running || self.stage.init_gone() {
            return;
        }
        if self.stage.program_started() {
            if let Next::Start(idx) = self.started.next() {
                let slot = self.spawn_task(idx, false, None);
                self.started.running_in(slot);
            }
        }
        if self.stop.begun {
            match self.stopping.next() {
                Next::Start(idx) => {
                    // Only a pre-hook's wait can be cancelled.
                    let lock = self.state_lock(idx).unwrap_or(None);
                    let slot = self.spawn_task(idx, true, lock);
                    self.stopping.running_in(slot);
                }
                Next::Done => self.deliver_stop(),
                Next::Busy => {}
            }
        }
    }

    // ---- stopping ----------------------------------------------------

    /// A stop signal, or `antimony stop`: stopping hooks first, then the
    /// signal to the program (and SIGKILL after the grace if `escalate`).
    fn begin_stop(&mut self, sig: i32, escalate: bool) {
        self.stop.escalate |= escalate;
        if self.stop.begun {
            // Asked again: do not wait for the stopping hooks any longer.
            self.stopping.clear();
            self.stop.signal = sig;
            self.stop.delivered = false;
            self.deliver_stop();
            return;
        }
        self.stop.begun = true;
        self.stop.signal = sig;
        // Stopping hooks are for a running program; during the set-up the
        // signal goes to init at once, which passes it on when it starts.
        if self.stage.program_started() {
            self.stopping.load(self.indices(HookEvent::Stopping));
        }
        self.advance_queues();
    }

    fn deliver_stop(&mut self) {
        if self.stop.delivered {
            return;
        }
        self.stop.delivered = true;
        if let Some(sb) = &self.sandbox {
            sb.signal(self.stop.signal);
        }
        if self.stop.escalate && self.stop.kill_at.is_none() {
            self.stop.kill_at = Some(Instant::now() + self.plan.grace);
        }
    }

    // ---- the event loop ----------------------------------------------

    fn take_signals(&mut self) {
        for sig in self.signals.take() {
            self.on_signal(sig);
        }
    }

    fn on_signal(&mut self, sig: i32) {
        match self.phase {
            Phase::Pre | Phase::Post => {
                // The hook being waited for gets it; a stop signal before the
                // program runs cancels the launch.
                if self.phase == Phase::Pre && signals::is_stop(sig) && self.interrupted.is_none() {
                    self.interrupted = Some(sig);
                    if let Some(t) = self.fg.and_then(|s| self.slots.get_mut(s)) {
                        t.cancel(sig, self.plan.grace);
                    }
                }
                if let Some(t) = self.fg.and_then(|s| self.slots.get(s)) {
                    t.signal(None, sig);
                }
            }
            Phase::Running => {
                if signals::is_stop(sig) {
                    self.begin_stop(sig, false);
                } else if let Some(sb) = &self.sandbox {
                    sb.signal(sig);
                }
            }
            Phase::Ending => {}
        }
    }

    /// A message from init.
    fn on_message(&mut self, m: Message) {
        match m {
            // Read by `network::start` before the program runs.
            Message::Network => {}
            Message::Failed { step, index, errno } => {
                self.setup_failure = Some(sandbox::describe_failure(
                    self.plan, self.host, step, index, errno,
                ));
            }
            Message::Started { pid } => {
                let host_pid = self.sandbox.as_ref().and_then(Sandbox::program_host_pid);
                self.stage.started(host_pid, u32::try_from(pid).ok());
                if host_pid.is_none() {
                    self.warnings.push(
                        "the program's PID on the host could not be read (/proc/PID/task/PID/children): `ps` shows 0 and hooks get no ANTIMONY_PID".into(),
                    );
                }
                // Registered once the program runs: what `ps` lists can be
                // entered and stopped, and its record is written only once.
                match Registration::create(
                    self.host,
                    &self.plan.instance,
                    &self.plan.name,
                    host_pid.unwrap_or(0),
                )
                .and_then(Server::start)
                {
                    Ok(s) => self.server = Some(s),
                    Err(e) => self.warnings.push(format!(
                        "this instance cannot be listed, entered or stopped by antimony (its record: {})",
                        crate::error::io_text(&e)
                    )),
                }
                // Registered (or not to be): a run of the same
                // single_instance profile may look for it now.
                self.start_lock = None;
                if let (Some(s), Some(pid)) = (&self.status, host_pid) {
                    s.started(&self.plan.instance, pid);
                }
            }
            Message::Exited { status } => self.stage.program_exited(status),
            // Without its descriptor, or not asked for: nothing to serve.
            Message::Listener => {}
            Message::Spawned { id, pid } => {
                if let Some(t) = self.inside_task(id) {
                    if let Place::Inside { pid: p, .. } = &mut t.place {
                        *p = Some(pid);
                    }
                } else if let Some(s) = &self.server {
                    if let Some(c) = s.client_of(id) {
                        s.send(c, m);
                    }
                }
            }
            Message::SpawnFailed { id, errno } => {
                if let Some(t) = self.inside_task(id) {
                    t.start_error = Some(format!("inside the sandbox: {errno}"));
                } else if let Some(s) = &mut self.server {
                    if let Some(c) = s.client_of(id) {
                        s.send(c, m);
                        s.clients[c].command = None;
                    }
                }
            }
            Message::Reaped { id, status } => {
                if let Some(t) = self.inside_task(id) {
                    t.exited(status);
                } else if let Some(s) = &mut self.server {
                    if let Some(c) = s.client_of(id) {
                        s.send(c, m);
                        s.clients[c].command = None;
                    }
                }
            }
        }
    }

    /// Serves a recording run's listener (on a thread of its own: the
    /// program waits for an answer on every path it names, and this loop
    /// may wait on a hook), and sets the time limit if the plan has one.
    fn start_recorder(&mut self, fd: std::os::fd::OwnedFd) {
        match crate::learn::Recorder::start(fd) {
            Ok(r) => self.recorder = Some(r),
            Err(e) => {
                // The program would wait forever: it goes.
                if let Some(sb) = &self.sandbox {
                    sb.kill();
                }
                self.launch_error
                    .get_or_insert(Error::io("start the recorder's thread", e));
            }
        }
        if let Some(after) = self.plan.record.as_ref().and_then(|r| r.stop_after) {
            self.stop_at = Some(Instant::now() + after);
        }
    }

    fn inside_task(&mut self, id: u32) -> Option<&mut Task> {
        self.slots
            .tasks_mut()
            .find(|t| matches!(t.place, Place::Inside { id: i, .. } if i == id))
    }

    fn on_request(&mut self, client: usize, req: Request) {
        match req {
            Request::Stop => {
                if self.phase == Phase::Running {
                    self.begin_stop(libc::SIGTERM, true);
                }
            }
            Request::Signal(sig) => {
                let id = self.server.as_ref().and_then(|s| s.clients[client].command);
                if let (Some(sb), Some(id)) = (&self.sandbox, id) {
                    sb.signal_inside(id, sig);
                }
            }
            Request::Enter {
                argv,
                terminal,
                stdio,
            } => {
                let id = self.next_id;
                self.next_id += 1;
                let env = self.inside_env();
                let sent = match (&self.sandbox, self.stage.running()) {
                    (Some(sb), true) => {
                        let argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
                        let env: Vec<&[u8]> = env.iter().map(Vec::as_slice).collect();
                        let stdio: Vec<RawFd> = stdio.iter().map(AsRawFd::as_raw_fd).collect();
                        sb.exec(
                            id,
                            &argv,
                            &env,
                            self.plan.home.as_os_str().as_bytes(),
                            terminal.as_ref(),
                            &stdio,
                        )
                        .map_err(|e| match e {
                            SandboxError::Syscall { errno, .. } => errno,
                            _ => nix::errno::Errno::EINVAL,
                        })
                    }
                    // No program running to join.
                    _ => Err(nix::errno::Errno::ESRCH),
                };
                if let Some(s) = &mut self.server {
                    match sent {
                        Ok(()) => s.clients[client].command = Some(id),
                        Err(errno) => s.send(client, Message::SpawnFailed { id, errno }),
                    }
                }
            }
        }
    }

    /// One round: poll everything, handle what is ready, act on timers.
    fn turn(&mut self, until: Option<Instant>) {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut sources: Vec<Source> = Vec::new();
        let mut add = |fd: RawFd, events: i16, s: Source| {
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            sources.push(s);
        };
        add(self.signals.fd().as_raw_fd(), libc::POLLIN, Source::Signals);
        if let Some(sb) = &self.sandbox {
            if !self.stage.init_gone() {
                add(sb.pidfd.as_raw_fd(), libc::POLLIN, Source::Init);
            }
            if self.channel_open {
                add(sb.messages_fd().as_raw_fd(), libc::POLLIN, Source::Channel);
            }
        }
        if let Some(s) = &self.server {
            add(s.listener_fd(), libc::POLLIN, Source::Listener);
            for (i, c) in s.clients.iter().enumerate() {
                add(c.fd.as_raw_fd(), libc::POLLIN, Source::Client(i));
            }
        }
        let mut watches = Vec::new();
        for (slot, t) in self.slots.iter() {
            watches.clear();
            t.fds(&mut watches);
            for &(fd, ev, w) in &watches {
                add(fd, ev, Source::Task(slot, w));
            }
        }
        for (i, (p, _)) in self.leftovers.iter().enumerate() {
            if p.open {
                add(p.fd.as_raw_fd(), libc::POLLIN, Source::Leftover(i));
            }
        }
        // Wake for the nearest timer.
        let deadline = self
            .slots
            .iter()
            .filter_map(|(_, t)| t.deadline())
            .chain(self.stop.kill_at)
            .chain(self.stop_at)
            .chain(until)
            .chain(
                self.state
                    .has_pending()
                    .then(|| Instant::now() + Duration::from_millis(20)),
            )
            .min();
        let timeout = match deadline {
            None => -1,
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .as_millis()
                .saturating_add(1)
                .min(60_000) as i32,
        };
        // SAFETY: fds is a valid array of pollfd of the length passed.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };

        let mut hung_up = Vec::new();
        for (pfd, src) in fds.iter().zip(&sources) {
            if pfd.revents == 0 {
                continue;
            }
            match *src {
                Source::Signals => self.take_signals(),
                Source::Init => {
                    // Reaped once: its pidfd is not polled after this.
                    let status = self.sandbox.as_mut().map_or(0, Sandbox::reap);
                    self.stage.init_ended(status);
                }
                Source::Channel => {
                    let m = self.sandbox.as_ref().map(Sandbox::read_message);
                    match m {
                        // A recording run's listener; any other descriptor
                        // from init is never asked for: closed.
                        Some(Ok(Some((Message::Listener, Some(fd)))))
                            if self.plan.record.is_some() && self.recorder.is_none() =>
                        {
                            self.start_recorder(fd)
                        }
                        Some(Ok(Some((m, _)))) => self.on_message(m),
                        // A garbled channel: nothing init says can be
                        // trusted any more; the sandbox goes.
                        Some(Err(e)) => {
                            self.channel_open = false;
                            if let Some(sb) = &self.sandbox {
                                sb.kill();
                            }
                            if !self.stage.program_started() {
                                self.launch_error.get_or_insert(e.into());
                            } else {
                                self.warnings.push(format!("the sandbox was stopped: {e}"));
                            }
                        }
                        _ => self.channel_open = false,
                    }
                }
                Source::Listener => {
                    if let Some(s) = &mut self.server {
                        s.accept();
                    }
                }
                Source::Client(i) => {
                    let req = self.server.as_mut().and_then(|s| s.read(i));
                    match req {
                        Some(r) => self.on_request(i, r),
                        None => hung_up.push(i),
                    }
                }
                Source::Task(slot, w) => {
                    if let Some(t) = self.slots.get_mut(slot) {
                        t.ready(w);
                    }
                }
                Source::Leftover(i) => {
                    let (p, c) = &mut self.leftovers[i];
                    c.drain(p);
                }
            }
        }
        // Clients that hung up: their command inside gets SIGHUP.
        if let Some(s) = &mut self.server {
            for &i in hung_up.iter().rev() {
                if let (Some(id), Some(sb)) = (s.clients[i].command, &self.sandbox) {
                    sb.signal_inside(id, libc::SIGHUP);
                }
                s.clients.remove(i);
            }
        }
        self.leftovers.retain(|(p, _)| p.open);
        self.groups.prune();
        // Timers.
        let now = Instant::now();
        let grace = self.plan.grace;
        for t in self.slots.tasks_mut() {
            t.tick(now, self.sandbox.as_ref(), grace);
        }
        if self.stop_at.is_some_and(|k| now >= k) {
            self.stop_at = None;
            if self.phase == Phase::Running {
                self.begin_stop(libc::SIGTERM, true);
            }
        }
        if self.stop.kill_at.is_some_and(|k| now >= k) {
            self.stop.kill_at = None;
            if let Some(sb) = &self.sandbox {
                if !self.stage.init_gone() {
                    sb.kill();
                }
            }
        }
        self.collect_background();
    }
}

fn create_private_dir(dir: &std::path::Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("create {}", dir.display()), e))
}
