//! Every operating-system call of the workspace that needs `libc`, each behind a safe
//! function. This is the one place where `libc` is called: an `unsafe` block anywhere else
//! is a review question. Linux only (namespaces, `prctl`, `getrandom`).

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

/// Reads clock `id` (any `CLOCK_*` constant, which are always valid on Linux).
fn clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we own and pass by a valid pointer.
    unsafe { libc::clock_gettime(id, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time used so far by the calling thread.
pub fn thread_cpu_time() -> Duration {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CLOCK_MONOTONIC [ns]: one clock for every process on a host (and its network
/// namespaces), unlike `Instant`, which cannot cross a process boundary.
pub fn mono_ns() -> u64 {
    clock(libc::CLOCK_MONOTONIC).as_nanos() as u64
}

/// The effective user id of this process.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether this process runs as root (needed to build the emulation rig).
pub fn is_root() -> bool {
    geteuid() == 0
}

/// Sends SIGTERM to process `pid`.
///
/// Only signal a child you started and have not reaped yet: after a reap the id may belong
/// to an unrelated process.
pub fn terminate(pid: u32) -> io::Result<()> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: kill takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel to SIGKILL the calling process when the thread that created it exits.
/// Meant for the child side of a spawn (see [`kill_with_parent`]); async-signal-safe.
pub fn die_with_parent() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG, sig) reads only its integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the process that `cmd` spawns die with the thread spawning it, so that a crashed
/// or killed coordinator leaves no worker behind. Keep that thread alive for the whole run.
pub fn kill_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec, where only async-signal-safe calls
    // are allowed; it makes one prctl system call and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            // a failure only means the worker could outlive a crashed coordinator
            let _ = die_with_parent();
            Ok(())
        });
    }
}

/// Moves the calling thread into the network namespace that `ns` (an open
/// `/run/netns/NAME` file) refers to. Other threads of the process are not moved.
pub fn enter_netns(ns: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: setns takes a file descriptor that `ns` keeps open for the call, and touches
    // no memory of ours; with CLONE_NEWNET it changes only this thread's namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Attempts to fill a buffer from the kernel before giving up.
const RANDOM_TRIES: usize = 8;

/// Fills `buf` from the kernel's random source, retrying short or interrupted reads; fails
/// rather than fall back on anything guessable (time, process id).
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    for _ in 0..RANDOM_TRIES {
        if got == buf.len() {
            break;
        }
        let rest = &mut buf[got..];
        // SAFETY: getrandom writes at most rest.len() bytes into rest, borrowed mutably.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match usize::try_from(n) {
            Ok(n) => got += n,
            Err(_) if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(io::Error::last_os_error()),
        }
    }
    if got == buf.len() {
        Ok(())
    } else {
        Err(io::Error::other(
            "the kernel's random source returned too few bytes",
        ))
    }
}

/// Restores the default SIGPIPE disposition (the process ends when it writes to a closed
/// pipe), as other command-line tools do. Call it first thing in `main`.
pub fn default_sigpipe() {
    // SAFETY: signal with SIG_DFL installs no handler of ours; changing a disposition is
    // sound at any time, and main calls this before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// An empty CPU set.
fn empty_cpu_set() -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is a plain bit array, for which all-zero bytes are the empty set.
    unsafe { std::mem::zeroed() }
}

/// Pins the calling thread to CPU `cpu`.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    pin_to_cpus(&[cpu])
}

/// Pins the calling thread to the CPUs `cpus` (threads it starts afterwards inherit them).
/// Fails if one is beyond the kernel's CPU set size, or if none of them is online and
/// allowed to this process.
pub fn pin_to_cpus(cpus: &[usize]) -> io::Result<()> {
    let mut set = empty_cpu_set();
    for &cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: CPU_SET writes one bit inside `set`; `cpu` was checked against its size.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: sched_setaffinity reads size_of::<cpu_set_t>() bytes from `set`, which we own;
    // pid 0 means the calling thread only.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPUs the calling thread may run on (empty if the kernel does not say).
pub fn allowed_cpus() -> Vec<usize> {
    let mut set = empty_cpu_set();
    // SAFETY: sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into `set`,
    // which we own; pid 0 means the calling thread.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET reads one bit inside `set`; c is below CPU_SETSIZE.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_move_forward() {
        let a = mono_ns();
        let c = thread_cpu_time();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(mono_ns() > a);
        assert!(thread_cpu_time() >= c);
    }

    #[test]
    fn random_bytes_differ() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        assert!(random_bytes(&mut a).is_ok() && random_bytes(&mut b).is_ok());
        assert_ne!(a, b);
    }

    #[test]
    fn affinity_roundtrip() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        let t = std::thread::spawn(move || {
            pin_to_cpu(cpus[0]).unwrap();
            allowed_cpus()
        });
        assert_eq!(t.join().unwrap().len(), 1);
        assert!(pin_to_cpu(usize::MAX).is_err());
        let all = allowed_cpus();
        let t = std::thread::spawn(move || {
            pin_to_cpus(&all).unwrap();
            allowed_cpus() == all
        });
        assert!(t.join().unwrap());
    }
}
