//! A minimal DNS stub resolver: one A and one AAAA query over UDP (RFC 1035) with random
//! query IDs, asked again over TCP when the UDP answer is truncated (TC), no search list, no
//! cache. Enough to answer "does this name resolve through the node's nameservers within
//! T"; not a general resolver.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// Response codes we name.
pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_REFUSED: u8 = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("invalid DNS name {0:?}")]
    InvalidName(String),
    #[error("malformed DNS response: {0}")]
    Malformed(&'static str),
    #[error("cannot query {server}: {error}")]
    Io { server: SocketAddr, error: String },
}

/// Encode a query for `name` (absolute; a trailing dot is optional) with recursion desired.
pub fn build_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, DnsError> {
    let invalid = || DnsError::InvalidName(name.to_string());
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(invalid());
    }
    let mut q = Vec::with_capacity(18 + trimmed.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1, AN=NS=AR=0
    for label in trimmed.split('.') {
        let len = u8::try_from(label.len()).map_err(|_| invalid())?;
        if len == 0 || len > 63 || !label.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid());
        }
        q.push(len);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

/// What a response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub id: u16,
    pub rcode: u8,
    pub truncated: bool,
    /// A and AAAA records of the answer section (any owner name: CNAME chains included).
    pub addrs: Vec<IpAddr>,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// Skip an encoded name starting at `i`; returns the index after it.
fn skip_name(b: &[u8], mut i: usize) -> Result<usize, DnsError> {
    for _ in 0..128 {
        let len = *b
            .get(i)
            .ok_or(DnsError::Malformed("name runs past the end"))?;
        match len & 0xC0 {
            0x00 if len == 0 => return Ok(i + 1),
            0x00 => i += 1 + usize::from(len),
            0xC0 => {
                b.get(i + 1)
                    .ok_or(DnsError::Malformed("pointer runs past the end"))?;
                return Ok(i + 2);
            }
            _ => return Err(DnsError::Malformed("unsupported label type")),
        }
    }
    Err(DnsError::Malformed("name has too many labels"))
}

/// Decode a response (pure, bounds-checked).
pub fn parse_response(b: &[u8]) -> Result<Answer, DnsError> {
    let short = DnsError::Malformed("shorter than a header");
    let id = u16_at(b, 0).ok_or(short.clone())?;
    let flags = u16_at(b, 2).ok_or(short.clone())?;
    if flags & 0x8000 == 0 {
        return Err(DnsError::Malformed("not a response (QR=0)"));
    }
    let qd = u16_at(b, 4).ok_or(short.clone())?;
    let an = u16_at(b, 6).ok_or(short)?;
    let mut i = 12;
    for _ in 0..qd {
        i = skip_name(b, i)? + 4;
    }
    let mut addrs = Vec::new();
    for _ in 0..an {
        i = skip_name(b, i)?;
        let rtype = u16_at(b, i).ok_or(DnsError::Malformed("record runs past the end"))?;
        let class = u16_at(b, i + 2).ok_or(DnsError::Malformed("record runs past the end"))?;
        let rdlen =
            usize::from(u16_at(b, i + 8).ok_or(DnsError::Malformed("record runs past the end"))?);
        let rdata = b
            .get(i + 10..i + 10 + rdlen)
            .ok_or(DnsError::Malformed("rdata runs past the end"))?;
        if class == CLASS_IN {
            match (rtype, rdata.len()) {
                (TYPE_A, 4) => addrs.push(IpAddr::V4(Ipv4Addr::new(
                    rdata[0], rdata[1], rdata[2], rdata[3],
                ))),
                (TYPE_AAAA, 16) => {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(rdata);
                    addrs.push(IpAddr::V6(Ipv6Addr::from(o)));
                }
                (TYPE_A | TYPE_AAAA, _) => {
                    return Err(DnsError::Malformed("address record of the wrong size"))
                }
                _ => {}
            }
        }
        i += 10 + rdlen;
    }
    Ok(Answer {
        id,
        rcode: (flags & 0x000F) as u8,
        truncated: flags & 0x0200 != 0,
        addrs,
    })
}

