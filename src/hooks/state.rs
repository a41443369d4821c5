//! Hook state (Razor's hook `config` updates): a hook may print
//! `{"state": {"update": {...}, "remove": [...]}}` on stdout; antimony keeps
//! the state per profile and hook under `$XDG_STATE_HOME/antimony/state/`
//! and hands it back in the hook's JSON input next time.
//!
//! Runs of the same hook are serialized across concurrent instances by an
//! exclusive `flock` on `KEY.lock`, held from reading the state until the
//! update is written, so that no update is lost.
//!
//! Hooks inside the sandbox keep theirs apart, under `inside/` (their key
//! is `inside/NAME`, see `plan::inside_state_key`): what the sandbox writes
//! is never what a host hook of the same name reads.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// What the run does with hooks' state: updates applied under their lock,
/// those that wait for a lock another run holds, and the one warning when
/// the state (or the run's record) cannot be kept. Warnings go to the
/// run's list, in the order they happen.
#[derive(Debug)]
pub struct Writer {
    store: StateStore,
    /// Updates of hooks that did not hold their lock, waiting for it.
    pending: Vec<(String, Change)>,
    /// Whether the storage warning was given (once per run: hooks and the
    /// run go on without records or state).
    warned: bool,
}

impl Writer {
    pub fn new(store: StateStore) -> Writer {
        Writer {
            store,
            pending: Vec::new(),
            warned: false,
        }
    }

    /// The state a hook is handed.
    pub fn read(&self, key: &str) -> Map<String, Value> {
        self.store.read(key)
    }

    /// Says, once per run, that something antimony keeps on disk is not
    /// kept.
    pub fn storage_warning(&mut self, w: String, warnings: &mut Vec<String>) {
        if !std::mem::replace(&mut self.warned, true) {
            warnings.push(w);
        }
    }

    /// The hook's lock if it is free.
    pub fn try_lock(&mut self, key: &str, warnings: &mut Vec<String>) -> Locked {
        match self.store.try_lock(key) {
            Ok(Some(lock)) => Locked::Held(lock),
            Ok(None) => Locked::Busy,
            Err(e) => {
                let w = format!("hook state is not kept: {}", crate::error::io_text(&e));
                self.storage_warning(w, warnings);
                Locked::Unkept
            }
        }
    }

    /// A hook's change: applied now under the lock it held, or, for a hook
    /// that did not read its state, when its lock is free (meanwhile the
    /// update waits and the event loop goes on: `apply_pending`).
    pub fn update(
        &mut self,
        key: &str,
        change: Change,
        lock: Option<Lock>,
        warnings: &mut Vec<String>,
    ) {
        match lock {
            Some(lock) => self.apply(key, &change, lock, warnings),
            None => self.pending.push((key.to_string(), change)),
        }
    }

    fn apply(&mut self, key: &str, change: &Change, _lock: Lock, warnings: &mut Vec<String>) {
        if let Err(e) = self.store.apply(key, change) {
            let w = format!("hook state is not kept: {}", crate::error::io_text(&e));
            self.storage_warning(w, warnings);
        }
    }

    /// Whether updates wait for a lock.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Applies the waiting updates whose lock is free. `last`: the run is
    /// over; wait up to 10 s for locks others hold, then say what was not
    /// kept.
    pub fn apply_pending(&mut self, last: bool, warnings: &mut Vec<String>) {
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mut waiting = Vec::new();
            for (key, change) in std::mem::take(&mut self.pending) {
                match self.try_lock(&key, warnings) {
                    Locked::Held(lock) => self.apply(&key, &change, lock, warnings),
                    Locked::Busy => waiting.push((key, change)),
                    Locked::Unkept => {}
                }
            }
            self.pending = waiting;
            if !last || self.pending.is_empty() {
                return;
            }
            if std::time::Instant::now() >= give_up {
                for (key, _) in std::mem::take(&mut self.pending) {
                    let w = format!(
                        "hook state is not kept: another run held the lock of `{key}` for 10 s"
                    );
                    self.storage_warning(w, warnings);
                }
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// What `Writer::try_lock` found.
#[derive(Debug)]
pub enum Locked {
    Held(Lock),
    /// Another run holds it.
    Busy,
    /// The state cannot be kept (said once).
    Unkept,
}

#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

/// Holds the hook's lock until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// A hook's requested change to its state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    pub update: Map<String, Value>,
    pub remove: Vec<String>,
}

impl StateStore {
    pub fn new(state_home: &std::path::Path, profile: &str) -> StateStore {
        StateStore {
            dir: state_home.join("antimony/state").join(profile),
        }
    }

    /// The folder of `key`'s files (`inside/` for a hook inside), made
    /// if missing.
    fn ensure_dir(&self, key: &str) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = match Path::new(key).parent() {
            Some(sub) => self.dir.join(sub),
            None => self.dir.clone(),
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }

    /// Takes the hook's lock if no other instance holds it (`None`: one
    /// does). antimony never blocks on it: its event loop keeps serving
    /// the sandbox, and tries again.
    pub fn try_lock(&self, key: &str) -> std::io::Result<Option<Lock>> {
        self.ensure_dir(key)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(format!("{key}.lock")))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Some(Lock { _file: file }));
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => Ok(None),
            _ => Err(e),
        }
    }

    /// The hook's saved state (empty when there is none or it is unreadable).
    pub fn read(&self, key: &str) -> Map<String, Value> {
        std::fs::read(self.dir.join(format!("{key}.json")))
            .ok()
            .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok())
            .unwrap_or_default()
    }

    /// Applies a change to the current state (read again, so a change made
    /// meanwhile by an unserialized hook is kept) and writes it atomically.
    pub fn apply(&self, key: &str, change: &Change) -> std::io::Result<()> {
        self.ensure_dir(key)?;
        let mut state = self.read(key);
        for k in &change.remove {
            state.remove(k);
        }
        for (k, v) in &change.update {
            state.insert(k.clone(), v.clone());
        }
        // A full disk leaves the state before whole.
        crate::files::write_atomic(
            &self.dir.join(format!("{key}.json")),
            &serde_json::to_vec_pretty(&Value::Object(state)).unwrap_or_default(),
            0o600,
            true,
        )
    }
}

