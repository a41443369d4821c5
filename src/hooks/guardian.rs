//! The guardian: a small process started just before a run's first hook
//! on the host, which outlives antimony for one purpose — if antimony
//! dies without saying goodbye (SIGKILL, a crash), it kills every hook's
//! process group antimony told it about, so that nothing a hook started
//! survives.
//!
//! Why it is needed: nothing else ends a hook with antimony (a parent-death
//! signal ends the hook's own process only, not what it started; one
//! dropped to another user has it), and the sandbox needs no help (its
//! init's death takes the whole PID namespace with it). Every host hook
//! leads a process group of its own, which is registered here when the
//! hook starts and unregistered once the group has ended (a store into a
//! table in the memory the two share, read by the guardian only once
//! antimony is gone: no message, no wake-up of the guardian per hook). A
//! hook that exits while something still holds its output (a child it
//! left) is left unreaped until then (`Task::reap` reads its status with
//! WNOWAIT): a zombie keeps its number, so no other process group can have
//! it while antimony or the guardian may signal it (with pid_max 32768, as here,
//! numbers come round again within minutes). A hook whose children all
//! closed its output is reaped at once; the members left hold the number.
//!
//! No gap: the hook's child registers itself, before it executes the hook
//! (`hooks::spawn`): antimony reserves a slot, the child stores its PID in
//! it, then checks that antimony is still its parent. Killed before that
//! check, antimony leaves a child that exits instead of executing the
//! hook; killed after it, the guardian's sweep (which begins only once
//! antimony is gone) finds the PID.
//!
//! The guardian shares antimony's memory (`clone(CLONE_VM)`, as a hook's
//! child does) instead of being a fork: a fork copies antimony's page
//! tables, and every page antimony writes afterwards is copied once more,
//! which cost about 0.3 ms per launch; a CLONE_VM child costs a stack. It
//! runs on that stack of its own, holds only the read end of its pipe, is
//! in a process group of its own (a terminal's ^C is not for it), blocks
//! every signal it can, and makes raw syscalls only (`raw`): not even
//! errno is written, since its errno is antimony's own thread-local word.
//! If antimony dies, the memory lives on until the guardian has exited.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// How many process groups it watches at once; more are not watched.
const MAX_GROUPS: usize = 1024;

/// antimony ends normally: nothing to kill (the one message on the pipe).
const DONE: u8 = 3;

/// A slot taken for a hook that has not stored its PID yet.
const RESERVED: i32 = -1;

/// The guardian's mapping: 64 KiB. The lowest two pages hold `Shared`,
/// the next is a guard page, the rest is its stack (it needs about 5 KiB).
const STACK: usize = 64 * 1024;
const PAGE: usize = 4096;

/// What antimony and the guardian share, in the guardian's mapping: the
/// pipe's read end, and the process groups to kill (0: a free slot).
/// Only antimony writes the table (one thread); the guardian reads it once
/// antimony is gone, when every store antimony made is complete.
#[repr(C)]
struct Shared {
    pipe: usize,
    groups: [AtomicI32; MAX_GROUPS],
}
const _: () = assert!(std::mem::size_of::<Shared>() <= 2 * PAGE);

#[derive(Debug)]
pub struct Guardian {
    pipe: OwnedFd,
    pid: libc::pid_t,
    stack: *mut libc::c_void,
    /// In the mapping: the table of groups.
    shared: *mut Shared,
    /// Told that antimony ends normally (it has left, or is leaving).
    retired: bool,
}

