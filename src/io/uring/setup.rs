//! Ring creation with the best flags the kernel accepts, and the probe that
//! decides, before the server commits to io_uring, whether it can run at all.
//!
//! Flags are tried from the strongest set down, dropping one group on each
//! `EINVAL` (the kernel's answer to a flag it does not know):
//!
//! 1. `SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN | SUBMIT_ALL | R_DISABLED`
//!    (6.1+): completions are produced only when the loop asks for them, in
//!    its own thread, with no inter-processor interrupts;
//! 2. the same without `DEFER_TASKRUN` (6.0);
//! 3. `COOP_TASKRUN | SUBMIT_ALL` (5.18–5.19);
//! 4. no flags.
//!
//! `R_DISABLED` lets a ring be created on one thread and driven by another:
//! a `SINGLE_ISSUER` ring belongs to the thread that enables it
//! ([`enable`]), and any other thread gets `EEXIST`.

use std::io;

use io_uring::{opcode, IoUring, Probe};

/// What a ring was actually created with, and what the kernel offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub single_issuer: bool,
    pub defer_taskrun: bool,
    pub coop_taskrun: bool,
    pub submit_all: bool,
    /// Created disabled: [`enable`] must run on the serving thread.
    pub disabled: bool,
    /// `SEND_ZC` is known (6.0); also the marker for multishot receive.
    pub send_zc: bool,
    /// `IORING_OP_SOCKET` is known (5.19): the marker for multishot accept
    /// and provided-buffer rings, which arrived in the same release.
    pub multishot_accept: bool,
}

#[derive(Debug, Clone, Copy)]
struct Flags {
    single_issuer: bool,
    defer_taskrun: bool,
    coop_and_submit_all: bool,
    disabled: bool,
}

const FLAG_SETS: [Flags; 4] = [
    Flags { single_issuer: true, defer_taskrun: true, coop_and_submit_all: true, disabled: true },
    Flags { single_issuer: true, defer_taskrun: false, coop_and_submit_all: true, disabled: true },
    Flags { single_issuer: false, defer_taskrun: false, coop_and_submit_all: true, disabled: false },
    Flags { single_issuer: false, defer_taskrun: false, coop_and_submit_all: false, disabled: false },
];

/// Creates a ring of `sq_entries` submissions and `cq_entries` completions
/// with the strongest flags the kernel accepts (without `DEFER_TASKRUN`
/// when `defer_taskrun` is false), and checks that it can serve.
pub fn build(sq_entries: u32, cq_entries: u32, defer_taskrun: bool) -> io::Result<(IoUring, Capabilities)> {
    let mut last_error = io::Error::from_raw_os_error(libc::EINVAL);
    for flags in FLAG_SETS.iter().filter(|flags| defer_taskrun || !flags.defer_taskrun) {
        let mut builder = IoUring::builder();
        builder.setup_cqsize(cq_entries).setup_clamp();
        if flags.single_issuer {
            builder.setup_single_issuer();
        }
        if flags.defer_taskrun {
            builder.setup_defer_taskrun();
        }
        if flags.coop_and_submit_all {
            builder.setup_coop_taskrun().setup_submit_all();
        }
        if flags.disabled {
            builder.setup_r_disabled();
        }
        match builder.build(sq_entries) {
            Ok(ring) => {
                let capabilities = check(&ring, flags)?;
                return Ok((ring, capabilities));
            }
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => last_error = err,
            Err(err) => return Err(explain(err)),
        }
    }
    Err(explain(last_error))
}

/// Makes a ring created disabled usable; call on the thread that will
/// submit to it.
pub fn enable(ring: &IoUring, capabilities: &Capabilities) -> io::Result<()> {
    if capabilities.disabled {
        ring.submitter().register_enable_rings()?;
    }
    Ok(())
}

/// Whether io_uring can serve here, with a one-line reason when not.
/// Creates and drops a small ring; the server calls it before choosing a
/// backend.
pub fn probe() -> Result<Capabilities, String> {
    build(8, 16, true).map(|(_, capabilities)| capabilities).map_err(|err| err.to_string())
}

/// The features a ring must have, and the optional ones it offers.
fn check(ring: &IoUring, flags: &Flags) -> io::Result<Capabilities> {
    let params = ring.params();
    if !params.is_feature_nodrop() || !params.is_feature_ext_arg() {
        return Err(unsupported("the kernel's io_uring lacks NODROP or EXT_ARG (Linux 5.11+ is needed)"));
    }
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    let required = [
        (opcode::Accept::CODE, "ACCEPT"),
        (opcode::Recv::CODE, "RECV"),
        (opcode::Send::CODE, "SEND"),
        (opcode::PollAdd::CODE, "POLL_ADD"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        (opcode::Close::CODE, "CLOSE"),
    ];
    for (code, name) in required {
        if !probe.is_supported(code) {
            return Err(unsupported(&format!("the kernel's io_uring lacks the {name} operation")));
        }
    }
    Ok(Capabilities {
        single_issuer: params.is_setup_single_issuer(),
        defer_taskrun: flags.defer_taskrun,
        coop_taskrun: flags.coop_and_submit_all,
        submit_all: flags.coop_and_submit_all,
        disabled: flags.disabled,
        send_zc: probe.is_supported(opcode::SendZc::CODE),
        multishot_accept: probe.is_supported(opcode::Socket::CODE),
    })
}

fn unsupported(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, format!("io_uring is not usable: {reason}"))
}

/// Turns the usual set-up failures into advice.
fn explain(err: io::Error) -> io::Error {
    let hint = match err.raw_os_error() {
        Some(libc::ENOSYS) => "this kernel has no io_uring",
        Some(libc::EPERM) => "io_uring is forbidden here (sysctl kernel.io_uring_disabled, or a seccomp profile)",
        Some(libc::ENOMEM) => "not enough locked memory for the ring (ulimit -l)",
        Some(libc::EINVAL) => "the kernel rejected every ring configuration tried",
        _ => return io::Error::new(err.kind(), format!("io_uring set-up failed: {err}")),
    };
    io::Error::new(err.kind(), format!("io_uring is not available: {hint} ({err})"))
}

impl Capabilities {
    /// The set-up flags in effect, for the verbose start-up log.
    pub fn describe(&self) -> String {
        let names = [
            (self.single_issuer, "SINGLE_ISSUER"),
            (self.defer_taskrun, "DEFER_TASKRUN"),
            (self.coop_taskrun, "COOP_TASKRUN"),
            (self.submit_all, "SUBMIT_ALL"),
        ];
        let set: Vec<&str> = names.iter().filter(|(on, _)| *on).map(|(_, name)| *name).collect();
        if set.is_empty() {
            "no set-up flags".into()
        } else {
            set.join("|")
        }
    }
}
