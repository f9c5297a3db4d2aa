//! The only module allowed to use `unsafe`: thin wrappers over system calls that neither
//! `std` nor `nix` expose. Each block has a SAFETY comment.
#![allow(unsafe_code)]

/// Kernel NTP state as read by `adjtimex(2)` with `modes = 0` (read-only; needs no
/// capability and never changes the clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawTimex {
    /// Return value: clock state `TIME_OK` (0) .. `TIME_ERROR` (5).
    pub state: i32,
    /// `status` bits (`STA_*`).
    pub status: i32,
    /// Maximum error, microseconds.
    pub maxerror_us: i64,
    /// Estimated error, microseconds.
    pub esterror_us: i64,
}

/// Read the kernel's NTP state.
pub fn adjtimex_read() -> std::io::Result<RawTimex> {
    // SAFETY: `timex` is a plain C struct for which all-zero bytes are a valid value; with
    // `modes == 0` the kernel only fills it in. The pointer is to a live, exclusively
    // borrowed local for the duration of the call.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    tx.modes = 0;
    // SAFETY: see above; `adjtimex` writes at most `sizeof(struct timex)` bytes into `tx`.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(RawTimex {
        state,
        status: tx.status,
        maxerror_us: tx.maxerror,
        esterror_us: tx.esterror,
    })
}

/// Register an owned, non-blocking file (e.g. `/dev/kmsg`) with tokio's reactor for
/// readability.
pub fn async_fd_readable(
    file: std::fs::File,
) -> std::io::Result<tokio::io::unix::AsyncFd<std::fs::File>> {
    // SAFETY: the `AsyncFd` takes ownership of `file`, so the descriptor it reports is the
    // one `File` owns: valid, open and unchanged until the `AsyncFd` (and the `File` in it)
    // is dropped. Nothing else holds or closes this descriptor.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(file, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn adjtimex_reads_without_privilege_or_side_effects() {
        let t = super::adjtimex_read().expect("adjtimex read-only");
        assert!((0..=5).contains(&t.state), "state {}", t.state);
        assert!(t.maxerror_us >= 0);
    }
}
