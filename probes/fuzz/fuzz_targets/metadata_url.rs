//! Metadata base URLs (`probes::clients::metadata::BaseUrl::parse`, `--metadata-endpoint`).
//!
//! * any text: parsed or refused with an error that quotes it; a parsed URL has a host and
//!   a non-zero port, and the request it makes is well-formed HTTP (a valid `Host` header
//!   and request target).
//! * round trip: the URL written back from its parts parses to the same parts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use probes::clients::metadata::{BaseUrl, MetadataError};

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    match BaseUrl::parse(url) {
        Err(MetadataError::InvalidUrl { url: quoted, .. }) => assert_eq!(quoted, url),
        Err(e) => panic!("parsing made a request? {e}"),
        Ok(b) => {
            assert!(!b.host.is_empty() && b.port != 0, "{b:?}");
            let host = b.host_header();
            assert!(
                http::HeaderValue::from_str(&host).is_ok(),
                "Host header {host:?} from {url:?}"
            );
            let target = b.target("/latest/meta-data/spot/instance-action");
            assert!(
                target.parse::<http::uri::PathAndQuery>().is_ok(),
                "request target {target:?} from {url:?}"
            );
            let again = format!("http://{}{}", b.host_header(), b.prefix);
            assert_eq!(
                BaseUrl::parse(&again),
                Ok(b.clone()),
                "{url:?} -> {again:?}"
            );
            let _ = b.display_addr();
        }
    }
});
