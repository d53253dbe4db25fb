//! Transparent huge pages, off for the process unless asked for.
//!
//! mimalloc asks the kernel for transparent huge pages (`madvise(MADV_HUGEPAGE)`), and a fault
//! on one zeroes 2 MiB at once. On a virtual machine whose host backs the guest's memory
//! lazily (this project's Firecracker VM; a host that takes freed memory back), that fault is
//! the host's too, and a credtrail started a few seconds after the last process spent more
//! than half its load there: the whole SigmaHQ corpus loaded in 0.98-1.08 s with huge pages
//! against 0.36-0.44 s without, its peak RSS 240-260 MB against 190 MB (a 2 MiB page is
//! zeroed whole however little of it is used). The matching did not miss them: the Windows
//! corpus's replay clock and W500's wall time were the same or better without (BENCHMARKS.md).
//!
//! So, as Redis does by default (`disable-thp`) and as Splunk and MongoDB advise, the process
//! turns them off for itself at start (`PR_SET_THP_DISABLE`, which also covers a kernel set to
//! `always`). `MIMALLOC_ALLOW_THP`, the allocator's own switch, decides instead when it is set:
//! `MIMALLOC_ALLOW_THP=1` keeps huge pages.

/// Turns transparent huge pages off for this process and its children, unless
/// `MIMALLOC_ALLOW_THP` is set. Call first thing in `main`; memory already faulted keeps its
/// pages. A kernel without the call (before 3.15) keeps huge pages and nothing else changes.
pub fn turn_off_unless_asked() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes no memory of ours.
    unsafe {
        let _ = libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
