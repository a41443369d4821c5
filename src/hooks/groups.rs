//! The lifetime of host hooks' process groups, in one place.
//!
//! Every host hook leads a process group of its own. From its start until
//! that group is empty, antimony keeps track of it:
//! - **registered** with the guardian (`guardian.rs`), which kills every
//!   registered group should antimony die without saying goodbye; the hook's
//!   child fills its slot in itself before it executes the hook;
//! - **held**: a hook that exits while something still holds its output is
//!   left unreaped (a zombie keeps its number, so no other group can take it
//!   while antimony or the guardian may signal it) until its group has ended;
//! - **watched** once the hook itself has ended: a background (attached or
//!   started) hook's group is ended with the sandbox — SIGTERM, then SIGKILL
//!   after the grace — and a foreground hook's is left alone but watched,
//!   both until they are empty (zombies do not count: see `group_alive`);
//! - **forgotten** when empty: unregistered, its leader reaped.

use std::sync::atomic::AtomicI32;
use std::time::{Duration, Instant};

use super::guardian::Guardian;
use crate::procfs::stat_field;

/// The process groups of one run's host hooks, and the guardian.
#[derive(Debug, Default)]
pub struct Groups {
    /// Kills registered process groups if antimony dies.
    guardian: Option<Guardian>,
    /// Whether the guardian was started (or tried): once, before the first
    /// hook on the host.
    guardian_tried: bool,
    /// Groups of ended background hooks that still have members: ended
    /// with the sandbox.
    background: Vec<libc::pid_t>,
    /// Groups of ended foreground hooks: left alone, but watched.
    lingering: Vec<libc::pid_t>,
    /// Groups whose leader (the hook's own process) is left unreaped until
    /// the group has ended (`Task::reap`).
    zombie_leaders: Vec<libc::pid_t>,
    /// When `prune` last read /proc.
    last_scan: Option<Instant>,
}

impl Groups {
    /// Starts the guardian, before the first hook on the host (not before:
    /// only a host hook needs it, and for a profile whose host hooks are
    /// trailing attached ones its start then costs nothing on the way to
    /// the program). A warning when it cannot be started.
    pub fn guard(&mut self, warnings: &mut Vec<String>) {
        if !std::mem::replace(&mut self.guardian_tried, true) {
            self.guardian = Guardian::start();
            if self.guardian.is_none() {
                warnings.push(
                    "the guardian could not be started: should antimony be killed, what hooks started may survive".into(),
                );
            }
        }
    }

    /// A slot in the guardian's table for a hook about to start.
    pub fn reserve(&self) -> Option<&AtomicI32> {
        self.guardian.as_ref().and_then(Guardian::reserve)
    }

    /// A helper antimony started on the host that leads a process group of
    /// its own (pasta): registered with the guardian like a hook's group
    /// (from its start until `forget_helper`, it is killed should antimony
    /// die).
    pub fn watch_helper(&mut self, pgid: libc::pid_t, warnings: &mut Vec<String>) {
        self.guard(warnings);
        if let Some(slot) = self.reserve() {
            slot.store(pgid, std::sync::atomic::Ordering::Release);
        }
    }

    /// The helper has ended.
    pub fn forget_helper(&mut self, pgid: libc::pid_t) {
        if let Some(g) = &self.guardian {
            g.remove(pgid);
        }
    }

    /// A reserved slot whose hook did not start.
    pub fn release(&self, slot: &AtomicI32) {
        if let Some(g) = &self.guardian {
            g.release(slot);
        }
    }

    /// A host hook has ended: what its group becomes. `leader_unreaped`:
    /// its process is held as a zombie; `foreground`: its group is left
    /// alone rather than ended with the sandbox.
    pub fn hook_ended(
        &mut self,
        pg: libc::pid_t,
        leader_unreaped: bool,
        alive: bool,
        foreground: bool,
    ) {
        if leader_unreaped {
            self.zombie_leaders.push(pg);
        }
        if !alive {
            self.forget(pg);
        } else if foreground {
            self.lingering.push(pg);
        } else {
            self.background.push(pg);
        }
    }

    /// A group has ended: the guardian forgets it, then its leader, if it
    /// was held as a zombie, is reaped (its number is free).
    fn forget(&mut self, pg: libc::pid_t) {
        if let Some(g) = &self.guardian {
            g.remove(pg);
        }
        if let Some(i) = self.zombie_leaders.iter().position(|&z| z == pg) {
            self.zombie_leaders.swap_remove(i);
            reap_leader(pg);
        }
    }

    /// Forgets the groups that have emptied. A group that kill(-pgid, 0)
    /// still finds may hold zombies only; that is looked up in /proc at
    /// most every 100 ms (a group whose members write all the time wakes
    /// the event loop for every write).
    pub fn prune(&mut self) {
        let look = self
            .last_scan
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        let mut looked = false;
        let mut ended = Vec::new();
        for list in [&mut self.background, &mut self.lingering] {
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
            self.last_scan = Some(Instant::now());
        }
        for pg in ended {
            self.forget(pg);
        }
    }

    /// Whether no background group is left to end.
    pub fn background_ended(&self) -> bool {
        self.background.is_empty()
    }

    /// The sandbox has ended: SIGTERM to every background group (those
    /// that ended unnoticed are forgotten first, not signalled).
    pub fn terminate_background(&mut self) {
        self.prune();
        for pg in &self.background {
            // SAFETY: signalling a process group antimony started (held
            // or watched, so its number is still the hook's).
            unsafe { libc::kill(-*pg, libc::SIGTERM) };
        }
    }

