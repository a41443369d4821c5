//! The CPUs of a launch whose attached pre-hooks start beside the
//! sandbox's set-up.
//!
//! Attached pre-hooks after the last blocking one are started while init
//! sets up the sandbox; init executes the program once they have started
//! (`Run::sandbox_phase`). A hook's own start — execve, then the dynamic
//! loader: about 0.6 ms of CPU for `/bin/sleep` — then competes with
//! init's set-up, and on a machine with few CPUs the scheduler often lets
//! it: a new task goes to whichever CPU looks idlest at that instant, and
//! when init sleeps in a mount call, its idle CPU pulls the hook over, so
//! init shares its CPU once it wakes. On two CPUs that put 0.15–0.3 ms on
//! the program's start.
//!
//! So for the set-up, and only then, the CPUs are split (`sched_setaffinity`):
//! antimony, and the guardian and hooks it starts meanwhile (a clone
//! inherits its parent's CPUs), stay on the CPU antimony runs on; init gets
//! all the others antimony may use. Each gets its CPUs back once the
//! program is running, so that neither the program nor a hook is left
//! narrowed:
//! - init, before it starts the program (which inherits init's CPUs);
//! - antimony, once it has told init to go on;
//! - the hooks, once init says the program has started (or the launch has
//!   ended): every task of their process groups created since the split,
//!   threads and children included, and every task started by one of
//!   those (a companion sandbox's program, in a session of its own)
//!   (`release_hooks`).
//!
//! Nothing is split when antimony may use one CPU only.

use std::collections::HashSet;
use std::mem::size_of;

/// The last process or thread ID handed out in our PID namespace.
const LAST_ID: &str = "/proc/sys/kernel/ns_last_pid";

/// The split of one launch.
#[derive(Debug)]
pub struct Split {
    /// What antimony may use (its affinity mask before the split).
    allowed: libc::cpu_set_t,
    /// The CPU antimony runs on: its own during the set-up; init gets the
    /// rest of `allowed`.
    cpu: usize,
    /// The process groups (and PIDs) of the hooks and the guardian started
    /// during the split: each leads a group of its own.
    groups: Vec<libc::pid_t>,
    /// The tasks given their CPUs back so far: whose children are ours too.
    restored: HashSet<libc::pid_t>,
    released: bool,
}

fn set_affinity(pid: libc::pid_t, set: &libc::cpu_set_t) -> bool {
    // SAFETY: a valid cpu_set_t of the size passed.
    unsafe { libc::sched_setaffinity(pid, size_of::<libc::cpu_set_t>(), set) == 0 }
}

