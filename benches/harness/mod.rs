//! What the whole-process harnesses share (`replay`, `corpus`): running a child under the
//! operating system's accounting (`wait4`: wall, CPU, peak RSS), reading figures from its
//! summary, medians and ratios pair by pair.
#![allow(dead_code)] // each harness uses its part

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// OS accounting of one finished child.
#[derive(Clone, Copy, Default)]
pub struct Usage {
    pub wall: f64,
    pub cpu: f64,
    pub max_rss_kb: i64,
}

// The child is reaped by `wait4` (for its resource usage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
pub fn run(cmd: &mut Command) -> (Usage, String) {
    forget_own_peak_rss();
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the child we spawned and own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our child's; status and ru are valid for writes.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    assert!(pid > 0, "wait4 failed");
    let wall = started.elapsed().as_secs_f64();
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let err = reader.join().unwrap_or_default();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed:\n{err}"
    );
    (
        Usage {
            wall,
            cpu: secs(ru.ru_utime) + secs(ru.ru_stime),
            max_rss_kb: ru.ru_maxrss,
        },
        err,
    )
}

/// A child's peak RSS as `wait4` reports it is at least its parent's peak RSS at the time of the
/// spawn: the child starts on the parent's memory (vfork), and Linux keeps that memory's high
/// water mark across `exec`. The corpus harness compiles every rule in-process first, so each
/// child "peaked" at the harness's 360 MB. Resetting our own high water mark to what we hold now
/// (Linux 4.0+, `clear_refs` 5) leaves the children their own figure, floored by what the harness
/// still holds (after giving back what it freed), which [`own_rss_kb`] tells.
fn forget_own_peak_rss() {
    // What the harness freed goes back to the system first, or it still counts as resident.
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of glibc's heap.
    unsafe {
        libc::malloc_trim(0);
    }
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// This process's resident set now, in KiB (0 where /proc does not say).
pub fn own_rss_kb() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

pub fn count_lines(path: &Path) -> u64 {
    let mut f = std::fs::File::open(path).expect("events");
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let got = f.read(&mut buf).expect("read");
        if got == 0 {
            return n;
        }
        n += buf[..got].iter().filter(|&&c| c == b'\n').count() as u64;
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// The number after `key` in `text` (`p50 1.54 us` → 1.54).
pub fn after(text: &str, key: &str) -> Option<f64> {
    let at = text.find(key)? + key.len();
    text[at..]
        .trim_start()
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?
        .parse()
        .ok()
}

pub struct Series {
    pub name: String,
    pub usage: Vec<Usage>,
    pub p50: Vec<f64>,
    pub p99: Vec<f64>,
    pub p999: Vec<f64>,
    /// Seconds by the replay's own clock, from its first read to its last alert written (the
    /// summary's `events in`): the engine's time without the process's start, load and exit.
    pub engine: Vec<f64>,
    pub states: f64,
    pub state_kb: f64,
    pub alerts: f64,
}

impl Series {
    pub fn new(name: String) -> Series {
        Series {
            name,
            usage: Vec::new(),
            p50: Vec::new(),
            p99: Vec::new(),
            p999: Vec::new(),
            engine: Vec::new(),
            states: f64::NAN,
            state_kb: f64::NAN,
            alerts: f64::NAN,
        }
    }

    pub fn rate(&self, events: f64) -> Vec<f64> {
        self.usage.iter().map(|u| events / u.wall).collect()
    }
}

/// Ratios taken round by round: their median, and the smallest and largest, so a reader sees
/// whether a goal is met by every pair or only by the middle one.
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    fn of(v: Vec<f64>) -> Spread {
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Spread {
            median: median(v),
            min,
            max,
        }
    }
}

/// `4.31 (pairs 4.12-4.50)`, with the formatter's precision (2 if none).
impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = f.precision().unwrap_or(2);
        write!(
            f,
            "{:.p$} (pairs {:.p$}-{:.p$})",
            self.median, self.min, self.max
        )
    }
}

/// Round by round, `b`'s wall time over `a`'s (a's throughput relative to b's), pair by pair,
/// so drift of a shared machine cancels out.
pub fn ratio(a: &Series, b: &Series) -> Spread {
    Spread::of(
        a.usage
            .iter()
            .zip(&b.usage)
            .map(|(x, y)| y.wall / x.wall)
            .collect(),
    )
}

/// [`ratio`] of the replays' own clocks ([`Series::engine`]), round by round: for two runs
/// of one engine, free of the noise of a second process's load.
pub fn ratio_engine(a: &Series, b: &Series) -> Spread {
    Spread::of(a.engine.iter().zip(&b.engine).map(|(x, y)| y / x).collect())
}

/// Per round: the wall time `s` took beyond `load`'s (the same engine on an empty input,
/// measured in the same round): its time once the rules are loaded.
fn after_load(s: &Series, load: &Series) -> Vec<f64> {
    s.usage
        .iter()
        .zip(&load.usage)
        .map(|(u, l)| u.wall - l.wall)
        .collect()
}

/// Per round: `events` over [`after_load`]'s time: throughput once the rules are loaded.
pub fn rate_after(s: &Series, load: &Series, events: f64) -> Vec<f64> {
    after_load(s, load).iter().map(|t| events / t).collect()
}

/// [`ratio`] of the times beyond each engine's load (`a_load`, `b_load`), round by round.
pub fn ratio_after(a: &Series, a_load: &Series, b: &Series, b_load: &Series) -> Spread {
    Spread::of(
        after_load(a, a_load)
            .iter()
            .zip(after_load(b, b_load))
            .map(|(x, y)| y / x)
            .collect(),
    )
}

/// Whether the peer is wanted (`wanted`: not `--no-rsigma`) and installed; says so when it is
/// wanted but missing.
pub fn rsigma_available(wanted: bool) -> bool {
    let found = wanted
        && Command::new("rsigma")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if wanted && !found {
        eprintln!(
            "rsigma is not installed (cargo install rsigma@0.23.0 --locked): skipping the peer"
        );
    }
    found
}
