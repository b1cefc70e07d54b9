//! Checks an uploaded sub-model before the worker caches it and before any engine compiles
//! it (issue 19, item 5): it must decode as ONNX, pass dicesim's own analysis (the loader
//! of `dicesim inspect`: shapes inferred, constants folded, no tensor over 1 TiB) and need
//! at most the worker's cap: its weights (folded constants included) plus its largest
//! tensor.
//!
//! Why in a child process: a tiny upload can ask for huge constants (163 bytes of
//! ConstantOfShape 16384x32768 is 2 GiB of zeros), and folding materialises them. The
//! child (a `fork` of the worker, no `exec`) runs the analysis under an address-space limit
//! of the upload's size + the cap + 128 MiB and a CPU-time limit, so such a model fails its
//! allocation at once in the child and the worker never holds the memory. The child
//! reports a verdict through a pipe and exits without running destructors.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

/// Room the analysis may use beyond the upload's copy and the cap [bytes].
const SLACK: u64 = 128 << 20;
/// CPU time the analysis may take [s].
const CPU_LIMIT_S: u64 = 20;
/// Wall time the worker waits for the analysis.
const WALL_LIMIT: Duration = Duration::from_secs(30);

/// What a sub-model needs, as analysed [bytes].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// Weights: initializers and folded constants.
    pub weights: u64,
    /// The largest activation tensor.
    pub activation: u64,
}

/// Why an upload is refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VetError {
    /// It does not decode as an ONNX model.
    #[error("sub-model refused: not ONNX ({0})")]
    NotOnnx(String),
    /// dicesim's analysis refuses it (unknown operator, malformed shape, tensor too large).
    #[error("sub-model refused: {0}")]
    Analysis(String),
    /// Weights + largest activation exceed the cap.
    #[error(
        "sub-model refused: it needs {need} bytes (weights {weights} + largest activation \
         {activation}); this worker's limit is {cap} bytes (--max-model-mb)"
    )]
    TooLarge {
        /// Weights + largest activation.
        need: u64,
        /// Weights.
        weights: u64,
        /// Largest activation.
        activation: u64,
        /// The cap.
        cap: u64,
    },
    /// The analysis ran out of its memory or time limit, or could not run.
    #[error("sub-model refused: {0}")]
    Exhausted(String),
}

/// Checks `onnx` against the cap `cap` [bytes]; its need if accepted.
pub fn vet(onnx: &[u8], cap: u64) -> Result<Need, VetError> {
    let budget = (onnx.len() as u64)
        .saturating_add(cap)
        .saturating_add(SLACK);
    let verdict = in_child(budget, || verdict_line(analyse(onnx)))?;
    let need = parse_verdict(&verdict)?;
    let total = need.weights.saturating_add(need.activation);
    if total > cap {
        return Err(VetError::TooLarge {
            need: total,
            weights: need.weights,
            activation: need.activation,
            cap,
        });
    }
    Ok(need)
}

/// Decodes and analyses `onnx` (in the child).
fn analyse(onnx: &[u8]) -> Result<Need, VetError> {
    use dicesim_plan::model::{InputShapes, Model};
    let path = std::path::Path::new("upload");
    let proto =
        dicesim_plan::onnx::decode_model(onnx.to_vec().into(), path).map_err(|e| match e {
            dicesim_plan::PlanError::NotOnnx { reason, .. } => VetError::NotOnnx(reason),
            e => VetError::Analysis(e.to_string()),
        })?;
    let m = Model::analyse(proto, "upload", &InputShapes::new())
        .map_err(|e| VetError::Analysis(e.to_string()))?;
    let consts: u64 = (m.consts.values())
        .map(|c| {
            let elem = dicesim_plan::onnx::dtype::size_of(c.dtype).unwrap_or(4);
            (c.shape.iter()).fold(elem, |b, &d| b.saturating_mul(d as u64))
        })
        .fold(0, u64::saturating_add);
    let weights = consts.max(m.graph.total_params_bytes());
    let activation = (m.graph.tensors.values()).map(|t| t.bytes).max();
    Ok(Need {
        weights,
        activation: activation.unwrap_or(0),
    })
}

/// The child's one-line answer.
fn verdict_line(r: Result<Need, VetError>) -> String {
    match r {
        Ok(n) => format!("ok {} {}", n.weights, n.activation),
        Err(VetError::NotOnnx(m)) => format!("onnx {m}"),
        Err(e) => format!(
            "err {}",
            e.to_string().trim_start_matches("sub-model refused: ")
        ),
    }
}

