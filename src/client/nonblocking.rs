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
use std::os::fd::{AsRawFd, RawFd};

use super::{ClientError, Endpoint, Stream};

pub struct NonBlockingStream(Stream);

impl NonBlockingStream {
    /// Connects (blocking), then switches the socket to non-blocking mode.
    pub fn connect(endpoint: &Endpoint) -> Result<NonBlockingStream, ClientError> {
        let stream = Stream::connect(endpoint)?;
        match &stream {
            Stream::Tcp(socket) => socket.set_nonblocking(true)?,
            Stream::Unix(socket) => socket.set_nonblocking(true)?,
        }
        Ok(NonBlockingStream(stream))
    }

    /// One `read(2)`; `WouldBlock` when nothing is waiting, `Ok(0)` at EOF.
    #[inline]
    pub fn read(&self, buffer: &mut [u8]) -> io::Result<usize> {
        match &self.0 {
            Stream::Tcp(stream) => (&*stream).read(buffer),
            Stream::Unix(stream) => (&*stream).read(buffer),
        }
    }

    /// One `write(2)`; may write a prefix, or fail with `WouldBlock`.
    #[inline]
    pub fn write(&self, bytes: &[u8]) -> io::Result<usize> {
        match &self.0 {
            Stream::Tcp(stream) => (&*stream).write(bytes),
            Stream::Unix(stream) => (&*stream).write(bytes),
        }
    }
}

impl AsRawFd for NonBlockingStream {
    fn as_raw_fd(&self) -> RawFd {
        match &self.0 {
            Stream::Tcp(stream) => stream.as_raw_fd(),
            Stream::Unix(stream) => stream.as_raw_fd(),
        }
    }
}
