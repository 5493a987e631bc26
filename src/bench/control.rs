//! The control connection: one blocking [`Client`] used before and after
//! the timed section, never during it.
//!
//! * It proves the server is reachable (a clear error instead of a run full
//!   of failures);
//! * INFO gives the server's pid (`pid: N `), for its CPU counters, and the
//!   key count (`keys: N `, an fkvs extension; absent upstream);
//! * the preload writes every key a read workload will ask for, pipelined
//!   [`PRELOAD_BATCH`] SETs per write, so GETs hit. It is not timed.

use std::time::{Duration, Instant};

use super::workload::{Keys, Workload};
use crate::client::{Client, ClientError, Endpoint};
use crate::protocol::{Reply, Request};

/// SETs per pipelined preload write.
const PRELOAD_BATCH: u64 = 512;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("preload: SET {key} was answered with {reply} instead of the stored value")]
    PreloadRejected { key: String, reply: String },
}

/// What INFO says, as far as the benchmark cares.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerFacts {
    pub pid: Option<u32>,
    pub keys: Option<u64>,
}

pub fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Client, ClientError> {
    let mut client = Client::connect(endpoint)?;
    client.set_timeout(Some(timeout))?;
    Ok(client)
}

/// Asks INFO; fields it does not carry stay `None`.
pub fn server_facts(client: &mut Client) -> Result<ServerFacts, ClientError> {
    match client.call(&Request::Info)? {
        Reply::Typed(_, text) => Ok(parse_info(&String::from_utf8_lossy(text))),
        _ => Ok(ServerFacts::default()),
    }
}

fn parse_info(text: &str) -> ServerFacts {
    let field = |name: &str| {
        text.lines().find_map(|line| line.strip_prefix(name).and_then(|rest| rest.trim().parse::<u64>().ok()))
    };
    ServerFacts { pid: field("pid:").and_then(|pid| u32::try_from(pid).ok()), keys: field("keys:") }
}

/// What the preload did.
#[derive(Debug, Clone, Copy)]
pub struct Preloaded {
    pub keys: u64,
    pub elapsed: Duration,
}

/// Writes the keys the workload reads: every key of its key space, or its
/// fixed key. Unique-key workloads read nothing and are not preloaded.
pub fn preload(client: &mut Client, workload: &Workload) -> Result<Option<Preloaded>, ControlError> {
    if !workload.reads_keys() {
        return Ok(None);
    }
    let started = Instant::now();
    let value = workload.value();
    let keys = match workload.spec().keys {
        Keys::Fixed => {
            set_batch(client, &[workload.fixed_key().to_vec()], value)?;
            1
        }
        Keys::Space { keys, .. } => {
            let mut batch = Vec::with_capacity(PRELOAD_BATCH as usize);
            let mut next = 0;
            while next < keys {
                let end = (next + PRELOAD_BATCH).min(keys);
                batch.clear();
                batch.extend((next..end).map(|index| workload.keyspace_key(index).to_vec()));
                set_batch(client, &batch, value)?;
                next = end;
            }
            keys
        }
        Keys::Unique => return Ok(None),
    };
    Ok(Some(Preloaded { keys, elapsed: started.elapsed() }))
}

/// One pipelined write of SETs, then every reply checked.
fn set_batch(client: &mut Client, keys: &[Vec<u8>], value: &[u8]) -> Result<(), ControlError> {
    for key in keys {
        client.queue(&Request::Set { key, value, expiry_seconds: None })?;
    }
    client.flush()?;
    for key in keys {
        match client.recv()? {
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

#[cfg(test)]
mod tests {
    use super::*;

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