fn parse_verdict(v: &str) -> Result<Need, VetError> {
    let (kind, rest) = v.split_once(' ').unwrap_or((v, ""));
    match kind {
        "ok" => {
            let mut it = rest.split(' ').map(str::parse::<u64>);
            match (it.next(), it.next()) {
                (Some(Ok(weights)), Some(Ok(activation))) => Ok(Need {
                    weights,
                    activation,
                }),
                _ => Err(VetError::Exhausted(format!("bad verdict {v:?}"))),
            }
        }
        "onnx" => Err(VetError::NotOnnx(rest.to_string())),
        _ => Err(VetError::Analysis(rest.to_string())),
    }
}

/// Runs `f` in a forked child limited to `budget` more bytes of address space and
/// [`CPU_LIMIT_S`] of CPU; returns what it wrote, or why it gave nothing.
fn in_child(budget: u64, f: impl FnOnce() -> String) -> Result<String, VetError> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the two descriptors it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(exhausted("no pipe", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned here only.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let vm = address_space_now();
    // SAFETY: the child only sets limits, runs the analysis (allocation, which glibc keeps
    // usable after fork) and leaves with _exit, never returning into the parent's code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(exhausted("no child", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        drop(rd);
        child(vm.saturating_add(budget), wr, f);
    }
    drop(wr);
    let out = read_verdict(rd, pid);
    let status = reap(pid);
    match out {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(VetError::Exhausted(format!(
            "its analysis exceeded {} MiB of memory or {CPU_LIMIT_S} s ({status})",
            budget >> 20
        ))),
    }
}

fn exhausted(what: &str, e: std::io::Error) -> VetError {
    VetError::Exhausted(format!("cannot analyse it ({what}: {e})"))
}

/// In the child: limits, the analysis, its line on `wr`, and `_exit`.
fn child(limit: u64, wr: OwnedFd, f: impl FnOnce() -> String) -> ! {
    use std::os::fd::AsRawFd;
    // SAFETY: plain system calls on this process; /dev/null silences a failed allocation's
    // message (the parent reports it).
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        if null >= 0 {
            libc::dup2(null, 2);
        }
        let as_lim = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        libc::setrlimit(libc::RLIMIT_AS, &as_lim);
        let cpu = libc::rlimit {
            rlim_cur: CPU_LIMIT_S,
            rlim_max: CPU_LIMIT_S,
        };
        libc::setrlimit(libc::RLIMIT_CPU, &cpu);
    }
    let line = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| "err the analysis failed".to_string());
    let b = line.as_bytes();
    // SAFETY: writes the child's own buffer to its own descriptor, then leaves at once.
    unsafe {
        libc::write(wr.as_raw_fd(), b.as_ptr().cast(), b.len());
        libc::_exit(0)
    }
}

/// The child's line, or None if it wrote nothing before [`WALL_LIMIT`] (then it is killed).
fn read_verdict(rd: OwnedFd, pid: libc::pid_t) -> Option<String> {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: rd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = WALL_LIMIT.as_millis() as i32;
    // SAFETY: one valid pollfd.
    if unsafe { libc::poll(&mut p, 1, ms) } <= 0 {
        // SAFETY: our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        return None;
    }
    let mut s = String::new();
    std::fs::File::from(rd)
        .take(64 << 10)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

/// Waits for the child; how it ended, in words.
fn reap(pid: libc::pid_t) -> String {
    let mut st = 0;
    // SAFETY: our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    if libc::WIFSIGNALED(st) {
        format!("killed by signal {}", libc::WTERMSIG(st))
    } else {
        format!("exit status {}", libc::WEXITSTATUS(st))
    }
}

/// This process's address space now [bytes] (VmSize).
fn address_space_now() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = (s.split_whitespace().next()).map_or(0, |p| p.parse().unwrap_or(0));
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    pages * page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_onnx() {
        let e = vet(&[0xffu8; 4096], 1 << 30).unwrap_err();
        assert!(matches!(e, VetError::NotOnnx(_)), "{e}");
        assert!(e.to_string().contains("not ONNX"), "{e}");
        assert!(matches!(vet(&[], 1 << 30), Err(VetError::NotOnnx(_))));
    }

    #[test]
    fn a_child_over_its_budget_reports_nothing_and_the_parent_stays_small() {
        let r = in_child(64 << 20, || {
            let v = std::hint::black_box(vec![1u8; 1 << 30]);
            format!("ok {} 0", v.iter().step_by(4096).count())
        });
        assert!(matches!(r, Err(VetError::Exhausted(_))), "{r:?}");
        assert_eq!(in_child(64 << 20, || "ok 1 2".into()).unwrap(), "ok 1 2");
    }

    #[test]
    fn verdicts_round_trip() {
        let n = Need {
            weights: 5,
            activation: 7,
        };
        assert_eq!(parse_verdict(&verdict_line(Ok(n))), Ok(n));
        let e = VetError::Analysis("bad shape".into());
        assert_eq!(parse_verdict(&verdict_line(Err(e.clone()))), Err(e));
    }
}