impl Guardian {
    /// Starts the guardian. `None` if it could not be started (the run
    /// goes on without it; a warning says so).
    pub fn start() -> Option<Guardian> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 fills a two-element array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return None;
        }
        let [r, w] = fds;
        // SAFETY: owned from here: closed on every path below.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(r), OwnedFd::from_raw_fd(w)) };
        // SAFETY: a fresh anonymous mapping, ours alone.
        let stack = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if stack == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: the page below the stack, in the mapping just made; an
        // overflow faults there instead of writing into `Shared` or
        // antimony's memory.
        unsafe {
            libc::mprotect(
                stack.cast::<u8>().add(2 * PAGE).cast(),
                PAGE,
                libc::PROT_NONE,
            )
        };
        // The start of the fresh mapping: zeroed, page aligned, ours
        // alone, and big enough (asserted above); all zeros is a valid
        // `Shared` (atomics are plain integers in memory).
        let shared = stack.cast::<Shared>();
        // SAFETY: as above; the guardian does not exist yet.
        unsafe { (&raw mut (*shared).pipe).write(r.as_raw_fd() as usize) };
        // Every signal blocked across the clone, so that the guardian
        // starts with all of them blocked: antimony's handlers (which set
        // flags in memory the guardian shares) never run in it, not even
        // before it blocks them itself.
        let blocked = crate::signals::block_all();
        // SAFETY: the child runs `guardian_main` on its own stack (the top
        // of the mapping, 16-byte aligned) and makes raw syscalls only: it
        // touches no memory antimony uses but `Shared`, in its own mapping
        // (atomics, which antimony writes and it reads). Without
        // CLONE_FILES and CLONE_SIGHAND its descriptor table and signal
        // dispositions are copies. The mapping is unmapped only once the
        // child has been reaped (`Drop`).
        let pid = unsafe {
            libc::clone(
                guardian_main,
                stack.cast::<u8>().add(STACK).cast(),
                libc::CLONE_VM | libc::SIGCHLD,
                shared.cast(),
            )
        };
        drop(blocked);
        if pid < 0 {
            // SAFETY: the mapping made above; no child uses it.
            unsafe { libc::munmap(stack, STACK) };
            return None;
        }
        // Our copy of the read end closes here; the guardian has its own.
        drop(r);
        Some(Guardian {
            pipe: w,
            pid,
            stack,
            shared,
            retired: false,
        })
    }

    fn groups(&self) -> &[AtomicI32; MAX_GROUPS] {
        // SAFETY: `shared` points into our mapping, alive as long as self.
        unsafe { &(*self.shared).groups }
    }

    /// A slot of the table for a hook about to start: its child stores
    /// its own PID (its process group's number) there before it executes
    /// the hook (`hooks::spawn`). `None` when the table is full (the hook
    /// is not watched).
    pub fn reserve(&self) -> Option<&AtomicI32> {
        let slot = self
            .groups()
            .iter()
            .find(|g| g.load(Ordering::Relaxed) == 0)?;
        // Taken, but nothing to kill yet (the sweep skips numbers below 2).
        slot.store(RESERVED, Ordering::Relaxed);
        Some(slot)
    }

    /// A reserved slot whose hook did not start (its child, if it stored
    /// its PID before failing, has been reaped).
    pub fn release(&self, slot: &AtomicI32) {
        slot.store(0, Ordering::Release);
    }

    /// The group is empty: stop watching it.
    pub fn remove(&self, pgid: libc::pid_t) {
        if let Some(slot) = self
            .groups()
            .iter()
            .find(|g| g.load(Ordering::Relaxed) == pgid)
        {
            slot.store(0, Ordering::Release);
        }
    }

    /// antimony ends normally: the guardian leaves without killing. It
    /// is told as soon as no hook can run any more, and reaped when it is
    /// dropped: in between, antimony does its last work (the run record,
    /// the instance's files) while the guardian exits, instead of
    /// waiting for it (a wake-up of another process and its exit: about
    /// 0.1 ms on a launch with a hook).
    pub fn retire(&mut self) {
        if !std::mem::replace(&mut self.retired, true) {
            let done = DONE;
            // SAFETY: a one-byte write from a local.
            unsafe { libc::write(self.pipe.as_raw_fd(), (&raw const done).cast(), 1) };
        }
    }
}

/// Any normal end of antimony's run (an error included): the guardian
/// leaves without killing, and antimony reaps it, so no zombie is left for
/// init. Only a death that skips this (SIGKILL, a crash) sets it off.
impl Drop for Guardian {
    fn drop(&mut self) {
        self.retire();
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child, which exits on DONE.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::__WALL) };
            if r == self.pid {
                // SAFETY: the guardian is gone: nothing runs on its stack.
                unsafe { libc::munmap(self.stack, STACK) };
                return;
            }
            if r < 0 && nix::errno::Errno::last() != nix::errno::Errno::EINTR {
                // Not reaped: its stack stays mapped (64 KiB until exit).
                return;
            }
        }
    }
}

