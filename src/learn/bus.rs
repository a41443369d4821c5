//! What the program asked of the session bus, from the proxy's log
//! (`xdg-dbus-proxy --filter --log`). Each call is logged as
//! `C12: -> DESTINATION call INTERFACE.METHOD at PATH`, and each call the
//! policy filtered on a name it carries (`RequestName`, `GetNameOwner`…)
//! as `Filtering message due to arg0 NAME, policy: P (required R)`, with
//! R the level the call needed: 1 see, 2 talk, 3 own.

use std::collections::BTreeSet;

/// The bus names a program used, by the level it needed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub see: BTreeSet<String>,
    pub talk: BTreeSet<String>,
    pub own: BTreeSet<String>,
}

impl Names {
    pub fn is_empty(&self) -> bool {
        self.see.is_empty() && self.talk.is_empty() && self.own.is_empty()
    }

    /// The names in `self` that `other` does not grant at their level.
    pub fn beyond(&self, other: &Names) -> Names {
        let own: BTreeSet<String> = self.own.difference(&other.own).cloned().collect();
        let talk: BTreeSet<String> = self
            .talk
            .iter()
            .filter(|n| !other.talk.contains(*n) && !other.own.contains(*n))
            .cloned()
            .collect();
        let see = self
            .see
            .iter()
            .filter(|n| {
                !other.see.contains(*n) && !other.talk.contains(*n) && !other.own.contains(*n)
            })
            .cloned()
            .collect();
        Names { see, talk, own }
    }

    pub fn add(&mut self, other: &Names) {
        self.see.extend(other.see.iter().cloned());
        self.talk.extend(other.talk.iter().cloned());
        self.own.extend(other.own.iter().cloned());
    }

    /// Each name at the highest level it needed only.
    pub fn tidy(&mut self) {
        let own = self.own.clone();
        self.talk.retain(|n| !own.contains(n));
        let talk = self.talk.clone();
        self.see.retain(|n| !own.contains(n) && !talk.contains(n));
    }
}

/// A well-known name (not `:1.42`, not the bus itself).
fn well_known(name: &str) -> bool {
    !name.starts_with(':')
        && name != "org.freedesktop.DBus"
        && name.contains('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub fn parse(log: &str) -> Names {
    let mut names = Names::default();
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix("Filtering message due to arg0 ") {
            let Some((name, tail)) = rest.split_once(',') else {
                continue;
            };
            let required = tail
                .rsplit_once("(required ")
                .and_then(|(_, r)| r.trim_end_matches(')').trim().parse::<u32>().ok());
            if !well_known(name) {
                continue;
            }
            let set = match required {
                Some(3..) => &mut names.own,
                Some(2) => &mut names.talk,
                _ => &mut names.see,
            };
            set.insert(name.to_string());
            continue;
        }
        // C12: -> DEST call ...
        let Some((head, rest)) = line.split_once(": -> ") else {
            continue;
        };
        if !head.starts_with('C') {
            continue;
        }
        let mut words = rest.split_whitespace();
        if let (Some(dest), Some("call")) = (words.next(), words.next()) {
            if well_known(dest) {
                names.talk.insert(dest.to_string());
            }
        }
    }
    names.tidy();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_proxy_log() {
        let log = "C1: -> org.freedesktop.DBus call org.freedesktop.DBus.Hello at /org/freedesktop/DBus\n\
B1: <- org.freedesktop.DBus return from C1\n\
C2: -> org.freedesktop.Notifications call org.freedesktop.Notifications.Notify at /x\n\
*HIDDEN* (ping)\n\
C3: -> org.freedesktop.DBus call org.freedesktop.DBus.RequestName at /org/freedesktop/DBus\n\
Filtering message due to arg0 org.xfce.mousepad, policy: 0 (required 3)\n\
Filtering message due to arg0 org.gtk.vfs.Daemon, policy: 0 (required 1)\n\
C4: -> :1.5 call a.b at /\n";
        let n = parse(log);
        assert_eq!(n.own.iter().collect::<Vec<_>>(), ["org.xfce.mousepad"]);
        assert_eq!(
            n.talk.iter().collect::<Vec<_>>(),
            ["org.freedesktop.Notifications"]
        );
        assert_eq!(n.see.iter().collect::<Vec<_>>(), ["org.gtk.vfs.Daemon"]);
        let granted = Names {
            talk: ["org.freedesktop.Notifications".to_string()].into(),
            ..Names::default()
        };
        let more = n.beyond(&granted);
        assert!(more.talk.is_empty());
        assert_eq!(more.own.len(), 1);
    }
}
