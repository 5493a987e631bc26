//! A small blocking fkvs client with pipelining, used by the CLI, the
//! benchmark and the tests. All wire knowledge comes from
//! [`crate::protocol`]; this room only moves frames over a socket.
//!
//! Requests are encoded into one buffer and sent with one write on
//! [`Client::flush`], so queuing N requests and flushing is one syscall.
//! Replies are decoded in place and lent to the caller until the next read.

pub mod nonblocking;

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::request::RequestTooLarge;
use crate::protocol::{split_reply_frame, FrameSplit, Reply, ReplyDecodeError, Request};

/// The default server port, shared with the server's defaults.
pub const DEFAULT_PORT: u16 = crate::server::config::DEFAULT_PORT;

/// Receive buffer: one whole maximal reply frame (2 + 65 535 bytes) fits.
const RECV_BUFFER_BYTES: usize = 2 + u16::MAX as usize;

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {endpoint}: {source}")]
    Connect { endpoint: Endpoint, source: io::Error },
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("malformed reply: {0}")]
    Malformed(#[from] ReplyDecodeError),
    #[error(transparent)]
    TooLarge(#[from] RequestTooLarge),
}

/// A connected socket of either kind.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Connects (blocking) to the first address of `endpoint` that answers;
    /// TCP connections get `TCP_NODELAY`.
    fn connect(endpoint: &Endpoint) -> Result<Stream, ClientError> {
        let connect_error = |source| ClientError::Connect { endpoint: endpoint.clone(), source };
        match endpoint {
            Endpoint::Tcp { host, port } => {
                let addresses = (host.as_str(), *port).to_socket_addrs().map_err(connect_error)?;
                let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no address for host");
                for address in addresses {
                    match TcpStream::connect(address) {
                        Ok(stream) => {
                            stream.set_nodelay(true)?;
                            return Ok(Stream::Tcp(stream));
                        }
                        Err(err) => last_error = err,
                    }
                }
                Err(connect_error(last_error))
            }
            Endpoint::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).map_err(connect_error)?)),
        }
    }

    fn as_read(&mut self) -> &mut dyn Read {
        match self {
            Stream::Tcp(stream) => stream,
            Stream::Unix(stream) => stream,
        }
    }

    fn as_write(&mut self) -> &mut dyn Write {
        match self {
            Stream::Tcp(stream) => stream,
            Stream::Unix(stream) => stream,
        }
    }
}

pub struct Client {
    stream: Stream,
    send_buffer: Vec<u8>,
    recv_buffer: Box<[u8]>,
    /// Unconsumed received bytes are `recv_buffer[recv_start..recv_end]`.
    recv_start: usize,
    recv_end: usize,
    /// Bytes of the reply lent out by the last `recv`, consumed on the next.
    lent_bytes: usize,
}

impl Client {
    pub fn connect(endpoint: &Endpoint) -> Result<Client, ClientError> {
        let stream = Stream::connect(endpoint)?;
        Ok(Client {
            stream,
            send_buffer: Vec::with_capacity(4096),
            recv_buffer: vec![0; RECV_BUFFER_BYTES].into_boxed_slice(),
            recv_start: 0,
            recv_end: 0,
            lent_bytes: 0,
        })
    }

    /// Bounds every blocking read and write (`None`: wait forever).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match &self.stream {
            Stream::Tcp(stream) => {
                stream.set_read_timeout(timeout)?;
                stream.set_write_timeout(timeout)
            }
            Stream::Unix(stream) => {
                stream.set_read_timeout(timeout)?;
                stream.set_write_timeout(timeout)
            }
        }
    }

    /// Encodes a request into the send buffer; nothing is sent yet.
    pub fn queue(&mut self, request: &Request<'_>) -> Result<(), ClientError> {
        request.encode(&mut self.send_buffer)?;
        Ok(())
    }

    /// Queues raw bytes, for callers that build frames themselves.
    pub fn queue_raw(&mut self, bytes: &[u8]) {
        self.send_buffer.extend_from_slice(bytes);
    }

    /// Sends everything queued in one write.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        if !self.send_buffer.is_empty() {
            self.stream.as_write().write_all(&self.send_buffer)?;
            self.send_buffer.clear();
        }
        Ok(())
    }

    /// Reads the next reply. It is lent from the receive buffer until the
    /// next call.
    pub fn recv(&mut self) -> Result<Reply<'_>, ClientError> {
        self.recv_start += std::mem::take(&mut self.lent_bytes);
        loop {
            match split_reply_frame(&self.recv_buffer[self.recv_start..self.recv_end]) {
                FrameSplit::Frame { frame_bytes, .. } => {
                    let start = self.recv_start;
                    self.lent_bytes = frame_bytes;
                    return Ok(Reply::decode(&self.recv_buffer[start + 2..start + frame_bytes])?);
                }
                FrameSplit::Incomplete | FrameSplit::Oversized => self.fill()?,
            }
        }
    }

    /// Sends one request and waits for its reply.
    pub fn call(&mut self, request: &Request<'_>) -> Result<Reply<'_>, ClientError> {
        self.queue(request)?;
        self.flush()?;
        self.recv()
    }

    /// Reads more bytes, first moving a partial frame to the front.
    fn fill(&mut self) -> Result<(), ClientError> {
        if self.recv_start > 0 {
            self.recv_buffer.copy_within(self.recv_start..self.recv_end, 0);
            self.recv_end -= self.recv_start;
            self.recv_start = 0;
        }
        loop {
            match self.stream.as_read().read(&mut self.recv_buffer[self.recv_end..]) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(received) => {
                    self.recv_end += received;
                    return Ok(());
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err.into()),
            }
        }
    }
}
