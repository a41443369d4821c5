//! Applies the Landlock model (`plan::landlock`).
//!
//! Before the fork, the `landlock` crate creates the ruleset (handled
//! rights and scopes). After the fork, once the new root is in place, the
//! child opens each rule's path (an `O_PATH` descriptor; rules attach to the
//! inode, so they hold for everything beneath), adds it with
//! `landlock_add_rule`, and finally calls `landlock_restrict_self`: raw
//! syscalls only, no allocation.
//!
//! Each process init starts (the program, every command `antimony enter`
//! runs, every inside hook) then enters a Landlock domain of its own,
//! nested in the sandbox's (`Prepared::own`): a layer that restricts
//! nothing more (it handles execution and reparenting only, and grants
//! both on the whole root) but that makes them strangers to each other.
//! The kernel lets a Landlocked process trace, read the memory of
//! (`/proc/PID/mem`), take descriptors from (`pidfd_getfd`, `/proc/PID/fd`)
//! or read the environment of only processes in its own domain or in one
//! nested in it (`ptrace_may_access`, Landlock's ptrace hook). In one
//! shared domain, all of the sandbox's processes run as one user and are
//! dumpable, so each could do all that to every other one: the program to
//! a command someone entered to type a password into, for one. Nested
//! domains keep each to its own descendants. Signals and abstract unix
//! sockets are scoped by the sandbox's layer alone, so those still reach
//! across (the program may signal an entered command and the other way
//! round).

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use landlock::{
    AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope,
};

use super::protocol::Step;
use super::sys::{self, Errno};
use crate::plan::LandlockPlan;

#[derive(Debug)]
pub struct Rule {
    pub path: CString,
    pub dir_access: u64,
    pub file_access: u64,
}

#[derive(Debug)]
pub struct Prepared {
    pub ruleset: OwnedFd,
    pub rules: Vec<Rule>,
    /// The ruleset of the domain each process init starts enters (see the
    /// module's comment), and the rights it handles.
    pub own: OwnedFd,
    pub own_access: u64,
}

/// What the nested domains handle: execution (ABI 1) and reparenting
/// (ABI 2; Landlock refuses it in every layer that does not handle it).
fn own_access(abi: i32) -> BitFlags<AccessFs> {
    if abi >= 2 {
        AccessFs::Execute | AccessFs::Refer
    } else {
        AccessFs::Execute.into()
    }
}

/// Creates the ruleset before the fork. The plan was built for the ABI the
/// kernel reports, so anything the kernel refuses here is an error rather
/// than a silent downgrade.
pub fn prepare(plan: &LandlockPlan) -> Result<Option<Prepared>, String> {
    if !plan.enforced() {
        return Ok(None);
    }
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(BitFlags::<AccessFs>::from_bits_truncate(plan.handled))
        .map_err(|e| e.to_string())?;
    if plan.scoped != 0 {
        ruleset = ruleset
            .scope(BitFlags::<Scope>::from_bits_truncate(plan.scoped))
            .map_err(|e| e.to_string())?;
    }
    if plan.handled_net != 0 {
        ruleset = ruleset
            .handle_access(BitFlags::<AccessNet>::from_bits_truncate(plan.handled_net))
            .map_err(|e| e.to_string())?;
    }
    let mut created = ruleset.create().map_err(|e| e.to_string())?;
    // Port rules name no file: they are added here, before the fork.
    for &(port, access) in &plan.ports {
        created = created
            .add_rule(NetPort::new(
                port,
                BitFlags::<AccessNet>::from_bits_truncate(access),
            ))
            .map_err(|e| format!("the rule for port {port}: {e}"))?;
    }
    let fd: Option<OwnedFd> = created.into();
    let ruleset = fd.ok_or("the kernel refused to create a Landlock ruleset")?;
    let own_access = own_access(plan.abi);
    let own: Option<OwnedFd> = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(own_access)
        .and_then(|r| r.create())
        .map_err(|e| e.to_string())?
        .into();
    let own = own.ok_or("the kernel refused to create a Landlock ruleset")?;
    let rules = plan
        .rules
        .iter()
        .map(|r| {
            Ok(Rule {
                path: CString::new(r.path.as_os_str().as_encoded_bytes())
                    .map_err(|_| format!("the rule for {} holds a NUL byte", r.path.display()))?,
                dir_access: r.dir_access,
                file_access: r.file_access,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(Some(Prepared {
        ruleset,
        rules,
        own,
        own_access: own_access.bits(),
    }))
}

/// `struct landlock_path_beneath_attr`: packed in the kernel's ABI.
#[repr(C, packed)]
struct PathBeneath {
    allowed_access: u64,
    parent_fd: i32,
}

const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;

fn add_rule(ruleset: RawFd, fd: RawFd, access: u64) -> Result<(), Errno> {
    let attr = PathBeneath {
        allowed_access: access,
        parent_fd: fd,
    };
    // SAFETY: attr is a valid landlock_path_beneath_attr for the duration of
    // the call; the descriptors are ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const PathBeneath,
            0u32,
        )
    };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// After the fork: add every rule, then restrict this process (and all it
/// will start). Needs `no_new_privs` (set before).
pub fn apply(p: &Prepared) -> Result<(), (Step, u32, Errno)> {
    let rs = p.ruleset.as_raw_fd();
    for (i, rule) in p.rules.iter().enumerate() {
        let fd = match sys::open(&rule.path, libc::O_PATH | libc::O_CLOEXEC, 0) {
            Ok(fd) => fd,
            // An optional bind that was skipped.
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err((Step::LandlockRule, i as u32, e)),
        };
        let access = match sys::fstat_is_dir(fd) {
            Ok(true) => rule.dir_access,
            Ok(false) => rule.file_access,
            Err(e) => {
                sys::close(fd);
                return Err((Step::LandlockRule, i as u32, e));
            }
        };
        let r = if access == 0 {
            Ok(())
        } else {
            add_rule(rs, fd, access)
        };
        sys::close(fd);
        r.map_err(|e| (Step::LandlockRule, i as u32, e))?;
    }
    restrict_self(rs).map_err(|e| (Step::LandlockRestrict, 0, e))?;
    sys::close(rs);
    // The nested domains' one rule: everything beneath the root.
    let root = sys::open(c"/", libc::O_PATH | libc::O_CLOEXEC, 0)
        .map_err(|e| (Step::LandlockRestrict, 0, e))?;
    let r = add_rule(p.own.as_raw_fd(), root, p.own_access);
    sys::close(root);
    r.map_err(|e| (Step::LandlockRestrict, 0, e))
}

/// Restricts this process (and all it will start) with `ruleset`: the
/// sandbox's, or (`Prepared::own`) a domain of its own within it. Needs
/// `no_new_privs`. A system call only.
pub fn restrict_self(ruleset: RawFd) -> Result<(), Errno> {
    // SAFETY: landlock_restrict_self takes a ruleset descriptor and flags.
    let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}