    /// The grace is over: SIGKILL to the background groups left.
    pub fn kill_background(&mut self) {
        for pg in std::mem::take(&mut self.background) {
            // SAFETY: as in `terminate_background`.
            unsafe { libc::kill(-pg, libc::SIGKILL) };
            self.forget(pg);
        }
    }

    /// A normal end, and no hook runs any more: the guardian leaves what
    /// foreground hooks left running alone, and exits (it is reaped when
    /// `Groups` is dropped).
    pub fn retire(&mut self) {
        if let Some(g) = &mut self.guardian {
            g.retire();
        }
    }
}

/// Reaps the ended process `pid` (a hook's, left unreaped by `Task::reap`);
/// its number is then free.
pub fn reap_leader(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waitpid on our own child, which has ended, into a local.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
}

/// Whether a process group still has a member that has not ended.
/// kill(-pgid, 0) alone counts zombies too: a hook's child orphaned when
/// the hook died is reparented to init (or the nearest subreaper) and stays
/// a zombie, still in the group, until that process reaps it — at once
/// under systemd, a second or more later under some PID 1s, never under
/// one that does not reap. Only when kill says the group has members are
/// they looked at in /proc (`live_member`).
pub fn group_alive(pgid: libc::pid_t) -> bool {
    group_has_members(pgid) && live_member(pgid)
}

/// Whether any process, a zombie included, is in the group.
pub fn group_has_members(pgid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

/// Whether a process of the group that has not ended is in /proc: every
/// process's `stat` is read, about 0.5 ms on a desktop's few hundred
/// processes (callers that ask often space it out: `Groups::prune`).
pub fn live_member(pgid: libc::pid_t) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    let mut path = String::with_capacity(32);
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        path.clear();
        path.push_str("/proc/");
        path.push_str(pid);
        path.push_str("/stat");
        let Ok(stat) = std::fs::read(&path) else {
            continue;
        };
        // The command name may not be UTF-8; the fields after it are.
        let stat = String::from_utf8_lossy(&stat);
        let state = stat_field(&stat, 3).unwrap_or("Z");
        let pgrp = stat_field(&stat, 5).and_then(|p| p.parse::<libc::pid_t>().ok());
        if pgrp == Some(pgid) && state != "Z" && state != "X" {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    fn group_leader(script: &str) -> std::process::Child {
        Command::new("/bin/sh")
            .args(["-c", script])
            .process_group(0)
            .spawn()
            .unwrap()
    }

    /// Waits until /proc says the process has ended (Z), not reaped.
    fn until_zombie(pid: libc::pid_t) {
        let stat = format!("/proc/{pid}/stat");
        for _ in 0..500 {
            let s = std::fs::read_to_string(&stat).unwrap();
            if stat_field(&s, 3) == Some("Z") {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{pid} did not end");
    }

    /// A group whose only member is a zombie (ended, not yet reaped: as an
    /// orphan waits for a slow or absent reaper) has no member left, though
    /// kill(-pgid, 0) still succeeds; a running member is one.
    #[test]
    fn a_zombie_is_not_a_member() {
        let mut child = group_leader("exec sleep 30");
        let pg = child.id() as libc::pid_t;
        assert!(group_alive(pg));
        child.kill().unwrap();
        until_zombie(pg);
        // SAFETY: signal 0 only checks for existence.
        let counted = unsafe { libc::kill(-pg, 0) };
        assert_eq!(counted, 0, "the zombie counts for kill");
        assert!(!group_alive(pg));
        child.wait().unwrap();
        assert!(!group_alive(pg));
    }

    /// A background group is ended with the sandbox (SIGTERM, then SIGKILL
    /// for one that ignores it), a foreground one only watched; a held
    /// leader is reaped once its group is forgotten. Real processes, no
    /// privileges, no guardian.
    #[test]
    fn background_groups_end_foreground_ones_are_watched() {
        let mut groups = Groups::default();
        let mut stubborn = group_leader("trap '' TERM; while :; do sleep 0.05; done");
        let mut polite = group_leader("exec sleep 30");
        let mut watched = group_leader("exec sleep 30");
        let (s, p, w) = (
            stubborn.id() as libc::pid_t,
            polite.id() as libc::pid_t,
            watched.id() as libc::pid_t,
        );
        // The shell needs a moment to ignore SIGTERM.
        std::thread::sleep(Duration::from_millis(100));
        groups.hook_ended(s, false, true, false);
        groups.hook_ended(p, false, true, false);
        groups.hook_ended(w, false, true, true);
        assert!(!groups.background_ended());
        groups.terminate_background();
        // The polite one ends; the stubborn one does not.
        polite.wait().unwrap();
        groups.last_scan = None;
        groups.prune();
        assert_eq!(groups.background, vec![s]);
        groups.kill_background();
        assert!(groups.background_ended());
        stubborn.wait().unwrap();
        // The foreground one was never signalled.
        assert!(group_alive(w));
        assert_eq!(groups.lingering, vec![w]);
        // A held leader: forgotten (and reaped by `Groups`) once it ended.
        groups.zombie_leaders.push(w);
        watched.kill().unwrap();
        until_zombie(w);
        groups.last_scan = None;
        groups.prune();
        assert!(groups.lingering.is_empty() && groups.zombie_leaders.is_empty());
        // Reaped by `forget`: nothing is left to wait for.
        assert!(watched.try_wait().is_err());
    }
}
