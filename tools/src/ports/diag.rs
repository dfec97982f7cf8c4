//! The kernel's own socket table, through `NETLINK_SOCK_DIAG` (inet_diag), as `ss` reads it.
//!
//! `/proc/net/{tcp,udp}[6]` leaves out two things a review needs: the device a
//! socket is bound to (`SO_BINDTODEVICE`: `0.0.0.0%lo` takes connections on
//! loopback only) and whether an IPv6 socket is IPv6-only (a `v6only` `::`
//! listener does not take IPv4, so the IPv4 firewall does not guard it). The
//! inet_diag dump carries both (`idiag_if`, `INET_DIAG_SKV6ONLY`), and it is
//! one request per family and protocol instead of formatting and parsing a
//! text line per socket. Only listening TCP sockets and unconnected UDP ones
//! are asked for. The wire format is the kernel's stable UAPI
//! (`linux/inet_diag.h`, `linux/sock_diag.h`), read here by byte offset with
//! every length checked, so a short or odd message is an error, never a panic.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One socket as inet_diag reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagSocket {
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// Local address and port.
    pub addr: SocketAddr,
    /// Interface index the socket is bound to (0: none).
    pub ifindex: u32,
    /// For an IPv6 socket: IPv6-only (`IPV6_V6ONLY`).
    pub v6only: Option<bool>,
    /// Owner's uid.
    pub uid: u32,
    /// Socket inode.
    pub inode: u64,
}

/// `SOCK_DIAG_BY_FAMILY` (linux/sock_diag.h).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `TCP_LISTEN` and `TCP_CLOSE` (an unconnected UDP socket), as state bits.
const LISTEN: u32 = 1 << 10;
const UNCONNECTED: u32 = 1 << 7;
/// `INET_DIAG_SKV6ONLY` (linux/inet_diag.h).
const INET_DIAG_SKV6ONLY: u16 = 11;
/// `nlmsghdr` and `inet_diag_msg` sizes.
const NLMSG_HDR: usize = 16;
const DIAG_MSG: usize = 72;

/// Every listening TCP socket and unconnected UDP socket, IPv4 and IPv6, in the caller's network namespace.
pub fn dump() -> io::Result<Vec<DiagSocket>> {
    let sock = open()?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for (proto, number, states) in [("tcp", libc::IPPROTO_TCP, LISTEN), ("udp", libc::IPPROTO_UDP, UNCONNECTED)] {
        for family in [libc::AF_INET, libc::AF_INET6] {
            request(&sock, family as u8, number as u8, states)?;
            loop {
                let n = receive(&sock, &mut buf)?;
                if parse(&buf[..n], proto, &mut out)? {
                    break;
                }
            }
        }
    }
    Ok(out)
}