/// What a hook printed for antimony: a state change and/or an error message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub change: Option<Change>,
    pub error: Option<String>,
}

/// Reads one line of a hook's stdout as antimony's protocol: a JSON object
/// whose keys are only `state` and/or `error`. Anything else is output.
pub fn parse_reply(line: &[u8]) -> Option<Reply> {
    let text = std::str::from_utf8(line).ok()?.trim();
    if !text.starts_with('{') {
        return None;
    }
    let Value::Object(obj) = serde_json::from_str::<Value>(text).ok()? else {
        return None;
    };
    if obj.is_empty() || !obj.keys().all(|k| k == "state" || k == "error") {
        return None;
    }
    let mut reply = Reply::default();
    if let Some(state) = obj.get("state") {
        let mut change = Change::default();
        if let Some(Value::Object(u)) = state.get("update") {
            change.update = u.clone();
        }
        if let Some(Value::Array(r)) = state.get("remove") {
            change.remove = r
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
        }
        reply.change = Some(change);
    }
    if let Some(err) = obj.get("error") {
        reply.error = err
            .get("message")
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| err.as_str().map(String::from));
    }
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let r = parse_reply(br#"{"state": {"update": {"n": 2}, "remove": ["old"]}}"#).unwrap();
        let c = r.change.unwrap();
        assert_eq!(c.update["n"], 2);
        assert_eq!(c.remove, ["old"]);
        let r = parse_reply(br#"{"error": {"message": "no disk"}}"#).unwrap();
        assert_eq!(r.error.as_deref(), Some("no disk"));
        assert!(parse_reply(br#"{"other": 1}"#).is_none());
        assert!(parse_reply(b"hello").is_none());
    }

    #[test]
    fn the_writer_waits_for_a_lock_and_warns_once() {
        let dir = std::env::temp_dir().join(format!("antimony-writer-test-{}", std::process::id()));
        let other = StateStore::new(&dir, "p");
        let mut w = Writer::new(StateStore::new(&dir, "p"));
        let mut warnings = Vec::new();
        let mut c = Change::default();
        c.update.insert("n".into(), Value::from(1));
        // Another run holds the lock: the update waits.
        let held = other.try_lock("k").unwrap().expect("free");
        assert!(matches!(w.try_lock("k", &mut warnings), Locked::Busy));
        w.update("k", c.clone(), None, &mut warnings);
        w.apply_pending(false, &mut warnings);
        assert!(w.has_pending() && w.read("k").is_empty());
        drop(held);
        w.apply_pending(false, &mut warnings);
        assert!(!w.has_pending());
        assert_eq!(w.read("k")["n"], 1);
        // Under its own lock, at once.
        let Locked::Held(lock) = w.try_lock("j", &mut warnings) else {
            panic!("j's lock is free");
        };
        w.update("j", c.clone(), Some(lock), &mut warnings);
        assert_eq!(w.read("j")["n"], 1);
        assert!(warnings.is_empty());
        // State that cannot be kept: said once, whatever fails after.
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::write(&dir, "a file where the folder was").unwrap();
        assert!(matches!(w.try_lock("k", &mut warnings), Locked::Unkept));
        w.update("k", c.clone(), None, &mut warnings);
        w.apply_pending(true, &mut warnings);
        w.storage_warning("the run record was not written".into(), &mut warnings);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("hook state is not kept: "));
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn apply_and_read() {
        let dir = std::env::temp_dir().join(format!("antimony-state-test-{}", std::process::id()));
        let store = StateStore::new(&dir, "p");
        let _lock = store.try_lock("k").unwrap().expect("free");
        // Another open of the lock file (another instance) finds it taken.
        assert!(store.try_lock("k").unwrap().is_none());
        let mut c = Change::default();
        c.update.insert("a".into(), Value::from(1));
        store.apply("k", &c).unwrap();
        let c2 = Change {
            update: Map::new(),
            remove: vec!["a".into()],
        };
        assert_eq!(store.read("k")["a"], 1);
        store.apply("k", &c2).unwrap();
        assert!(store.read("k").is_empty());
        // An inside hook's state is kept apart from a host hook's.
        let _inside = store.try_lock("inside/k").unwrap().expect("its own lock");
        store.apply("inside/k", &c).unwrap();
        assert_eq!(store.read("inside/k")["a"], 1);
        assert!(store.read("k").is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
