//! The reaper: a guard process that kills every process group tiltrs started if tiltrs dies.
//!
//! `PR_SET_PDEATHSIG` reaches only the direct child of tiltrs, not what that child starts in
//! the background (`sh -c 'server & worker'`). So [`start`] forks, before any thread exists, a
//! tiny helper that holds the read end of a pipe. tiltrs writes "add group N" / "remove group
//! N" records into the pipe as it spawns and reaps children. When the pipe reaches end-of-file
//! (tiltrs exited, normally or by SIGKILL) the helper sends SIGKILL to every group still
//! registered, then exits. The helper ignores SIGINT/SIGTERM/SIGHUP so a Ctrl-C to the
//! terminal's foreground group cannot take it down before tiltrs has cleaned up.
//!
//! The helper runs only async-signal-safe calls (`read`, `kill`, `dup2`, `_exit`) on a
//! fixed-size table, so forking is sound even if the caller had threads.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

use thiserror::Error;

/// Groups the helper can track at once; registrations beyond this are dropped (the direct
/// child still has `PR_SET_PDEATHSIG`).
const CAPACITY: usize = 4096;
const OP_ADD: i32 = 1;
const OP_REMOVE: i32 = 2;

#[derive(Debug, Error)]
pub enum ReaperError {
    #[error("failed to create the reaper pipe: {0}")]
    Pipe(std::io::Error),
    #[error("failed to fork the reaper process: {0}")]
    Fork(std::io::Error),
}

struct Reaper {
    write: OwnedFd,
    pid: i32,
}

static REAPER: OnceLock<Reaper> = OnceLock::new();

/// Starts the guard process once per tiltrs process; later calls do nothing.
///
/// Call it before the async runtime starts threads (it is sound either way, see the module
/// docs). Returns the helper's pid.
pub fn start() -> Result<i32, ReaperError> {
    if let Some(r) = REAPER.get() {
        return Ok(r.pid);
    }
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid two-element array for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(ReaperError::Pipe(std::io::Error::last_os_error()));
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the child branch only calls async-signal-safe functions and ends in `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(ReaperError::Fork(std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: we are the freshly forked child; `helper_main` never returns.
        unsafe { helper_main(read.as_raw_fd()) }
    }
    drop(read);
    let _ = REAPER.set(Reaper { write, pid });
    Ok(pid)
}

/// Registers a process group for killing if tiltrs dies.
pub fn register(pgid: i32) {
    send(OP_ADD, pgid);
}

/// Forgets a process group that is gone.
pub fn unregister(pgid: i32) {
    send(OP_REMOVE, pgid);
}

/// Whether [`start`] has run in this process.
pub fn is_running() -> bool {
    REAPER.get().is_some()
}

fn send(op: i32, pgid: i32) {
    let Some(r) = REAPER.get() else { return };
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&op.to_ne_bytes());
    msg[4..].copy_from_slice(&pgid.to_ne_bytes());
    // 8 bytes < PIPE_BUF, so the write is atomic even from several threads at once.
    // SAFETY: `msg` is valid for 8 bytes and the descriptor is open for our lifetime.
    loop {
        let n = unsafe { libc::write(r.write.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break;
    }
}

/// The helper's whole life. Only async-signal-safe calls from here on.
unsafe fn helper_main(read_fd: libc::c_int) -> ! {
    unsafe {
        for sig in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGPIPE,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
        let name = b"tiltrs-reaper\0";
        libc::prctl(libc::PR_SET_NAME, name.as_ptr());
        // Keep no terminal or pipe of the parent open: callers wait for those to close.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::dup2(null, 2);
        }
        // Move the pipe to fd 3 and close everything else (the parent's write end included,
        // or we would never see end-of-file).
        if read_fd != 3 {
            libc::dup2(read_fd, 3);
        }
        let closed = libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
        if closed != 0 {
            for fd in 4..65536 {
                libc::close(fd);
            }
        }
        let mut table = [0i32; CAPACITY];
        let mut len = 0usize;
        let mut buf = [0u8; 512];
        let mut have = 0usize;
        loop {
            let n = libc::read(3, buf.as_mut_ptr().add(have).cast(), buf.len() - have);
            if n < 0 {
                if *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                break;
            }
            if n == 0 {
                break;
            }
            have += n as usize;
            let mut off = 0;
            while have - off >= 8 {
                let mut op = [0u8; 4];
                let mut pg = [0u8; 4];
                op.copy_from_slice(&buf[off..off + 4]);
                pg.copy_from_slice(&buf[off + 4..off + 8]);
                let (op, pg) = (i32::from_ne_bytes(op), i32::from_ne_bytes(pg));
                off += 8;
                if op == OP_ADD && len < CAPACITY && pg > 1 {
                    table[len] = pg;
                    len += 1;
                } else if op == OP_REMOVE
                    && let Some(i) = table[..len].iter().position(|&p| p == pg)
                {
                    table[i] = table[len - 1];
                    len -= 1;
                }
            }
            buf.copy_within(off..have, 0);
            have -= off;
        }
        for &pg in &table[..len] {
            libc::kill(-pg, libc::SIGKILL);
        }
        libc::_exit(0)
    }
}
