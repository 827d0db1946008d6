//! Listening sockets: one per worker per `--listen` address, joined with SO_REUSEPORT so that
//! the kernel spreads new connections over the workers.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// `accept(2)` errors that mean this process, or the system, is out of descriptors.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// What one `accept` on a non-blocking listener came to.
pub(crate) enum Accepted {
    Client(mio::net::TcpStream, SocketAddr),
    /// The backlog is empty (WouldBlock).
    Drained,
    /// Out of descriptors: the caller pauses accepting rather than spin on a full backlog.
    OutOfDescriptors(io::Error),
    /// A failure that concerns one client only (ECONNABORTED and the like).
    ClientFailed(io::Error),
}

/// Accepts one client from `listener`, retrying when interrupted.
pub(crate) fn accept(listener: &mio::net::TcpListener) -> Accepted {
    loop {
        return match listener.accept() {
            Ok((stream, peer)) => Accepted::Client(stream, peer),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Accepted::Drained,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.raw_os_error(), Some(EMFILE | ENFILE)) => {
                Accepted::OutOfDescriptors(e)
            }
            Err(e) => Accepted::ClientFailed(e),
        };
    }
}

/// Pending connections the kernel may queue per listener.
const BACKLOG: i32 = 1024;

fn socket_for(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    Ok(socket)
}

/// Binds `count` listeners to `addr`. A port that another socket already listens on is an error
/// even when that socket also uses SO_REUSEPORT (which would silently share the port): a probe
/// without SO_REUSEPORT is bound first. Port 0 gets one port, the same for all `count`.
///
/// The listeners carry TCP_NODELAY, which accepted sockets inherit: every reply is written
/// whole, so Nagle's algorithm could only hold a reply back, and setting it here spares a
/// system call per connection.
pub fn bind_group(
    addr: SocketAddr,
    count: usize,
) -> io::Result<(SocketAddr, Vec<mio::net::TcpListener>)> {
    let probe = socket_for(addr)?;
    probe.bind(&addr.into())?;
    let bound = probe
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("bound address is not an IP address"))?;
    drop(probe);
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = socket_for(bound)?;
        socket.set_reuse_port(true)?;
        socket.set_nodelay(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&bound.into())?;
        socket.listen(BACKLOG)?;
        listeners.push(mio::net::TcpListener::from_std(socket.into()));
    }
    Ok((bound, listeners))
}

/// Every `--listen` address bound for `workers` workers, before any of them runs: binding comes
/// first so that a port in use is a start-up error, and so that `--user` can give up root
/// once the ports below 1024 are bound.
pub struct Bound {
    /// The addresses bound (port 0 resolved), in `--listen` order.
    pub local_addrs: Vec<SocketAddr>,
    /// Each worker's listeners, one per address.
    pub per_worker: Vec<Vec<mio::net::TcpListener>>,
}

/// Binds every address of `listen` once per worker (see [`bind_group`]); the error names the
/// address.
pub fn bind_all(listen: &[SocketAddr], workers: usize) -> Result<Bound, String> {
    let workers = workers.max(1);
    let mut per_worker: Vec<Vec<mio::net::TcpListener>> =
        (0..workers).map(|_| Vec::new()).collect();
    let mut local_addrs = Vec::new();
    for addr in listen {
        let (bound, listeners) =
            bind_group(*addr, workers).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        local_addrs.push(bound);
        for (w, l) in per_worker.iter_mut().zip(listeners) {
            w.push(l);
        }
    }
    Ok(Bound {
        local_addrs,
        per_worker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_sockets_inherit_nodelay() {
        let (bound, listeners) = bind_group(SocketAddr::from(([127, 0, 0, 1], 0)), 1).unwrap();
        let client = std::net::TcpStream::connect(bound).unwrap();
        assert!(!client.nodelay().unwrap());
        let listener = std::net::TcpListener::from(std::os::fd::OwnedFd::from(
            listeners.into_iter().next().unwrap(),
        ));
        listener.set_nonblocking(false).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
