//! Start-up and diagnostic log lines in the upstream format:
//! `YYYY-MM-DD HH:MM:SS - <message> ` (local time, trailing space, §4.5).

use std::io::Write;

/// Writes one log line to stdout and flushes it, so tests and supervisors
/// see it at once even when stdout is a pipe.
pub fn info(message: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{} - {} ", local_timestamp(), message);
    let _ = stdout.flush();
}

/// Like [`info`], on stderr.
pub fn warn(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{} - {} ", local_timestamp(), message);
}

fn local_timestamp() -> String {
    // SAFETY: `time(NULL)` has no preconditions; `localtime_r` writes only
    // into the `tm` we own, and both pointers are valid for the call.
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}
