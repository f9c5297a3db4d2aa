//! DNS (`probes::clients::dns`): any bytes as a UDP reply, queries for any name, any
//! resolv.conf.
//!
//! * a reply parses or is refused (bounds-checked, pointer loops bounded); a parsed reply
//!   has no more addresses than answer records that fit in it.
//! * round trips: a reply built to a query from `build_query` with fuzzed records (A, AAAA,
//!   CNAME and others, names as pointers or labels, other classes, authority records)
//!   parses to exactly its IN addresses in order; a query encodes the name's labels;
//!   resolv.conf lines written from addresses give the first three back.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use nodeprobe_fuzz::{bytes, word, Unstructured};
use probes::clients::dns::{build_query, parse_resolv_conf, parse_response, TYPE_A, TYPE_AAAA};

const LABEL: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-_";

/// One record: owner name, type, class, rdata.
fn record(u: &mut Unstructured<'_>, out: &mut Vec<u8>, addrs: &mut Vec<IpAddr>) -> Option<()> {
    // owner: a pointer to the question's name, or labels (possibly ending in a pointer)
    if u.arbitrary::<bool>().ok()? {
        out.extend_from_slice(&[0xC0, 12]);
    } else {
        for _ in 0..u.int_in_range(0..=3u8).ok()? {
            let l = word(u, LABEL, 20);
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
        if u.arbitrary::<bool>().ok()? {
            out.extend_from_slice(&[0xC0, 12]);
        } else {
            out.push(0);
        }
    }
    let class_in = u.int_in_range(0..=7u8).ok()? != 0;
    let (rtype, rdata) = match u.int_in_range(0..=3u8).ok()? {
        0 => {
            let a: [u8; 4] = u.arbitrary().ok()?;
            if class_in {
                addrs.push(IpAddr::V4(Ipv4Addr::from(a)));
            }
            (TYPE_A, a.to_vec())
        }
        1 => {
            let a: [u8; 16] = u.arbitrary().ok()?;
            if class_in {
                addrs.push(IpAddr::V6(Ipv6Addr::from(a)));
            }
            (TYPE_AAAA, a.to_vec())
        }
        2 => (5, vec![2, b'o', b'k', 0xC0, 12]), // CNAME
        _ => {
            let t = u.int_in_range(2..=300u16).ok()?;
            let t = if t == TYPE_A || t == TYPE_AAAA { 16 } else { t };
            (t, bytes(u, 64))
        }
    };
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&(if class_in { 1u16 } else { 3 }).to_be_bytes());
    out.extend_from_slice(&u.arbitrary::<u32>().ok()?.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(&rdata);
    Some(())
}

fn round_trip(u: &mut Unstructured<'_>) -> Option<()> {
    let id: u16 = u.arbitrary().ok()?;
    let labels: Vec<String> = (0..u.int_in_range(1..=4u8).ok()?)
        .map(|_| word(u, LABEL, 63))
        .collect();
    let name = labels.join(".");
    let qtype = if u.arbitrary::<bool>().ok()? {
        TYPE_A
    } else {
        TYPE_AAAA
    };
    let q = build_query(id, &name, qtype).ok()?;
    // the question holds the labels
    let mut i = 12;
    for l in &labels {
        assert_eq!(usize::from(q[i]), l.len());
        assert_eq!(&q[i + 1..i + 1 + l.len()], l.as_bytes());
        i += 1 + l.len();
    }
    assert_eq!(&q[i..], &[0, (qtype >> 8) as u8, qtype as u8, 0, 1]);

    let rcode = u.int_in_range(0..=15u8).ok()?;
    let truncated: bool = u.arbitrary().ok()?;
    let mut r = q.clone();
    r[2] = 0x81 | if truncated { 0x02 } else { 0 };
    r[3] = 0x80 | rcode;
    let mut addrs = Vec::new();
    let an = u.int_in_range(0..=6u16).ok()?;
    for _ in 0..an {
        record(u, &mut r, &mut addrs)?;
    }
    let ns = u.int_in_range(0..=2u16).ok()?;
    let mut ignored = Vec::new();
    for _ in 0..ns {
        record(u, &mut r, &mut ignored)?;
    }
    r[6..8].copy_from_slice(&an.to_be_bytes());
    r[8..10].copy_from_slice(&ns.to_be_bytes());
    let a = parse_response(&r).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    assert_eq!((a.id, a.rcode, a.truncated), (id, rcode, truncated));
    assert_eq!(a.addrs, addrs);
    Some(())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = parse_response(data) {
        let an = usize::from(u16::from_be_bytes([data[6], data[7]]));
        assert!(a.addrs.len() <= an);
        assert!(a.addrs.len() <= data.len().saturating_sub(12) / 15);
        assert!(a.rcode <= 15);
    }
    let text = String::from_utf8_lossy(data);
    let servers = parse_resolv_conf(&text);
    assert!((1..=3).contains(&servers.len()));
    assert!(servers.iter().all(|s| s.port() == 53));

    let mut u = Unstructured::new(data);
    round_trip(&mut u);
    let ips: Vec<IpAddr> = (0..u.int_in_range(0..=5u8).unwrap_or(0))
        .filter_map(|_| {
            if u.arbitrary::<bool>().ok()? {
                Some(IpAddr::V4(Ipv4Addr::from(u.arbitrary::<[u8; 4]>().ok()?)))
            } else {
                Some(IpAddr::V6(Ipv6Addr::from(u.arbitrary::<[u8; 16]>().ok()?)))
            }
        })
        .collect();
    let conf: String = ips
        .iter()
        .map(|ip| format!("# x\nnameserver {ip}\nsearch example\n"))
        .collect();
    let want: Vec<SocketAddr> = if ips.is_empty() {
        vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53)]
    } else {
        ips.iter()
            .take(3)
            .map(|ip| SocketAddr::new(*ip, 53))
            .collect()
    };
    assert_eq!(parse_resolv_conf(&conf), want);
});
