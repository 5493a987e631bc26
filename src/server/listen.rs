//! Listening sockets: TCP on an IPv4 or IPv6 address, or a Unix socket
//! (PROTOCOL.md §4.4, with §7.2 Q34: a live socket is never stolen).

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use socket2::{Domain, Socket, Type};

use super::config::Config;
use crate::io::Listener;

/// `sun_path` holds 108 bytes including the terminating NUL.
const UNIX_PATH_BYTES_MAX: usize = 107;

/// Mode of the Unix socket file, as upstream.
const UNIX_SOCKET_MODE: u32 = 0o770;

/// Mode of a socket directory the server creates, as upstream.
const UNIX_SOCKET_DIR_MODE: u32 = 0o755;

pub struct Bound {
    pub listeners: Vec<Listener>,
    /// The transport for the start-up log: `tcp on 127.0.0.1:5995`, …
    pub description: String,
    /// The TCP port actually bound, or the configured port in Unix mode.
    pub port: u16,
    /// Removes the socket file when the server stops.
    pub unix_socket: Option<UnixSocketFile>,
}

pub fn bind(config: &Config) -> anyhow::Result<Bound> {
    match &config.unixsocket {
        Some(path) => {
            let (listener, file) = bind_unix(path)?;
            Ok(Bound {
                listeners: vec![Listener::Unix(listener)],
                description: format!("unix domain socket {}", path.display()),
                port: config.port,
                unix_socket: Some(file),
            })
        }
        None => {
            let address = SocketAddr::new(config.bind, config.port);
            let listener =
                bind_tcp(address, config.max_clients).with_context(|| format!("cannot listen on {address}"))?;
            let local = listener.local_addr()?;
            Ok(Bound {
                listeners: vec![Listener::Tcp(listener)],
                description: format!("tcp on {local}"),
                port: local.port(),
                unix_socket: None,
            })
        }
    }
}

fn bind_tcp(address: SocketAddr, max_clients: u64) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&address.into())?;
    // max-clients doubles as the backlog (§3.5).
    socket.listen(max_clients.min(i32::MAX as u64) as i32)?;
    Ok(socket.into())
}

fn bind_unix(path: &Path) -> anyhow::Result<(UnixListener, UnixSocketFile)> {
    if path.as_os_str().len() > UNIX_PATH_BYTES_MAX {
        bail!("unix socket path {} is longer than {UNIX_PATH_BYTES_MAX} bytes", path.display());
    }
    create_parent_dir(path)?;
    remove_stale_socket(path)?;
    let listener = UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(UNIX_SOCKET_MODE))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    let inode = fs::metadata(path)?.ino();
    Ok((listener, UnixSocketFile { path: path.to_path_buf(), inode }))
}

/// Creates the immediate parent only, as upstream; a missing grandparent is
/// an error.
fn create_parent_dir(path: &Path) -> anyhow::Result<()> {
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) else { return Ok(()) };
    if parent.exists() {
        return Ok(());
    }
    fs::create_dir(parent).with_context(|| format!("cannot create socket directory {}", parent.display()))?;
    fs::set_permissions(parent, fs::Permissions::from_mode(UNIX_SOCKET_DIR_MODE))?;
    Ok(())
}

/// Removes a socket file nobody answers on; refuses if a server is live on
/// it or if the path is not a socket.
fn remove_stale_socket(path: &Path) -> anyhow::Result<()> {
    let Ok(metadata) = fs::symlink_metadata(path) else { return Ok(()) };
    if !metadata.file_type().is_socket() {
        bail!("{} exists and is not a socket; refusing to replace it", path.display());
    }
    if UnixStream::connect(path).is_ok() {
        bail!("another server is already listening on {}", path.display());
    }
    fs::remove_file(path).with_context(|| format!("cannot remove stale socket {}", path.display()))
}

/// The socket file this server created; unlinked on drop unless another
/// process has replaced it since.
pub struct UnixSocketFile {
    path: PathBuf,
    inode: u64,
}

impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        if fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.inode) {
            let _ = fs::remove_file(&self.path);
        }
    }
}
