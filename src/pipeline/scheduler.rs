//! The hooks a run has going, and the order they start in.
//!
//! - `Slots`: every running hook's `Task` in a slot of its own (a finished
//!   one leaves its slot empty, reused by the next); the run polls them all.
//! - `Queue`: hooks that run one at a time alongside the program (the
//!   started hooks once it runs, the stopping hooks when it is to stop):
//!   the next one starts when the one before it has ended.
//!
//! Which hook runs in the foreground (the run waits for it) is the run's
//! business; what a hook's end means for the run is too (`pipeline`).

use std::collections::VecDeque;

use crate::hooks::task::Task;

/// Running hooks, each in a slot.
#[derive(Debug, Default)]
pub struct Slots {
    slots: Vec<Option<Task>>,
}

impl Slots {
    /// Puts a task in the first free slot; returns the slot.
    pub fn insert(&mut self, task: Task) -> usize {
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

    /// Takes a task out (its hook has ended).
    pub fn take(&mut self, slot: usize) -> Option<Task> {
        self.slots.get_mut(slot).and_then(Option::take)
    }

    pub fn get(&self, slot: usize) -> Option<&Task> {
        self.slots.get(slot).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, slot: usize) -> Option<&mut Task> {
        self.slots.get_mut(slot).and_then(Option::as_mut)
    }

    /// Whether the task in `slot` has ended (waiting to be taken out).
    pub fn is_done(&self, slot: usize) -> bool {
        self.get(slot).is_some_and(Task::is_done)
    }

    /// The slots in use, with their tasks.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Task)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, t)| Some((i, t.as_ref()?)))
    }

    pub fn tasks_mut(&mut self) -> impl Iterator<Item = &mut Task> {
        self.slots.iter_mut().flatten()
    }

    /// The slots in use, in order (a list: the run takes tasks out while it
    /// goes through them).
    pub fn used(&self) -> Vec<usize> {
        self.iter().map(|(i, _)| i).collect()
    }

    /// Whether no hook is running.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }
}

/// What a queue says to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// One of its hooks runs: wait for it.
    Busy,
    /// Start this hook.
    Start(usize),
    /// All of its hooks have run.
    Done,
}

/// Hooks that run one after another, by index in the plan.
#[derive(Debug, Default)]
pub struct Queue {
    pending: VecDeque<usize>,
    /// The slot of the one running.
    running: Option<usize>,
}

impl Queue {
    /// The hooks to run, in order (replacing any not yet started).
    pub fn load(&mut self, hooks: Vec<usize>) {
        self.pending = hooks.into();
    }

    /// Forgets the hooks not yet started.
    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// The next hook to start, if none of the queue's runs.
    pub fn next(&mut self) -> Next {
        if self.running.is_some() {
            return Next::Busy;
        }
        match self.pending.pop_front() {
            Some(idx) => Next::Start(idx),
            None => Next::Done,
        }
    }

    /// The hook `next` gave is running in `slot`.
    pub fn running_in(&mut self, slot: usize) {
        self.running = Some(slot);
    }

    /// The task in `slot` ended: whether it was the queue's.
    pub fn ended(&mut self, slot: usize) -> bool {
        let ours = self.running == Some(slot);
        if ours {
            self.running = None;
        }
        ours
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_runs_one_hook_at_a_time_in_order() {
        let mut q = Queue::default();
        assert_eq!(q.next(), Next::Done);
        q.load(vec![4, 7]);
        assert_eq!(q.next(), Next::Start(4));
        q.running_in(2);
        assert_eq!(q.next(), Next::Busy);
        assert!(!q.ended(3), "another slot's task is not the queue's");
        assert_eq!(q.next(), Next::Busy);
        assert!(q.ended(2));
        assert_eq!(q.next(), Next::Start(7));
        q.running_in(0);
        q.clear();
        assert!(q.ended(0));
        assert_eq!(q.next(), Next::Done);
    }

    #[test]
    fn cleared_hooks_never_start() {
        let mut q = Queue::default();
        q.load(vec![1, 2, 3]);
        assert_eq!(q.next(), Next::Start(1));
        q.running_in(5);
        q.clear();
        assert!(q.ended(5));
        assert_eq!(q.next(), Next::Done);
    }
}