/// Nameservers of a resolv.conf (pure): `nameserver` lines, IPv4 or IPv6 (a `%zone` suffix
/// is dropped), port 53, at most 3 (glibc's MAXNS). None listed → 127.0.0.1, as glibc does.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let mut words = line.split_ascii_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = words.next() else { continue };
        let addr = addr.split('%').next().unwrap_or(addr);
        if let Ok(ip) = addr.parse::<IpAddr>() {
            if out.len() < 3 {
                out.push(SocketAddr::new(ip, 53));
            }
        }
    }
    if out.is_empty() {
        out.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
    }
    out
}

/// The result of asking one server about one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// At least one address.
    Addresses(Vec<IpAddr>),
    /// The name does not exist (authoritative NXDOMAIN).
    NxDomain,
    /// The name exists but has no A/AAAA records.
    NoData,
    /// The server answered with another error code.
    ServerError(u8),
    /// No (usable) answer within the timeout.
    Timeout,
}

/// A random query ID (an off-path attacker must not guess it; the clock is guessable).
pub fn random_id() -> u16 {
    let mut b = [0u8; 2];
    if getrandom::getrandom(&mut b).is_err() {
        // no entropy source: still not the clock
        let h =
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8);
        return h as u16;
    }
    u16::from_ne_bytes(b)
}

/// Ask `server` over TCP (after a truncated UDP answer): 2-byte length, message.
async fn query_tcp(
    server: SocketAddr,
    query: &[u8],
    deadline: tokio::time::Instant,
) -> Result<Answer, DnsError> {
    let io = |e: std::io::Error| DnsError::Io {
        server,
        error: format!("over TCP: {e}"),
    };
    let exchange = async {
        let mut s = TcpStream::connect(server).await?;
        let mut msg = (query.len() as u16).to_be_bytes().to_vec();
        msg.extend_from_slice(query);
        s.write_all(&msg).await?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = match tokio::time::timeout_at(deadline, exchange).await {
        Ok(r) => r.map_err(io)?,
        Err(_) => return Err(io(std::io::ErrorKind::TimedOut.into())),
    };
    parse_response(&buf)
}

/// Ask `server` for the A and AAAA records of `name`, waiting at most `timeout`.
pub async fn resolve(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Resolution, DnsError> {
    let id_a = random_id();
    let id_aaaa = loop {
        let id = random_id();
        if id != id_a {
            break id;
        }
    };
    let qa = build_query(id_a, name, TYPE_A)?;
    let qaaaa = build_query(id_aaaa, name, TYPE_AAAA)?;
    let io = |e: std::io::Error| DnsError::Io {
        server,
        error: e.to_string(),
    };
    let bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).await.map_err(io)?;
    // connect() makes the kernel drop datagrams from any other source.
    sock.connect(server).await.map_err(io)?;
    sock.send(&qa).await.map_err(io)?;
    sock.send(&qaaaa).await.map_err(io)?;
    let mut got: [Option<Answer>; 2] = [None, None];
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = vec![0u8; 4096];
    while got.iter().any(Option::is_none) {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Err(_) => break,
            Ok(Err(e)) => {
                // ICMP port unreachable surfaces here as ECONNREFUSED: nobody serves DNS there.
                return Err(io(e));
            }
            Ok(Ok(n)) => n,
        };
        let Ok(ans) = parse_response(&buf[..n]) else {
            continue; // ignore garbage, keep waiting for a real answer
        };
        let slot = if ans.id == id_a {
            0
        } else if ans.id == id_aaaa {
            1
        } else {
            continue;
        };
        // Truncated: the records did not fit a datagram; ask again over TCP. (A TC answer
        // without records is not "no records".)
        let ans = if ans.truncated && ans.addrs.is_empty() {
            let q = if slot == 0 { &qa } else { &qaaaa };
            query_tcp(server, q, deadline).await?
        } else {
            ans
        };
        if !ans.addrs.is_empty() {
            return Ok(Resolution::Addresses(ans.addrs));
        }
        got[slot] = Some(ans);
    }
    let answers: Vec<&Answer> = got.iter().flatten().collect();
    if answers.iter().any(|a| a.rcode == RCODE_NXDOMAIN) {
        return Ok(Resolution::NxDomain);
    }
    if let Some(a) = answers.iter().find(|a| a.rcode != RCODE_NOERROR) {
        return Ok(Resolution::ServerError(a.rcode));
    }
    if answers.len() == 2 {
        return Ok(Resolution::NoData);
    }
    Ok(Resolution::Timeout)
}

