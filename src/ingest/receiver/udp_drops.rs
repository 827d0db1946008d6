//! UDP loss, as the kernel counts it: a datagram that arrives while the socket's receive
//! buffer is full is dropped before the receiver can see it, and only the kernel knows. Its
//! count is the `drops` column of `/proc/net/udp` (and `udp6`), on the row of the socket's
//! inode, which `/proc/self/fd/N` names. Read without unsafe code (no `getsockopt`
//! `SO_RXQ_OVFL` control messages).

use std::io;
use std::os::fd::AsRawFd;

/// The kernel's drop counter of one UDP socket.
#[derive(Debug, Clone, Copy)]
pub struct UdpDrops {
    inode: u64,
}

impl UdpDrops {
    /// The counter of `socket`, found by its inode.
    pub fn of(socket: &impl AsRawFd) -> io::Result<UdpDrops> {
        let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd()))?;
        let link = link.to_string_lossy();
        let inode = link
            .strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("{link} is not a socket")))?;
        Ok(UdpDrops { inode })
    }

    /// Datagrams the kernel dropped for this socket since it was made; None when the tables
    /// cannot be read (no /proc) or no longer list it.
    pub fn read(&self) -> Option<u64> {
        ["/proc/net/udp", "/proc/net/udp6"]
            .iter()
            .find_map(|table| {
                let text = std::fs::read_to_string(table).ok()?;
                drops_in(&text, self.inode)
            })
    }
}

/// The `drops` of the row whose `inode` is `inode`, in a `/proc/net/udp` table: the inode is
/// a row's tenth field and drops its last (the header's names do not line up with the
/// fields: `tx_queue rx_queue` is one field, `tx:rx`).
fn drops_in(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|row| {
        let fields: Vec<&str> = row.split_ascii_whitespace().collect();
        if fields.len() < 13 || fields[9].parse::<u64>().ok()? != inode {
            return None;
        }
        fields.last()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_row_of_the_inode() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  611: 0100007F:0202 00000000:0000 07 00000000:00034100 00:00000000 00000000  1000        0 8849312 2 0000000000000000 17\n\
  612: 0100007F:0203 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 8849313 2 0000000000000000 0\n";
        assert_eq!(drops_in(table, 8_849_312), Some(17));
        assert_eq!(drops_in(table, 8_849_313), Some(0));
        assert_eq!(drops_in(table, 1), None);
        assert_eq!(drops_in("garbage\nx y z\n", 1), None);
    }

    #[test]
    fn a_fresh_socket_has_dropped_nothing() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(UdpDrops::of(&socket).unwrap().read(), Some(0));
        let socket = std::net::UdpSocket::bind("[::1]:0");
        if let Ok(socket) = socket {
            assert_eq!(UdpDrops::of(&socket).unwrap().read(), Some(0));
        }
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert!(UdpDrops::of(&file).is_err());
    }
}
