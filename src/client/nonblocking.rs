//! A non-blocking connection for event-loop clients (the benchmark's
//! workers drive many of these from one epoll loop).
//!
//! Connecting is blocking (on loopback it takes microseconds, and a plain
//! error is easier to report than a half-open socket); afterwards the socket
//! is switched to non-blocking mode, so [`NonBlockingStream::read`] and
//! [`NonBlockingStream::write`] return `WouldBlock` instead of waiting.
//! Framing stays with the caller and [`crate::protocol`]; this file only
//! moves bytes.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

use super::{ClientError, Endpoint};

#[derive(Debug)]
pub enum NonBlockingStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl NonBlockingStream {
    /// Connects (blocking), then sets `TCP_NODELAY` and non-blocking mode.
    pub fn connect(endpoint: &Endpoint) -> Result<NonBlockingStream, ClientError> {
        let connect_error = |source| ClientError::Connect { endpoint: endpoint.clone(), source };
        let stream = match endpoint {
            Endpoint::Tcp { host, port } => {
                let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no address for host");
                let mut connected = None;
                for address in (host.as_str(), *port).to_socket_addrs().map_err(connect_error)? {
                    match TcpStream::connect(address) {
                        Ok(stream) => {
                            connected = Some(stream);
                            break;
                        }
                        Err(err) => last_error = err,
                    }
                }
                let stream = connected.ok_or_else(|| connect_error(last_error))?;
                stream.set_nodelay(true)?;
                stream.set_nonblocking(true)?;
                NonBlockingStream::Tcp(stream)
            }
            Endpoint::Unix(path) => {
                let stream = UnixStream::connect(path).map_err(connect_error)?;
                stream.set_nonblocking(true)?;
                NonBlockingStream::Unix(stream)
            }
        };
        Ok(stream)
    }

    /// One `read(2)`; `WouldBlock` when nothing is waiting, `Ok(0)` at EOF.
    #[inline]
    pub fn read(&self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            NonBlockingStream::Tcp(stream) => (&*stream).read(buffer),
            NonBlockingStream::Unix(stream) => (&*stream).read(buffer),
        }
    }

    /// One `write(2)`; may write a prefix, or fail with `WouldBlock`.
    #[inline]
    pub fn write(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            NonBlockingStream::Tcp(stream) => (&*stream).write(bytes),
            NonBlockingStream::Unix(stream) => (&*stream).write(bytes),
        }
    }
}

impl AsRawFd for NonBlockingStream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            NonBlockingStream::Tcp(stream) => stream.as_raw_fd(),
            NonBlockingStream::Unix(stream) => stream.as_raw_fd(),
        }
    }
}
