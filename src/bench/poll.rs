//! A minimal edge-triggered epoll for one worker thread.
//!
//! Raw epoll rather than mio because the open loop needs sub-millisecond
//! waits: `epoll_pwait2` takes a `timespec` (Linux 5.11+), where
//! `epoll_wait` (and mio on top of it) rounds to whole milliseconds. On older
//! kernels the wait falls back to `epoll_wait`, rounding the timeout *down*
//! (a zero timeout means the caller spins, which is still correct).
//!
//! Edge-triggered: a socket is reported once per arrival, and the caller
//! reads until the socket is drained (a read shorter than the space offered
//! is taken as drained: Linux reports newer bytes with a new edge). Level
//! triggering would put every reported socket back on the ready list and
//! poll it again at the next wait only to find it empty, which cost the
//! client ~2–4% of its CPU at pipeline depth 1 (perf, `ep_send_events`).
//! Changing the interest (`EPOLL_CTL_MOD`) re-reports a socket that is
//! ready at that moment, so no edge is lost when write interest comes and
//! goes.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub const READABLE: u32 = libc::EPOLLIN as u32;
pub const WRITABLE: u32 = libc::EPOLLOUT as u32;
/// Errors and hang-ups are reported whether or not they were asked for.
pub const BROKEN: u32 = (libc::EPOLLERR | libc::EPOLLHUP | libc::EPOLLRDHUP) as u32;

/// Set once `epoll_pwait2` has returned `ENOSYS`.
static PWAIT2_MISSING: AtomicBool = AtomicBool::new(false);

pub struct Poller {
    epoll: OwnedFd,
    events: Vec<libc::epoll_event>,
}

/// One readiness report: the token given at registration and the flags.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub token: usize,
    pub flags: u32,
}

impl Poller {
    pub fn new(capacity: usize) -> io::Result<Poller> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let empty = libc::epoll_event { events: 0, u64: 0 };
        Ok(Poller { epoll, events: vec![empty; capacity.max(1)] })
    }

    pub fn add(&self, fd: RawFd, token: usize, interest: u32) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, token, interest)
    }

    pub fn modify(&self, fd: RawFd, token: usize, interest: u32) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_MOD, fd, token, interest)
    }

    pub fn remove(&self, fd: RawFd) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    fn control(&self, op: libc::c_int, fd: RawFd, token: usize, interest: u32) -> io::Result<()> {
        let mut event = libc::epoll_event { events: interest | libc::EPOLLET as u32, u64: token as u64 };
        // SAFETY: `event` outlives the call; the kernel copies it.
        let rc = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout`; returns how many sockets are ready (read them
    /// with [`Poller::ready`]). `EINTR` counts as none ready.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<usize> {
        match self.wait_raw(timeout) {
            Ok(count) => Ok(count),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(err) => Err(err),
        }
    }

    /// The `index`th report of the last [`Poller::wait`].
    #[inline]
    pub fn ready(&self, index: usize) -> Ready {
        let event = self.events[index];
        Ready { token: event.u64 as usize, flags: event.events }
    }

    fn wait_raw(&mut self, timeout: Duration) -> io::Result<usize> {
        let epoll = self.epoll.as_raw_fd();
        let capacity = self.events.len() as libc::c_int;
        let events = self.events.as_mut_ptr();
        if !PWAIT2_MISSING.load(Ordering::Relaxed) {
            let timeout = libc::timespec {
                tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
            };
            // SAFETY: `events` points at `capacity` writable entries owned by
            // `self`, `timeout` lives across the call, and a null sigmask is
            // allowed.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    epoll,
                    events,
                    capacity,
                    &timeout as *const libc::timespec,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            };
            if rc >= 0 {
                return Ok(rc as usize);
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ENOSYS) {
                return Err(err);
            }
            PWAIT2_MISSING.store(true, Ordering::Relaxed);
        }
        let timeout_ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: as above.
        let rc = unsafe { libc::epoll_wait(epoll, events, capacity, timeout_ms) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(rc as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn reports_readable_sockets_by_token_and_times_out() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut poller = Poller::new(4).unwrap();
        poller.add(b.as_raw_fd(), 7, READABLE).unwrap();
        assert_eq!(poller.wait(Duration::from_micros(200)).unwrap(), 0);
        a.write_all(b"x").unwrap();
        assert_eq!(poller.wait(Duration::from_secs(5)).unwrap(), 1);
        assert_eq!(poller.ready(0).token, 7);
        assert!(poller.ready(0).flags & READABLE != 0);
        poller.remove(b.as_raw_fd()).unwrap();
        assert_eq!(poller.wait(Duration::ZERO).unwrap(), 0);
    }

    #[test]
    fn reports_each_arrival_once_and_again_after_an_interest_change() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut poller = Poller::new(4).unwrap();
        poller.add(b.as_raw_fd(), 1, READABLE).unwrap();
        a.write_all(b"x").unwrap();
        assert_eq!(poller.wait(Duration::from_secs(5)).unwrap(), 1);
        // Still unread, but no new edge: not reported again.
        assert_eq!(poller.wait(Duration::ZERO).unwrap(), 0);
        a.write_all(b"y").unwrap();
        assert_eq!(poller.wait(Duration::from_secs(5)).unwrap(), 1, "a new arrival is a new edge");
        poller.modify(b.as_raw_fd(), 1, READABLE | WRITABLE).unwrap();
        assert_eq!(poller.wait(Duration::from_secs(5)).unwrap(), 1, "a changed interest re-reports readiness");
        assert!(poller.ready(0).flags & READABLE != 0);
    }
}
