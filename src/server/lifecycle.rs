//! Process lifecycle: stop signals, daemonizing after the listeners are bound
//! (§7.2 Q33), and the optional pidfile.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::io::StopSignal;

/// SIGINT and SIGTERM raise the returned signal; the event loop stops at its
/// next wake-up, which the signal itself causes.
pub fn install_stop_signals() -> io::Result<StopSignal> {
    let (stop, raise) = StopSignal::pair()?;
    for signal in [SIGINT, SIGTERM] {
        // A shell starts background jobs with SIGINT ignored; a stop request
        // must still stop the server, so restore the default first.
        // SAFETY: resetting a disposition to SIG_DFL has no preconditions.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
        signal_hook::low_level::pipe::register(signal, raise.try_clone()?)?;
    }
    Ok(stop)
}

/// Forks into the background. The parent exits 0 at once (without running
/// destructors, so it cannot remove the child's socket file); the child
/// starts a new session with stdio on /dev/null. Call only while the
/// process has a single thread.
pub fn daemonize() -> anyhow::Result<()> {
    // SAFETY: the server is single-threaded here (called before any thread
    // is spawned), so the child may run arbitrary code after fork.
    match unsafe { libc::fork() } {
        -1 => return Err(io::Error::last_os_error()).context("fork failed"),
        0 => {}
        _ => std::process::exit(0),
    }
    // SAFETY: setsid has no memory-safety preconditions.
    if unsafe { libc::setsid() } == -1 {
        return Err(io::Error::last_os_error()).context("setsid failed");
    }
    let null = fs::OpenOptions::new().read(true).write(true).open("/dev/null").context("cannot open /dev/null")?;
    for fd in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors; `null` stays open for
        // the duration of the call.
        if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) } == -1 {
            return Err(io::Error::last_os_error()).context("cannot redirect stdio");
        }
    }
    Ok(())
}

/// A file holding the server's pid, removed on drop.
pub struct Pidfile {
    path: PathBuf,
}

impl Pidfile {
    pub fn create(path: &Path) -> anyhow::Result<Pidfile> {
        fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write pidfile {}", path.display()))?;
        Ok(Pidfile { path: path.to_path_buf() })
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