impl Split {
    /// Before the sandbox's clone: `None` when there is nothing to split
    /// (one CPU allowed, or the mask cannot be read).
    pub fn new() -> Option<Split> {
        // SAFETY: an all-zero cpu_set_t is the empty set; the calls fill
        // or read sets of the size passed.
        unsafe {
            let mut allowed: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut allowed) < 0 {
                return None;
            }
            let cpu = usize::try_from(libc::sched_getcpu()).ok()?;
            if cpu >= libc::CPU_SETSIZE as usize
                || !libc::CPU_ISSET(cpu, &allowed)
                || libc::CPU_COUNT(&allowed) < 2
            {
                return None;
            }
            Some(Split {
                allowed,
                cpu,
                groups: Vec::new(),
                restored: HashSet::new(),
                released: false,
            })
        }
    }

    /// The CPUs init takes back before it starts the program.
    pub fn allowed(&self) -> libc::cpu_set_t {
        self.allowed
    }

    /// Antimony's CPU alone.
    fn own(&self) -> libc::cpu_set_t {
        // SAFETY: an all-zero cpu_set_t is the empty set; `cpu` is below
        // CPU_SETSIZE (checked in `new`).
        unsafe {
            let mut own: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(self.cpu, &mut own);
            own
        }
    }

    /// The others antimony may use.
    fn rest(&self) -> libc::cpu_set_t {
        let mut rest = self.allowed;
        // SAFETY: as in `own`.
        unsafe { libc::CPU_CLR(self.cpu, &mut rest) };
        rest
    }

    /// Right after the clone, before init is told to go on: init to the
    /// other CPUs, antimony to its own. A failure leaves the scheduler's
    /// choice, which is only slower.
    pub fn apply(&self, init: libc::pid_t) {
        set_affinity(init, &self.rest());
        set_affinity(0, &self.own());
    }

    /// A hook's process group (or the guardian's), started during the
    /// split.
    pub fn started(&mut self, group: libc::pid_t) {
        if !self.released && group > 0 {
            self.groups.push(group);
        }
    }

    /// Once init has been told to go on: antimony's CPUs back. What it
    /// starts from here on inherits them.
    pub fn release_self(&self) {
        set_affinity(0, &self.allowed);
    }

    /// Once the program runs (or the launch has ended): the CPUs back for
    /// every task started during the split. Those tasks all have IDs (PIDs
    /// and thread IDs come from one counter) from the first group's leader
    /// up to the namespace's last ID; in that order (a parent's ID comes
    /// before its child's), each ID whose process is in one of the groups,
    /// or whose parent got its CPUs back here (a hook's child in a session
    /// of its own, a companion sandbox's program), gets its CPUs back. Then
    /// the last ID is read again: a task created meanwhile, possibly by one
    /// not restored yet, has a later ID, so the new ones are looked at too,
    /// until no ID was handed out during a pass. A task created after that
    /// is created by a restored one and inherits its CPUs.
    ///
    /// Missed, keeping the one CPU: a task that left the groups (setsid,
    /// setpgid) and whose parent had exited before this ran, or that
    /// belongs to another user (a set-user-ID program a hook executed).
    pub fn release_hooks(&mut self) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        let Some(&first) = self.groups.first() else {
            return;
        };
        // The leaders at least, should the scan below be impossible.
        for &g in &self.groups {
            set_affinity(g, &self.allowed);
        }
        let mut from = first;
        // Bounded: on a machine that creates tasks without pause, every
        // pass but the first covers only IDs handed out during the one
        // before.
        for _ in 0..64 {
            let Some(last) = read_number(LAST_ID) else {
                return;
            };
            self.restore_ids(from, last);
            match read_number(LAST_ID) {
                Some(again) if again != last => from = last.saturating_add(1),
                _ => return,
            }
        }
    }

    /// Each ID from `from` to `to` (both included, wrapping around at
    /// pid_max) that is one of ours gets the allowed CPUs.
    fn restore_ids(&mut self, from: libc::pid_t, to: libc::pid_t) {
        let mut restore = |id: libc::pid_t| {
            // SAFETY: getpgid on any ID is harmless; a thread's ID gives
            // its process's group. A negative answer: no such task.
            let group = unsafe { libc::getpgid(id) };
            if group <= 0 {
                return;
            }
            let ours = self.groups.contains(&group)
                || parent_of(id).is_some_and(|p| self.restored.contains(&p));
            if ours {
                set_affinity(id, &self.allowed);
                self.restored.insert(id);
            }
        };
        if from <= to {
            (from..=to).for_each(&mut restore);
        } else {
            // The counter wrapped: up to pid_max, then from the start.
            let max = read_number("/proc/sys/kernel/pid_max").unwrap_or(from);
            (from..max).for_each(&mut restore);
            (1..=to).for_each(&mut restore);
        }
    }
}

/// A task's parent process (field 4 of its stat line).
fn parent_of(id: libc::pid_t) -> Option<libc::pid_t> {
    crate::procfs::read_stat_field(id, 4)
}

