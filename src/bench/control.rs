//! The control connection: one blocking [`Client`] used before and after
//! the timed section, never during it. It waits at least
//! [`CONTROL_TIMEOUT_MIN`] for a reply, since nothing on it is timed.
//!
//! * It proves the server is reachable (a clear error instead of a run full
//!   of failures);
//! * INFO gives the server's pid (`pid: N `), for its CPU counters, and the
//!   key count (`keys: N `, an fkvs extension; absent upstream);
//! * the preload writes every key a read workload will ask for, pipelined
//!   [`PRELOAD_BATCH`] SETs per write, so GETs hit. It is not timed.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use super::workload::{Keys, Workload};
use crate::client::{Client, ClientError, Endpoint};
use crate::protocol::{Reply, Request};

/// SETs per pipelined preload write.
const PRELOAD_BATCH: u64 = 512;

/// The control connection waits at least this long for a reply: it is
/// never timed, and a preload batch on a busy machine can take a while.
const CONTROL_TIMEOUT_MIN: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{during}: {}", explain(.source, *.timeout))]
    Client { during: &'static str, source: ClientError, timeout: Duration },
    #[error("preload: SET {key} was answered with {reply} instead of the stored value")]
    PreloadRejected { key: String, reply: String },
}

/// A read timeout on a blocking socket surfaces as `EAGAIN`; say what it
/// means instead.
fn explain(err: &ClientError, timeout: Duration) -> String {
    match err {
        ClientError::Io(io) if matches!(io.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            format!("no reply from the server within {} s", timeout.as_secs_f64())
        }
        other => other.to_string(),
    }
}

/// What INFO says, as far as the benchmark cares.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerFacts {
    pub pid: Option<u32>,
    pub keys: Option<u64>,
}

/// What the preload did.
#[derive(Debug, Clone, Copy)]
pub struct Preloaded {
    pub keys: u64,
    pub elapsed: Duration,
}

pub struct Control {
    client: Client,
    timeout: Duration,
}

impl Control {
    /// Connects; the error is the plain connect error, for a clear
    /// "cannot connect" message.
    pub fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Control, ClientError> {
        let timeout = timeout.max(CONTROL_TIMEOUT_MIN);
        let mut client = Client::connect(endpoint)?;
        client.set_timeout(Some(timeout))?;
        Ok(Control { client, timeout })
    }

    fn failed(&self, during: &'static str) -> impl FnOnce(ClientError) -> ControlError {
        let timeout = self.timeout;
        move |source| ControlError::Client { during, source, timeout }
    }

    /// Asks INFO; fields it does not carry stay `None`.
    pub fn server_facts(&mut self) -> Result<ServerFacts, ControlError> {
        let failed = self.failed("INFO");
        match self.client.call(&Request::Info).map_err(failed)? {
            Reply::Typed(_, text) => Ok(parse_info(&String::from_utf8_lossy(text))),
            _ => Ok(ServerFacts::default()),
        }
    }

    /// Writes the keys the workload reads: every key of its key space, or
    /// its fixed key. Unique-key workloads read nothing and are not
    /// preloaded.
    pub fn preload(&mut self, workload: &Workload) -> Result<Option<Preloaded>, ControlError> {
        if !workload.reads_keys() {
            return Ok(None);
        }
        let started = Instant::now();
        let value = workload.value();
        let keys = match workload.spec().keys {
            Keys::Fixed => {
                self.set_batch(&[workload.fixed_key().to_vec()], value)?;
                1
            }
            Keys::Space { keys, .. } => {
                let mut batch = Vec::with_capacity(PRELOAD_BATCH as usize);
                let mut next = 0;
                while next < keys {
                    let end = (next + PRELOAD_BATCH).min(keys);
                    batch.clear();
                    batch.extend((next..end).map(|index| workload.keyspace_key(index).to_vec()));
                    self.set_batch(&batch, value)?;
                    next = end;
                }
                keys
            }
            Keys::Unique => return Ok(None),
        };
        Ok(Some(Preloaded { keys, elapsed: started.elapsed() }))
    }

    /// One pipelined write of SETs, then every reply checked.
    fn set_batch(&mut self, keys: &[Vec<u8>], value: &[u8]) -> Result<(), ControlError> {
        for key in keys {
            self.client.queue(&Request::Set { key, value, expiry_seconds: None }).map_err(self.failed("preload"))?;
        }
        self.client.flush().map_err(self.failed("preload"))?;
        for key in keys {
            let failed = self.failed("preload");
            match self.client.recv().map_err(failed)? {
                Reply::Value(stored) if stored == value => {}
                other => {
                    return Err(ControlError::PreloadRejected {
                        key: String::from_utf8_lossy(key).into_owned(),
                        reply: format!("{other:?}"),
                    })
                }
            }
        }
        Ok(())
    }
}

fn parse_info(text: &str) -> ServerFacts {
    let field = |name: &str| {
        text.lines().find_map(|line| line.strip_prefix(name).and_then(|rest| rest.trim().parse::<u64>().ok()))
    };
    ServerFacts { pid: field("pid:").and_then(|pid| u32::try_from(pid).ok()), keys: field("keys:") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_explained() {
        let timeout = ControlError::Client {
            during: "preload",
            source: ClientError::Io(std::io::Error::from(ErrorKind::WouldBlock)),
            timeout: Duration::from_secs(10),
        };
        assert_eq!(timeout.to_string(), "preload: no reply from the server within 10 s");
        let closed = ControlError::Client { during: "INFO", source: ClientError::Closed, timeout: Duration::ZERO };
        assert_eq!(closed.to_string(), "INFO: the server closed the connection");
    }

    #[test]
    fn info_fields_are_found_with_their_trailing_spaces() {
        let text = "# Server \npid: 4242 \nport: 5995 \n\n# Keyspace \nkeys: 17 \n";
        let facts = parse_info(text);
        assert_eq!(facts.pid, Some(4242));
        assert_eq!(facts.keys, Some(17));
        let upstream = parse_info("# Server \npid: 9 \n");
        assert_eq!((upstream.pid, upstream.keys), (Some(9), None));
    }
}
