//! What std does not offer, through libc: the open-files limit, and a timerfd so the send
//! schedule can wake the event loop with nanosecond precision (epoll's timeout, and so mio's,
//! is whole milliseconds, rounded up).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// RLIMIT_NOFILE before and after [`raise_nofile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nofile {
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft RLIMIT_NOFILE to `needed` (or as close as the hard limit allows) when it is
/// below; never lowers it.
pub fn raise_nofile(needed: u64) -> io::Result<Nofile> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // rlim_t is u64 on Linux, the only target (timerfd) this driver is for.
    let (soft_before, hard) = (lim.rlim_cur, lim.rlim_max);
    let mut soft = soft_before;
    if soft < needed {
        let want = needed.min(hard);
        let new = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            soft = want;
        }
    }
    Ok(Nofile {
        soft_before,
        soft,
        hard,
    })
}

/// A monotonic one-shot timer whose expiry makes its descriptor readable.
pub struct Timer {
    fd: OwnedFd,
}

impl Timer {
    pub fn new() -> io::Result<Timer> {
        // SAFETY: plain syscall; the result is checked before being wrapped.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        Ok(Timer {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Fires `ns` nanoseconds from now (at least 1 ns: 0 would disarm it).
    pub fn arm_in(&self, ns: u64) -> io::Result<()> {
        let ns = ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: the descriptor is ours; spec is a valid itimerspec; old value not wanted.
        let r =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Consumes an expiry (after the descriptor was reported readable).
    pub fn clear(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into our buffer; EAGAIN (not fired) is fine.
        unsafe {
            libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len());
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn nofile_is_never_lowered() {
        let n = raise_nofile(16).unwrap();
        assert!(n.soft >= n.soft_before.min(16));
        assert_eq!(n.soft, n.soft_before);
    }

    #[test]
    fn timer_fires_with_sub_millisecond_precision() {
        let mut poll = mio::Poll::new().unwrap();
        let timer = Timer::new().unwrap();
        let fd = timer.raw_fd();
        poll.registry()
            .register(
                &mut mio::unix::SourceFd(&fd),
                mio::Token(0),
                mio::Interest::READABLE,
            )
            .unwrap();
        let mut events = mio::Events::with_capacity(4);
        let start = Instant::now();
        timer.arm_in(300_000).unwrap();
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        let took = start.elapsed();
        assert!(events.iter().any(|e| e.token() == mio::Token(0)));
        timer.clear();
        // Never early; "late" is left unchecked, as a loaded CI machine may be slow.
        assert!(took >= Duration::from_micros(300), "{took:?}");
    }
}
