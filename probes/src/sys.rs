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

/// `SYSLOG_ACTION_READ_ALL`: read the whole kernel ring as text, non-destructively.
const SYSLOG_ACTION_READ_ALL: libc::c_int = 3;
/// `SYSLOG_ACTION_SIZE_BUFFER`: the size of the kernel ring.
const SYSLOG_ACTION_SIZE_BUFFER: libc::c_int = 10;

/// Size of the kernel's log ring in bytes (`syslog(2)` `SYSLOG_ACTION_SIZE_BUFFER`). With
/// `kernel.dmesg_restrict=1` this needs `CAP_SYSLOG`, like reading it.
pub fn klog_size() -> std::io::Result<usize> {
    // SAFETY: with SIZE_BUFFER the kernel ignores `bufp` and `len`; a null pointer and 0 are
    // what glibc and musl document for this action.
    let n = unsafe { libc::klogctl(SYSLOG_ACTION_SIZE_BUFFER, std::ptr::null_mut(), 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Copy the newest kernel log records that fit into `buf` as text lines
/// `<PRI>[ seconds.micros] message` (`syslog(2)` `SYSLOG_ACTION_READ_ALL`; does not consume
/// anything, other readers are unaffected). Returns the number of bytes written.
pub fn klog_read_all(buf: &mut [u8]) -> std::io::Result<usize> {
    let len = libc::c_int::try_from(buf.len()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `buf` is a live, exclusively borrowed byte buffer of at least `len` bytes; the
    // kernel writes at most `len` bytes into it and returns how many.
    let n = unsafe { libc::klogctl(SYSLOG_ACTION_READ_ALL, buf.as_mut_ptr().cast(), len) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((n as usize).min(buf.len()))
}

/// Drop this program's resident, read-only file pages (code and constants) from its memory:
/// `madvise(MADV_PAGEOUT)` over every non-writable `PT_LOAD` segment of the executable.
/// Called once the daemon has settled, so pages used only at start-up (flag parsing, rule
/// compilation, client set-up) stop counting against the pod; pages still in use come back
/// on their next touch. Returns the number of bytes advised. Best effort: errors (an old
/// kernel without `MADV_PAGEOUT`) are returned and change nothing.
pub fn release_code_pages() -> std::io::Result<usize> {
    struct Found {
        ranges: Vec<(usize, usize)>,
    }
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `dl_iterate_phdr` passes a valid `dl_phdr_info` for the duration of the
        // call, and `data` is the `&mut Found` given below, alive for the whole iteration.
        let (info, found) = unsafe { (&*info, &mut *(data as *mut Found)) };
        // SAFETY: `dlpi_phdr` points at `dlpi_phnum` program headers of this object.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        for ph in phdrs {
            if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_W == 0 {
                let start = info.dlpi_addr as usize + ph.p_vaddr as usize;
                found.ranges.push((start, ph.p_memsz as usize));
            }
        }
        1 // the first object is the executable itself: stop there
    }
    let mut found = Found { ranges: Vec::new() };
    // SAFETY: `each` only reads the headers it is given and writes to `found`, which
    // outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(each), &mut found as *mut Found as *mut libc::c_void) };
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    let mut total = 0;
    for (start, len) in found.ranges {
        let aligned = start & !(page - 1);
        let len = (start + len).div_ceil(page) * page - aligned;
        // SAFETY: the range covers a mapped, read-only segment of our own executable;
        // MADV_PAGEOUT only reclaims pages, which the kernel faults back in from the file
        // on the next access, so no memory this program uses changes content.
        let rc = unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_PAGEOUT) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        total += len;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    #[test]
    fn code_pages_can_be_released_and_come_back() {
        let n = super::release_code_pages().expect("madvise MADV_PAGEOUT");
        assert!(n > 0, "found the executable's read-only segments");
        // code keeps running after its pages were dropped
        assert_eq!(super::adjtimex_read().map(|_| ()).ok(), Some(()));
    }

    #[test]
    fn the_kernel_ring_reads_as_text_lines() {
        // root (or CAP_SYSLOG) on the test machine: the real ring
        let size = super::klog_size().expect("SIZE_BUFFER");
        assert!(size >= 4096, "ring of {size} bytes");
        let mut buf = vec![0u8; size];
        let n = super::klog_read_all(&mut buf).expect("READ_ALL");
        assert!(
            n > 0 && buf[0] == b'<',
            "{:?}",
            String::from_utf8_lossy(&buf[..n.min(80)])
        );
        // a buffer too small gets the newest lines that fit, never an error
        let mut small = [0u8; 1];
        assert!(super::klog_read_all(&mut small).is_ok());
    }

    #[test]
    fn adjtimex_reads_without_privilege_or_side_effects() {
        let t = super::adjtimex_read().expect("adjtimex read-only");
        assert!((0..=5).contains(&t.state), "state {}", t.state);
        assert!(t.maxerror_us >= 0);
    }
}