/// The guardian's life: its pipe moved to descriptor 3, everything else
/// closed (stdio pointed at /dev/null, so it holds none of antimony's
/// pipes open), then it waits.
extern "C" fn guardian_main(arg: *mut libc::c_void) -> libc::c_int {
    const PIPE: usize = 3;
    // SAFETY: `arg` is the `Shared` in this process's own mapping, set
    // before the clone; the pipe number is not written again.
    let shared = unsafe { &*arg.cast::<Shared>() };
    let r = shared.pipe;
    // SAFETY: raw syscalls with integer arguments or pointers to static
    // strings and stack buffers.
    unsafe {
        if r != PIPE {
            raw::syscall(libc::SYS_dup3, [r, PIPE, 0, 0]);
        }
        raw::syscall(libc::SYS_close_range, [PIPE + 1, u32::MAX as usize, 0, 0]);
        let null = raw::syscall(
            libc::SYS_openat,
            [
                libc::AT_FDCWD as usize,
                c"/dev/null".as_ptr() as usize,
                libc::O_RDWR as usize,
                0,
            ],
        );
        if null >= 0 {
            for fd in 0..3 {
                if null as usize != fd {
                    raw::syscall(libc::SYS_dup3, [null as usize, fd, 0, 0]);
                }
            }
            if null as usize > PIPE {
                raw::syscall(libc::SYS_close, [null as usize, 0, 0, 0]);
            }
        }
        raw::syscall(libc::SYS_setpgid, [0, 0, 0, 0]);
        raw::syscall(
            libc::SYS_prctl,
            [
                libc::PR_SET_NAME as usize,
                c"antimony-guard".as_ptr() as usize,
                0,
                0,
            ],
        );
        // No signal is for it (SIGKILL cannot be blocked): not a
        // terminal's, not its caller's.
        let all: u64 = !0;
        raw::syscall(
            libc::SYS_rt_sigprocmask,
            [
                libc::SIG_BLOCK as usize,
                &raw const all as usize,
                0,
                std::mem::size_of::<u64>(),
            ],
        );
    }
    sweep_when_orphaned(PIPE, &shared.groups)
}

/// Waits until antimony is gone; kills what is registered unless antimony
/// said it was done.
fn sweep_when_orphaned(fd: usize, groups: &[AtomicI32; MAX_GROUPS]) -> ! {
    let mut buf = [0u8; 8];
    loop {
        // SAFETY: reading into a stack buffer.
        let n = unsafe {
            raw::syscall(
                libc::SYS_read,
                [fd, buf.as_mut_ptr() as usize, buf.len(), 0],
            )
        };
        if n == -(libc::EINTR as isize) {
            continue;
        }
        if n > 0 && buf[0] == DONE {
            raw::exit();
        }
        if n <= 0 {
            // End of file: antimony died (or an error, as good as that).
            break;
        }
    }
    // antimony died: its stores into the table are all complete.
    for g in groups
        .iter()
        .map(|g| g.load(Ordering::Acquire))
        .filter(|g| *g > 1)
    {
        // SAFETY: kill with integers.
        unsafe {
            raw::syscall(
                libc::SYS_kill,
                [(-g) as isize as usize, libc::SIGKILL as usize, 0, 0],
            )
        };
    }
    raw::exit()
}

/// System calls without the C library: the result, or minus the errno.
mod raw {
    /// # Safety
    /// As for the system call `n` with these arguments.
    #[cfg(target_arch = "x86_64")]
    pub unsafe fn syscall(n: libc::c_long, a: [usize; 4]) -> isize {
        let ret: isize;
        // SAFETY: the x86-64 Linux system call convention (rcx and r11
        // are clobbered); the caller answers for the call itself.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") n as isize => ret,
                in("rdi") a[0],
                in("rsi") a[1],
                in("rdx") a[2],
                in("r10") a[3],
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }

    /// # Safety
    /// As for the system call `n` with these arguments.
    #[cfg(target_arch = "aarch64")]
    pub unsafe fn syscall(n: libc::c_long, a: [usize; 4]) -> isize {
        let ret: isize;
        // SAFETY: the AArch64 Linux system call convention; the caller
        // answers for the call itself.
        unsafe {
            core::arch::asm!(
                "svc 0",
                in("x8") n,
                inlateout("x0") a[0] as isize => ret,
                in("x1") a[1],
                in("x2") a[2],
                in("x3") a[3],
                options(nostack),
            );
        }
        ret
    }

    /// # Safety
    /// As for the system call `n` with these arguments.
    #[cfg(target_arch = "riscv64")]
    pub unsafe fn syscall(n: libc::c_long, a: [usize; 4]) -> isize {
        let ret: isize;
        // SAFETY: the RISC-V Linux system call convention; the caller
        // answers for the call itself.
        unsafe {
            core::arch::asm!(
                "ecall",
                in("a7") n,
                inlateout("a0") a[0] as isize => ret,
                in("a1") a[1],
                in("a2") a[2],
                in("a3") a[3],
                options(nostack),
            );
        }
        ret
    }

    // The architectures seccompiler (the sandbox's filter) supports.
    #[cfg(not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64"
    )))]
    compile_error!("antimony supports x86_64, aarch64 and riscv64");

    pub fn exit() -> ! {
        loop {
            // SAFETY: exit ends this process (the guardian) only: it is not
            // a thread of antimony's, though it shares its memory.
            unsafe { syscall(libc::SYS_exit, [0; 4]) };
        }
    }
}
