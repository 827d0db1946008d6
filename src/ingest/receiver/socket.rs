//! The receiver's sockets: a TCP listener or a UDP socket per `--syslog-listen`, bound before
//! the receiver thread starts so that a port in use is a start-up error.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections the kernel may queue: far more than the forwarding hosts of a cluster
/// reconnecting at once after a restart.
const BACKLOG: i32 = 1024;

/// What the UDP receive buffer is asked to be: a burst of some thousands of log lines while
/// the receiver waits for the ingest thread. The kernel caps it at `net.core.rmem_max`.
const UDP_RECEIVE_BUFFER: usize = 4 << 20;

fn socket(addr: SocketAddr, kind: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    if addr.is_ipv6() {
        // `[::]` listens for IPv6 only: one `--syslog-listen` per family, as for `--listen`.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A non-blocking TCP listener on `addr` (SO_REUSEADDR, so that a restart does not wait for
/// the old connections' TIME_WAIT; no SO_REUSEPORT: two receivers must not share a port).
pub fn tcp(addr: SocketAddr) -> io::Result<(SocketAddr, mio::net::TcpListener)> {
    let socket = socket(addr, Type::STREAM, Protocol::TCP)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    let bound = bound(&socket)?;
    Ok((bound, mio::net::TcpListener::from_std(socket.into())))
}

/// A non-blocking UDP socket on `addr`, with a large receive buffer (best effort).
pub fn udp(addr: SocketAddr) -> io::Result<(SocketAddr, mio::net::UdpSocket)> {
    let socket = socket(addr, Type::DGRAM, Protocol::UDP)?;
    // Refused above rmem_max without privilege: the kernel then keeps its default, and the
    // drop counter says whether that was enough.
    let _ = socket.set_recv_buffer_size(UDP_RECEIVE_BUFFER);
    socket.bind(&addr.into())?;
    let bound = bound(&socket)?;
    Ok((bound, mio::net::UdpSocket::from_std(socket.into())))
}

fn bound(socket: &Socket) -> io::Result<SocketAddr> {
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("bound address is not an IP address"))
}
