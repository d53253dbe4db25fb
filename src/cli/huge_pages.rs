//! Transparent huge pages, off for the process unless asked for.
//!
//! mimalloc asks the kernel for transparent huge pages (`madvise(MADV_HUGEPAGE)`), and a fault
//! on one zeroes 2 MiB at once. On a virtual machine whose host backs the guest's memory
//! lazily (this project's Firecracker VM; a host that takes freed memory back), that fault is
//! the host's too, and a credtrail started a few seconds after the last process spent more
//! than half its load there: the whole SigmaHQ corpus loaded in 0.86-1.12 s with huge pages
//! against 0.35-0.49 s without, its peak RSS 233-259 MB against 189-194 MB (a 2 MiB page is
//! zeroed whole however little of it is used). The matching hardly misses them: the Windows
//! corpus's replay clock was about 2 % slower without, and W500 was faster (BENCHMARKS.md).
//!
//! So, as Redis does by default (`disable-thp`) and as Splunk's documentation advises, the
//! process turns them off for itself at start (`PR_SET_THP_DISABLE`, which also covers a
//! kernel set to `always`). `MIMALLOC_ALLOW_THP`, the allocator's own switch, decides instead
//! when it is set: `MIMALLOC_ALLOW_THP=1` keeps huge pages.

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