fn open() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the descriptor is owned from here on.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::NETLINK_SOCK_DIAG) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Send one `inet_diag_req_v2` dump request.
fn request(sock: &OwnedFd, family: u8, protocol: u8, states: u32) -> io::Result<()> {
    let mut msg = [0u8; NLMSG_HDR + 56];
    msg[0..4].copy_from_slice(&((NLMSG_HDR + 56) as u32).to_ne_bytes());
    msg[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // inet_diag_req_v2: family, protocol, ext, pad, states, then a zero inet_diag_sockid.
    msg[NLMSG_HDR] = family;
    msg[NLMSG_HDR + 1] = protocol;
    msg[NLMSG_HDR + 4..NLMSG_HDR + 8].copy_from_slice(&states.to_ne_bytes());
    // SAFETY: an all-zero sockaddr_nl is valid (pid 0: the kernel).
    let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: `msg` and `to` are valid for the lengths passed for the whole call.
    let n = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&raw const to).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn receive(sock: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is writable for its length for the whole call.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn short(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("sock_diag answered a short {what}"))
}

/// Parse one datagram of netlink messages into `out`; true once the dump is done.
fn parse(mut b: &[u8], proto: &'static str, out: &mut Vec<DiagSocket>) -> io::Result<bool> {
    while b.len() >= NLMSG_HDR {
        let len = u32_at(b, 0).ok_or_else(|| short("header"))? as usize;
        let kind = u16_at(b, 4).ok_or_else(|| short("header"))?;
        if len < NLMSG_HDR || len > b.len() {
            return Err(short("message"));
        }
        let body = &b[NLMSG_HDR..len];
        match kind {
            k if k == libc::NLMSG_DONE as u16 => return Ok(true),
            k if k == libc::NLMSG_ERROR as u16 => {
                let code = u32_at(body, 0).ok_or_else(|| short("error"))? as i32;
                return Err(io::Error::from_raw_os_error(-code));
            }
            SOCK_DIAG_BY_FAMILY => out.push(socket(body, proto).ok_or_else(|| short("inet_diag_msg"))?),
            _ => {}
        }
        b = b.get((len + 3) & !3..).unwrap_or_default();
    }
    Ok(false)
}

/// One `inet_diag_msg` and its attributes.
fn socket(m: &[u8], proto: &'static str) -> Option<DiagSocket> {
    if m.len() < DIAG_MSG {
        return None;
    }
    let port = u16::from_be_bytes([m[4], m[5]]);
    let ip = match i32::from(m[0]) {
        libc::AF_INET => IpAddr::V4(Ipv4Addr::new(m[8], m[9], m[10], m[11])),
        libc::AF_INET6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&m[8..24]).ok()?)),
        _ => return None,
    };
    let mut v6only = None;
    let mut attrs = &m[DIAG_MSG..];
    while attrs.len() >= 4 {
        let len = usize::from(u16_at(attrs, 0)?);
        let kind = u16_at(attrs, 2)?;
        if len < 4 || len > attrs.len() {
            break;
        }
        if kind == INET_DIAG_SKV6ONLY && len > 4 {
            v6only = Some(attrs[4] != 0);
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or_default();
    }
    Some(DiagSocket {
        proto,
        addr: SocketAddr::new(ip, port),
        ifindex: u32_at(m, 40)?,
        v6only: if ip.is_ipv6() { v6only } else { None },
        uid: u32_at(m, 64)?,
        inode: u64::from(u32_at(m, 68)?),
    })
}

/// The name of interface `index` (`lo`, `eth0`), or the number when it has none any more.
pub fn interface_name(index: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` is IF_NAMESIZE bytes, as if_indextoname requires; it writes a NUL-terminated name.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return format!("if{index}");
    }
    // SAFETY: on success `buf` holds a NUL-terminated string within its length.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(family: u8, port: u16, addr: &[u8], ifindex: u32, attrs: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; DIAG_MSG];
        m[0] = family;
        m[1] = 10;
        m[4..6].copy_from_slice(&port.to_be_bytes());
        m[8..8 + addr.len()].copy_from_slice(addr);
        m[40..44].copy_from_slice(&ifindex.to_ne_bytes());
        m[64..68].copy_from_slice(&33u32.to_ne_bytes());
        m[68..72].copy_from_slice(&4242u32.to_ne_bytes());
        m.extend_from_slice(attrs);
        let mut h = Vec::new();
        h.extend_from_slice(&((NLMSG_HDR + m.len()) as u32).to_ne_bytes());
        h.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        h.extend_from_slice(&[0u8; 10]);
        h.extend(m);
        h
    }

    #[test]
    fn reads_address_device_and_v6only_and_rejects_short_messages() {
        let v6only_attr = [5u8, 0, 11, 0, 1, 0, 0, 0];
        let mut datagram = message(libc::AF_INET as u8, 8080, &[0, 0, 0, 0], 1, &[]);
        datagram.extend(message(libc::AF_INET6 as u8, 22, &[0; 16], 0, &v6only_attr));
        let mut out = Vec::new();
        assert!(!parse(&datagram, "tcp", &mut out).unwrap());
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].addr.to_string(), out[0].ifindex, out[0].v6only), ("0.0.0.0:8080".into(), 1, None));
        assert_eq!(
            (out[1].addr.to_string(), out[1].v6only, out[1].uid, out[1].inode),
            ("[::]:22".into(), Some(true), 33, 4242)
        );
        // Cut anywhere, the datagram is an error or fewer sockets, never a panic.
        for cut in 0..datagram.len() {
            let mut some = Vec::new();
            let _ = parse(&datagram[..cut], "tcp", &mut some);
            assert!(some.len() <= 2);
        }
        let mut bad = datagram.clone();
        bad[0..4].copy_from_slice(&9999u32.to_ne_bytes());
        assert!(parse(&bad, "tcp", &mut Vec::new()).is_err());
    }
}
