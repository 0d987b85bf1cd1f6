//! Process-wide allocator settings for tensor-heavy work.
//!
//! Each forward pass allocates tens of megabytes per op. With glibc's defaults those
//! blocks are mmapped and unmapped every time, and the kernel zeroes fresh pages on
//! every touch: profiling showed ~15% of embedding time in page faults. Keeping such
//! blocks in the heap (and not trimming it) removes that cost; embedding ran ~20%
//! faster. Only glibc is affected; elsewhere this does nothing.

/// Tunes glibc malloc for large, short-lived tensor buffers. Call once, early in `main`.
pub fn tune_allocator_for_tensors() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any threads
    // that allocate heavily exist, and invalid values are rejected by glibc itself.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}
