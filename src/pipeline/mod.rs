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
mod guardian;
mod verdict;

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use crate::error::{EXIT_LAUNCHER_FAILURE, Error};
use crate::hooks::input::{self, RunState};
use crate::hooks::output::{Captured, Pipe};
use crate::hooks::records::{self, HookRecord, RunRecord};
use crate::hooks::state::{Change, Lock, StateStore};
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

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// antimony's exit status.
    pub code: u8,
    /// A launcher failure, printed once by `main`.
    pub error: Option<Error>,
    /// Printed as warnings (hooks that may fail, failed).
    pub warnings: Vec<String>,
}

pub use verdict::exit_code;

/// Where `plan::build` takes its id from, until it is passed in.
pub use crate::instance::instance_id;

/// Runs the plan.
pub fn run(plan: &Plan, host: &Host, status_fd: Option<RawFd>) -> Outcome {
    let warnings = plan.warnings.clone();
    let fail = |error: Error, warnings: Vec<String>| Outcome {
        code: EXIT_LAUNCHER_FAILURE,
        error: Some(error),
        warnings,
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
        store: StateStore::new(&host.state_home, &plan.name),
        phase: Phase::Pre,
        slots: Vec::new(),
        fg: None,
        started_queue: VecDeque::new(),
        started_slot: None,
        stopping_queue: VecDeque::new(),
        stopping_slot: None,
        leftovers: Vec::new(),
        groups: Vec::new(),
        lingering: Vec::new(),
        zombie_leaders: Vec::new(),
        last_member_scan: None,
        guardian: None,
        guardian_tried: false,
        sandbox: None,
        proxy: None,
        program_started: false,
        program_pid: None,
        program_inside_pid: None,
        exited: None,
        init_status: None,
        setup_failure: None,
        channel_open: false,
        init_gone: false,
        next_id: 1,
        server: None,
        status,
        stop: Stop::default(),
        interrupted: None,
        launch_error: None,
        late_error: None,
        outcome: None,
        records: Vec::new(),
        pending_state: Vec::new(),
        warnings,
        storage_warned: false,
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
    cx: Context,
    signals: Signals,
    store: StateStore,
    phase: Phase,
    /// Running hooks; a finished one leaves its slot empty.
    slots: Vec<Option<Task>>,
    /// The hook the pipeline waits for (pre, post).
    fg: Option<usize>,
    started_queue: VecDeque<usize>,
    started_slot: Option<usize>,
    stopping_queue: VecDeque<usize>,
    stopping_slot: Option<usize>,
    /// Output pipes hooks left open; drained while antimony runs.
    leftovers: Vec<(Pipe, Captured)>,
    /// Process groups of ended background hooks that still have members
    /// (ended with the sandbox).
    groups: Vec<libc::pid_t>,
    /// Those of ended foreground hooks (left alone, but watched).
    lingering: Vec<libc::pid_t>,
    /// Groups whose leader (the hook's own process) is left unreaped until
    /// the group has ended (`Task::reap`).
    zombie_leaders: Vec<libc::pid_t>,
    /// When `prune_groups` last read /proc.
    last_member_scan: Option<Instant>,
    /// Kills registered process groups if antimony dies.
    guardian: Option<guardian::Guardian>,
    /// Whether the guardian was started (or tried): once, before the first
    /// hook on the host (`spawn_task`).
    guardian_tried: bool,
    sandbox: Option<Sandbox>,
    /// The session bus proxy, while the sandbox runs.
    proxy: Option<dbus::Proxy>,
    program_started: bool,
    /// The program's PID on the host.
    program_pid: Option<u32>,
    /// The program's PID inside the sandbox (what `inside` hooks get).
    program_inside_pid: Option<u32>,
    exited: Option<i32>,
    init_status: Option<i32>,
    setup_failure: Option<SandboxError>,
    channel_open: bool,
    init_gone: bool,
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
    /// State updates of hooks that did not hold their lock, waiting for it.
    pending_state: Vec<(String, Change)>,
    warnings: Vec<String>,
    storage_warned: bool,
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
        if self.slots[slot].as_ref().is_some_and(Task::is_done) {
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

    fn sandbox_phase(&mut self) {
        self.phase = Phase::Running;
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
        let waiting = !deferred.is_empty();
        let spawned = sandbox::prepare(self.plan).and_then(|mut p| {
            p.wait_for_go = waiting;
            sandbox::spawn(&mut p)
        });
        match spawned {
            Ok(sb) => {
                self.sandbox = Some(sb);
                self.channel_open = true;
            }
            Err(e) => {
                self.launch_error = Some(e.into());
                return;
            }
        }
        // The trailing attached pre-hooks, while init sets up the sandbox.
        for idx in deferred {
            let result = self.start_attached(idx);
            if !self.accept(idx, result) {
                break;
            }
        }
        if waiting {
            if let Some(sb) = &self.sandbox {
                if self.launch_error.is_some() {
                    sb.kill();
                } else {
                    sb.go();
                }
            }
        }
        self.started_queue = self.indices(HookEvent::Started).into();
        // Until init is gone and everything it said has been read.
        while !self.init_gone || self.channel_open {
            self.turn(None);
        }
        if let Some(f) = self.setup_failure.take() {
            self.launch_error.get_or_insert(f.into());
        }
        // Commands that were running inside died with the sandbox.
        for t in self.slots.iter_mut().flatten() {
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
        self.started_queue.clear();
        let grace = self.plan.grace;
        for t in self.slots.iter_mut().flatten() {
            if !t.is_done() {
                t.terminate(None, grace);
            } else if t.group_alive() {
                t.signal(None, libc::SIGTERM);
            }
        }
        // Groups that ended unnoticed are forgotten first, not signalled.
        self.prune_groups();
        for pg in &self.groups {
            // SAFETY: signalling a process group we started.
            unsafe { libc::kill(-*pg, libc::SIGTERM) };
        }
        let deadline = Instant::now() + grace;
        loop {
            self.prune_groups();
            if self.slots.iter().all(Option::is_none) && self.groups.is_empty() {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                for pg in std::mem::take(&mut self.groups) {
                    // SAFETY: signalling a process group we started.
                    unsafe { libc::kill(-pg, libc::SIGKILL) };
                    self.unwatch(pg);
                }
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
        self.apply_pending(true);
        // A normal end, and no hook runs any more: the guardian leaves
        // what foreground hooks left running alone, and exits while the
        // record is written (it is reaped at the end).
        if let Some(g) = &mut self.guardian {
            g.retire();
        }
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
            self.storage_warning(format!(
                "the run record was not written: {}",
                crate::error::io_text(&e)
            ));
        }
        // Unregister before saying goodbye: `antimony stop` waits for this.
        self.server = None;
        // Reaped: it was told to go before the record was written.
        drop(self.guardian.take());
        Outcome {
            code,
            error,
            warnings: self.warnings,
        }
    }

    /// What the verdict is drawn from, at the end (the errors are taken).
    fn facts(&mut self) -> verdict::Facts {
        verdict::Facts {
            launch_error: self.launch_error.take(),
            late_error: self.late_error.take(),
            program_status: self.program_status(),
            interrupted: self.interrupted,
            init_status: self.init_status,
        }
    }

    /// The program's wait status once it has ended: its own, or its
    /// init's when it died with it (killed after the grace). `None` for a
    /// program that never started.
    fn program_status(&self) -> Option<i32> {
        self.exited
            .or(self.init_status)
            .filter(|_| self.program_started)
    }

    // ---- hooks -------------------------------------------------------

    fn indices(&self, event: HookEvent) -> Vec<usize> {
        (0..self.plan.hooks.len())
            .filter(|&i| self.plan.hooks[i].hook.event == event)
            .collect()
    }

    /// The guardian, started before the first hook on the host, not
    /// before: only a hook needs it (the sandbox and the D-Bus proxy die
    /// with antimony by themselves), and for a profile whose hooks on the
    /// host are trailing attached ones its start then costs nothing on the
    /// way to the program (it happens while the sandbox builds itself).
    fn start_guardian(&mut self) {
        if std::mem::replace(&mut self.guardian_tried, true) {
            return;
        }
        self.guardian = guardian::Guardian::start();
        if self.guardian.is_none() {
            self.warnings.push(
                "the guardian could not be started: should antimony be killed, what hooks started may survive".into(),
            );
        }
    }

    /// A hook's group has ended: the guardian forgets it, then its leader,
    /// if it was kept a zombie (holding the number), is reaped.
    fn unwatch(&mut self, pg: libc::pid_t) {
        if let Some(g) = &self.guardian {
            g.remove(pg);
        }
        if let Some(i) = self.zombie_leaders.iter().position(|&z| z == pg) {
            self.zombie_leaders.swap_remove(i);
            crate::hooks::task::reap_leader(pg);
        }
    }

    /// Forgets process groups that have emptied.
    /// A group that kill(-pgid, 0) still finds may hold zombies only; that
    /// is looked up in /proc at most every 100 ms (a group whose members
    /// write all the time wakes the event loop for every write).
    fn prune_groups(&mut self) {
        use crate::hooks::task::{group_has_members, live_member};
        let look = self
            .last_member_scan
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        let mut looked = false;
        let mut ended = Vec::new();
        for list in [&mut self.groups, &mut self.lingering] {
            list.retain(|&pg| {
                let alive = group_has_members(pg)
                    && (!look || {
                        looked = true;
                        live_member(pg)
                    });
                if !alive {
                    ended.push(pg);
                }
                alive
            });
        }
        if looked {
            self.last_member_scan = Some(Instant::now());
        }
        for pg in ended {
            self.unwatch(pg);
        }
    }

    fn storage_warning(&mut self, w: String) {
        // Said once per run: hooks and runs go on without records or state.
        if !self.storage_warned {
            self.storage_warned = true;
            self.warnings.push(w);
        }
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
            match self.store.try_lock(&key) {
                Ok(Some(lock)) => return Ok(Some(lock)),
                Ok(None) => {}
                Err(e) => {
                    self.storage_warning(format!(
                        "hook state is not kept: {}",
                        crate::error::io_text(&e)
                    ));
                    return Ok(None);
                }
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
            let state = self.store.read(&ph.state_key);
            let run = RunState {
                // A hook inside sees the program under its PID there.
                pid: if ph.hook.inside {
                    self.program_inside_pid
                } else {
                    self.program_pid
                },
                outcome: self.outcome.clone(),
            };
            serde_json::to_vec(&input::input(plan, &run, ph, &state)).unwrap_or_default()
        });
        let pid = matches!(ph.hook.event, HookEvent::Started | HookEvent::Stopping)
            .then_some(self.program_pid)
            .flatten();
        let task = if ph.hook.inside {
            match (&self.sandbox, self.program_started && !self.init_gone) {
                (Some(sb), true) => {
                    let id = self.next_id;
                    self.next_id += 1;
                    let mut env = self.inside_env();
                    // The program's PID as the hook sees it (the host's
                    // would name nothing, or another process, inside).
                    if let Some(pid) = self.program_inside_pid {
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
            self.start_guardian();
            let slot = self.guardian.as_ref().and_then(|g| g.reserve());
            let task = Task::host(idx, ph, &self.cx, foreground, pid, input, slot);
            if let (Err(_), Some(g), Some(slot)) = (&task, &self.guardian, slot) {
                g.release(slot);
            }
            task
        };
        let mut task = task.unwrap_or_else(|e| Task::failed_start(idx, ph, e));
        task.lock = lock;
        match self.slots.iter().position(Option::is_none) {
            Some(slot) => {
                self.slots[slot] = Some(task);
                slot
            }
            None => {
                self.slots.push(Some(task));
                self.slots.len() - 1
            }
        }
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
        while !self.slots[slot].as_ref().is_some_and(Task::is_done) {
            self.turn(None);
        }
        self.fg = None;
        self.finish_task(slot)
    }

    /// Takes an ended task out of its slot: its record, its state update,
    /// its result.
    fn finish_task(&mut self, slot: usize) -> Result<(), HookError> {
        let Some(task) = self.slots[slot].take() else {
            return Ok(());
        };
        let ph = &self.plan.hooks[task.hook];
        let label = task.label.clone();
        // What the hook left running in its process group: ended with the
        // sandbox for background hooks, left alone for foreground ones; the
        // guardian watches both until their groups are empty.
        if let Some(pg) = task.pgid() {
            if task.leader_unreaped() {
                self.zombie_leaders.push(pg);
            }
            if !task.group_alive() {
                self.unwatch(pg);
            } else if task.foreground {
                self.lingering.push(pg);
            } else {
                self.groups.push(pg);
            }
        }
        let done = task.finish();
        self.leftovers
            .extend(done.leftovers.into_iter().map(|p| (p, Captured::default())));
        if done.failure.is_none() {
            if let Some(change) = done.reply.change {
                match done.lock {
                    Some(lock) => self.apply_state(&ph.state_key, &change, lock),
                    // A hook that did not read its state takes the lock for
                    // the update only, when it is free: meanwhile the update
                    // waits and the event loop goes on (`apply_pending`).
                    None => self.pending_state.push((ph.state_key.clone(), change)),
                }
            }
            self.apply_pending(false);
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

    fn apply_state(&mut self, key: &str, change: &Change, _lock: Lock) {
        if let Err(e) = self.store.apply(key, change) {
            self.storage_warning(format!(
                "hook state is not kept: {}",
                crate::error::io_text(&e)
            ));
        }
    }

    /// Applies the waiting state updates whose lock is free. `last`: the
    /// run is over; wait up to 10 s for locks others hold, then say what
    /// was not kept.
    fn apply_pending(&mut self, last: bool) {
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            let mut waiting = Vec::new();
            for (key, change) in std::mem::take(&mut self.pending_state) {
                match self.store.try_lock(&key) {
                    Ok(Some(lock)) => self.apply_state(&key, &change, lock),
                    Ok(None) => waiting.push((key, change)),
                    Err(e) => self.storage_warning(format!(
                        "hook state is not kept: {}",
                        crate::error::io_text(&e)
                    )),
                }
            }
            self.pending_state = waiting;
            if !last || self.pending_state.is_empty() {
                return;
            }
            if Instant::now() >= give_up {
                for (key, _) in std::mem::take(&mut self.pending_state) {
                    self.storage_warning(format!(
                        "hook state is not kept: another run held the lock of `{key}` for 10 s"
                    ));
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ended background hooks: their results, and what follows them.
    fn collect_background(&mut self) {
        for slot in 0..self.slots.len() {
            if Some(slot) == self.fg || !self.slots[slot].as_ref().is_some_and(Task::is_done) {
                continue;
            }
            let can_fail = self.slots[slot]
                .as_ref()
                .map(|t| self.plan.hooks[t.hook].hook.can_fail)
                .unwrap_or(true);
            let result = self.finish_task(slot);
            // In the Ending phase a hook still running was told to stop
            // because the program ended: what that does to it is not a
            // failure of the run (a started hook may well run as long as
            // the program does, like an attached one).
            let ending = self.phase == Phase::Ending;
            if Some(slot) == self.started_slot {
                self.started_slot = None;
                if let (Err(e), false) = (result, ending) {
                    if can_fail {
                        self.warnings.push(e.to_string());
                    } else {
                        // A started hook is part of the launch: stop the sandbox.
                        self.launch_error.get_or_insert(Error::Hook(e));
                        self.begin_stop(libc::SIGTERM, true);
                    }
                }
            } else if Some(slot) == self.stopping_slot {
                self.stopping_slot = None;
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
        if self.phase != Phase::Running || self.init_gone {
            return;
        }
        if self.program_started && self.started_slot.is_none() {
            if let Some(idx) = self.started_queue.pop_front() {
                let slot = self.spawn_task(idx, false, None);
                self.started_slot = Some(slot);
            }
        }
        if self.stop.begun && self.stopping_slot.is_none() {
            match self.stopping_queue.pop_front() {
                Some(idx) => {
                    // Only a pre-hook's wait can be cancelled.
                    let lock = self.state_lock(idx).unwrap_or(None);
                    let slot = self.spawn_task(idx, true, lock);
                    self.stopping_slot = Some(slot);
                }
                None => self.deliver_stop(),
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
            self.stopping_queue.clear();
            self.stop.signal = sig;
            self.stop.delivered = false;
            self.deliver_stop();
            return;
        }
        self.stop.begun = true;
        self.stop.signal = sig;
        // Stopping hooks are for a running program; during the set-up the
        // signal goes to init at once, which passes it on when it starts.
        if self.program_started {
            self.stopping_queue = self.indices(HookEvent::Stopping).into();
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
                    if let Some(t) = self.fg.and_then(|s| self.slots[s].as_mut()) {
                        t.cancel(sig, self.plan.grace);
                    }
                }
                if let Some(t) = self.fg.and_then(|s| self.slots[s].as_ref()) {
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

    /// A message from init, with the descriptor that came with it (an
    /// entered command's terminal, for its client).
    fn on_message(&mut self, m: Message, fd: Option<OwnedFd>) {
        match m {
            Message::Failed { step, index, errno } => {
                self.setup_failure = Some(sandbox::describe_failure(
                    self.plan, self.host, step, index, errno,
                ));
            }
            Message::Started { pid } => {
                self.program_started = true;
                self.program_inside_pid = u32::try_from(pid).ok();
                self.program_pid = self.sandbox.as_ref().and_then(Sandbox::program_host_pid);
                if self.program_pid.is_none() {
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
                    self.program_pid.unwrap_or(0),
                )
                .and_then(Server::start)
                {
                    Ok(s) => self.server = Some(s),
                    Err(e) => self.warnings.push(format!(
                        "this instance cannot be listed, entered or stopped by antimony (its record: {})",
                        crate::error::io_text(&e)
                    )),
                }
                if let (Some(s), Some(pid)) = (&self.status, self.program_pid) {
                    s.started(&self.plan.instance, pid);
                }
            }
            Message::Exited { status } => self.exited = Some(status),
            Message::Spawned { id, pid } => {
                if let Some(t) = self.inside_task(id) {
                    if let Place::Inside { pid: p, .. } = &mut t.place {
                        *p = Some(pid);
                    }
                } else if let Some(s) = &self.server {
                    if let Some(c) = s.client_of(id) {
                        match &fd {
                            Some(fd) => s.send_with_fd(c, m, fd),
                            None => s.send(c, m),
                        }
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

    fn inside_task(&mut self, id: u32) -> Option<&mut Task> {
        self.slots
            .iter_mut()
            .flatten()
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
                let sent = match (&self.sandbox, self.program_started && !self.init_gone) {
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
            if !self.init_gone {
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
        for (slot, t) in self.slots.iter().enumerate() {
            if let Some(t) = t {
                watches.clear();
                t.fds(&mut watches);
                for &(fd, ev, w) in &watches {
                    add(fd, ev, Source::Task(slot, w));
                }
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
            .flatten()
            .filter_map(Task::deadline)
            .chain(self.stop.kill_at)
            .chain(until)
            .chain(
                (!self.pending_state.is_empty())
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
                    if let Some(sb) = &mut self.sandbox {
                        self.init_status = Some(sb.reap());
                    }
                    self.init_gone = true;
                }
                Source::Channel => {
                    let m = self.sandbox.as_ref().map(Sandbox::read_message);
                    match m {
                        Some(Ok(Some((m, fd)))) => self.on_message(m, fd),
                        // A garbled channel: nothing init says can be
                        // trusted any more; the sandbox goes.
                        Some(Err(e)) => {
                            self.channel_open = false;
                            if let Some(sb) = &self.sandbox {
                                sb.kill();
                            }
                            if !self.program_started {
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
                    if let Some(t) = self.slots[slot].as_mut() {
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
        self.prune_groups();
        // Timers.
        let now = Instant::now();
        let grace = self.plan.grace;
        for t in self.slots.iter_mut().flatten() {
            t.tick(now, self.sandbox.as_ref(), grace);
        }
        if self.stop.kill_at.is_some_and(|k| now >= k) {
            self.stop.kill_at = None;
            if let Some(sb) = &self.sandbox {
                if !self.init_gone {
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