fn read_number(path: &str) -> Option<libc::pid_t> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    fn cpus_of(pid: libc::pid_t) -> libc::cpu_set_t {
        // SAFETY: as in `Split::new`.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(
                libc::sched_getaffinity(pid, size_of::<libc::cpu_set_t>(), &mut set),
                0
            );
            set
        }
    }

    fn same(a: &libc::cpu_set_t, b: &libc::cpu_set_t) -> bool {
        // SAFETY: reading two valid sets.
        (0..libc::CPU_SETSIZE as usize)
            .all(|i| unsafe { libc::CPU_ISSET(i, a) == libc::CPU_ISSET(i, b) })
    }

    /// A hook's group, started while antimony runs on one CPU: the leader,
    /// a child, a grandchild whose parent has exited (an orphan, no longer
    /// a descendant of the leader) and a child in a session of its own all
    /// get every CPU back; a process in a group of its own, started
    /// meanwhile, does not.
    #[test]
    fn restores_every_task_of_the_groups_started_during_the_split() {
        let Some(mut split) = Split::new() else {
            assert!(
                std::env::var("ANTIMONY_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
                "one CPU allowed: nothing to split (required to run here)"
            );
            eprintln!("skipped: one CPU allowed, nothing to split");
            return;
        };
        // The test thread stands in for antimony (the test harness runs
        // tests in threads; only this one is narrowed).
        set_affinity(0, &split.own());
        let out = std::env::temp_dir().join(format!("antimony-cpus-{}", std::process::id()));
        std::fs::create_dir(&out).unwrap();
        // The leader starts a child and an orphan, writes their PIDs and
        // waits to be killed; "other" is in a group of its own.
        let script = format!(
            "sleep 30 & echo $! > {o}/child; sh -c 'sleep 30 & echo $! > {o}/orphan'; \
             setsid sleep 30 & echo $! > {o}/session; echo go > {o}/ready; wait",
            o = out.display()
        );
        let mut leader = std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .process_group(0)
            .spawn()
            .unwrap();
        let mut other = std::process::Command::new("/bin/sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let leader_pid = leader.id() as libc::pid_t;
        let other_pid = other.id() as libc::pid_t;
        split.started(leader_pid);
        // Checked in a closure, so that the processes and the folder go
        // whatever it finds.
        let mut session = None;
        let mut check = || -> Result<(), String> {
            let mut waited = 0;
            while !out.join("ready").exists() && waited < 2000 {
                std::thread::sleep(std::time::Duration::from_millis(5));
                waited += 1;
            }
            let read_pid = |name: &str| -> Result<libc::pid_t, String> {
                let text =
                    std::fs::read_to_string(out.join(name)).map_err(|e| format!("{name}: {e}"))?;
                text.trim()
                    .parse()
                    .map_err(|e| format!("{name}: {text:?}: {e}"))
            };
            let (child, orphan) = (read_pid("child")?, read_pid("orphan")?);
            let in_session = read_pid("session")?;
            session = Some(in_session);
            for pid in [leader_pid, child, orphan, in_session, other_pid] {
                if !same(&cpus_of(pid), &split.own()) {
                    return Err(format!("{pid} was not narrowed"));
                }
            }
            split.release_self();
            split.release_hooks();
            for pid in [leader_pid, child, orphan, in_session] {
                if !same(&cpus_of(pid), &split.allowed) {
                    return Err(format!("{pid} of the hook's group kept the one CPU"));
                }
            }
            if !same(&cpus_of(other_pid), &split.own()) {
                return Err("a process of another group was changed".into());
            }
            if !same(&cpus_of(0), &split.allowed) {
                return Err("the test thread kept the one CPU".into());
            }
            Ok(())
        };
        let result = check();
        // SAFETY: ending the groups we started (the one in a session of
        // its own leads a group of its own).
        unsafe {
            if let Some(pid) = session {
                libc::kill(-pid, libc::SIGKILL);
            }
            libc::kill(-leader_pid, libc::SIGKILL);
        }
        let _ = other.kill();
        let _ = leader.wait();
        let _ = other.wait();
        let _ = std::fs::remove_dir_all(&out);
        set_affinity(0, &split.allowed);
        if let Err(e) = result {
            panic!("{e}");
        }
    }
}