/// Name of a response code for messages.
pub fn rcode_name(rcode: u8) -> String {
    match rcode {
        RCODE_NOERROR => "NOERROR".into(),
        1 => "FORMERR".into(),
        RCODE_SERVFAIL => "SERVFAIL".into(),
        RCODE_NXDOMAIN => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        RCODE_REFUSED => "REFUSED".into(),
        n => format!("rcode {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `query` with `rcode` and the given answer records (name as a pointer to
    /// the question).
    pub(crate) fn respond(query: &[u8], rcode: u8, answers: &[(u16, &[u8])]) -> Vec<u8> {
        let mut r = query.to_vec();
        r[2] = 0x81 | (query[2] & 0x01);
        r[3] = 0x80 | rcode;
        r[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        for (t, data) in answers {
            r.extend_from_slice(&[0xC0, 12]);
            r.extend_from_slice(&t.to_be_bytes());
            r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            r.extend_from_slice(&(data.len() as u16).to_be_bytes());
            r.extend_from_slice(data);
        }
        r
    }

    #[test]
    fn query_encoding() {
        let q = build_query(0xABCD, "ok.example.", TYPE_A).unwrap();
        assert_eq!(
            q,
            [
                0xAB, 0xCD, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, b'o', b'k', 7, b'e', b'x', b'a', b'm',
                b'p', b'l', b'e', 0, 0, 1, 0, 1
            ]
        );
        assert_eq!(q, build_query(0xABCD, "ok.example", TYPE_A).unwrap());
        for bad in [
            "",
            ".",
            "a..b",
            &"x".repeat(64),
            &"a.".repeat(130),
            "sp ace.com",
        ] {
            assert!(build_query(1, bad, TYPE_A).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn response_decoding() {
        let q = build_query(7, "ok.nodeprobe.invalid", TYPE_A).unwrap();
        let r = respond(&q, 0, &[(5, b"\x02ok\xC0\x0C"), (TYPE_A, &[192, 0, 2, 10])]);
        let a = parse_response(&r).unwrap();
        assert_eq!(a.id, 7);
        assert_eq!(a.rcode, 0);
        assert_eq!(a.addrs, vec!["192.0.2.10".parse::<IpAddr>().unwrap()]);
        let v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let r = respond(&q, 0, &[(TYPE_AAAA, &v6)]);
        assert_eq!(
            parse_response(&r).unwrap().addrs,
            vec!["2001:db8::1".parse::<IpAddr>().unwrap()]
        );
        let nx = parse_response(&respond(&q, RCODE_NXDOMAIN, &[])).unwrap();
        assert_eq!((nx.rcode, nx.addrs.len()), (RCODE_NXDOMAIN, 0));
    }

    #[test]
    fn malformed_responses_are_errors_not_panics() {
        let q = build_query(7, "ok.nodeprobe.invalid", TYPE_A).unwrap();
        assert!(parse_response(&q).is_err(), "a query is not a response");
        assert!(parse_response(&[0x80]).is_err());
        let good = respond(&q, 0, &[(TYPE_A, &[1, 2, 3, 4])]);
        for cut in 0..good.len() {
            let _ = parse_response(&good[..cut]); // must not panic
        }
        assert!(parse_response(&good[..good.len() - 1]).is_err());
        let wrong_size = respond(&q, 0, &[(TYPE_A, &[1, 2, 3])]);
        assert!(parse_response(&wrong_size).is_err());
        // A pointer loop in the question is bounded.
        let mut lp = q.clone();
        lp.truncate(12);
        lp[2] = 0x81;
        lp.extend_from_slice(&[1, b'a', 0xC0, 12, 0, 1, 0, 1]);
        let _ = parse_response(&lp);
    }

    #[test]
    fn resolv_conf() {
        let text = "# generated\nsearch cluster.local\nnameserver 10.96.0.10\nnameserver fe80::1%eth0\n  nameserver   1.1.1.1 \nnameserver bogus\nnameserver 8.8.8.8\noptions ndots:5\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                "10.96.0.10:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap(),
                "1.1.1.1:53".parse().unwrap()
            ]
        );
        assert_eq!(
            parse_resolv_conf("search x\n"),
            vec!["127.0.0.1:53".parse::<SocketAddr>().unwrap()]
        );
    }

    #[tokio::test]
    async fn resolves_against_a_local_responder() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            for _ in 0..4 {
                let (n, peer) = server.recv_from(&mut buf).unwrap();
                let q = &buf[..n];
                let is_ok = q.windows(3).any(|w| w == b"\x02ok");
                let qtype = u16::from_be_bytes([q[n - 4], q[n - 3]]);
                let r = match (is_ok, qtype) {
                    (true, TYPE_A) => respond(q, 0, &[(TYPE_A, &[192, 0, 2, 10])]),
                    (true, _) => respond(q, 0, &[]),
                    (false, _) => respond(q, RCODE_NXDOMAIN, &[]),
                };
                server.send_to(&r, peer).unwrap();
            }
        });
        let ok = resolve(addr, "ok.nodeprobe.invalid", Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(
            ok,
            Resolution::Addresses(vec!["192.0.2.10".parse().unwrap()])
        );
        let nx = resolve(addr, "nx.nodeprobe.invalid", Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(nx, Resolution::NxDomain);
        t.join().unwrap();
        // Silence: a bound socket that never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let r = resolve(
            silent.local_addr().unwrap(),
            "ok.nodeprobe.invalid",
            Duration::from_millis(200),
        )
        .await
        .unwrap();
        assert_eq!(r, Resolution::Timeout);
    }

    /// A server whose UDP answers are truncated (TC, no records) and which answers over TCP
    /// on the same port: the records come over TCP. Also returns the query IDs it saw.
    #[tokio::test]
    async fn a_truncated_answer_is_asked_again_over_tcp_with_random_ids() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        let udp = std::net::UdpSocket::bind(addr).unwrap();
        let ids = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = ids.clone();
        let u = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            for _ in 0..4 {
                let (n, peer) = udp.recv_from(&mut buf).unwrap();
                seen.lock()
                    .unwrap()
                    .push(u16::from_be_bytes([buf[0], buf[1]]));
                let mut r = respond(&buf[..n], 0, &[]);
                r[2] |= 0x02; // TC
                udp.send_to(&r, peer).unwrap();
            }
        });
        let t = std::thread::spawn(move || {
            use std::io::{Read, Write};
            for _ in 0..4 {
                let (mut c, _) = tcp.accept().unwrap();
                let mut len = [0u8; 2];
                c.read_exact(&mut len).unwrap();
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                c.read_exact(&mut q).unwrap();
                let qtype = u16::from_be_bytes([q[q.len() - 4], q[q.len() - 3]]);
                let r = match qtype {
                    TYPE_A => respond(&q, 0, &[(TYPE_A, &[192, 0, 2, 53])]),
                    _ => respond(&q, 0, &[]),
                };
                let mut out = (r.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&r);
                c.write_all(&out).unwrap();
            }
        });
        for _ in 0..2 {
            let r = resolve(addr, "big.nodeprobe.invalid", Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(
                r,
                Resolution::Addresses(vec!["192.0.2.53".parse().unwrap()])
            );
        }
        // (the threads end once they served both resolves, A and AAAA each)
        let mut seen = ids.lock().unwrap().clone();
        drop(u);
        drop(t);
        seen.sort();
        seen.dedup();
        assert!(seen.len() >= 3, "query IDs are not random: {seen:?}");
    }
}
