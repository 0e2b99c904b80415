//! The opening handshake: protocol checks, the `Request` handed to `on_handshake`, the 101
//! reply it shapes through `Accept`, and `Reject`, any other HTTP reply.

mod reply;
mod request;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

pub(crate) use reply::switching_protocols;
pub use reply::{Accept, NotOffered, Reject};
pub use request::Request;

use crate::config::{Config, Origins};

/// Comma-separated tokens of every instance of a header, trimmed, empty ones skipped.
fn header_tokens<'a>(
    headers: &'a HeaderMap,
    name: &'a HeaderName,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    header_tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// RFC 6455 §4.2.1 checks, in order; the `Sec-WebSocket-Key` on success.
pub(crate) fn check_protocol(method: &Method, headers: &HeaderMap) -> Result<HeaderValue, Reject> {
    if method != Method::GET {
        return Err(Reject::with_body(
            StatusCode::METHOD_NOT_ALLOWED,
            "A WebSocket handshake must use GET.",
        )
        .header("allow", "GET"));
    }
    if !has_token(headers, &header::UPGRADE, "websocket")
        || !has_token(headers, &header::CONNECTION, "upgrade")
    {
        return Err(Reject::with_body(
            StatusCode::UPGRADE_REQUIRED,
            "This endpoint speaks WebSocket: send `Upgrade: websocket` and `Connection: Upgrade`.",
        )
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-version", "13"));
    }
    // RFC 6455 §11.3.1 and §11.3.5: neither may appear more than once in a request.
    for (name, as_written) in [
        (header::SEC_WEBSOCKET_KEY, "Sec-WebSocket-Key"),
        (header::SEC_WEBSOCKET_VERSION, "Sec-WebSocket-Version"),
    ] {
        if headers.get_all(name).iter().nth(1).is_some() {
            return Err(Reject::bad_request(format!(
                "{as_written} must appear once."
            )));
        }
    }
    let key = match headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key) if is_valid_key(key.as_bytes()) => key.clone(),
        Some(_) => {
            return Err(Reject::bad_request(
                "Sec-WebSocket-Key must be 16 bytes in base64.",
            ));
        }
        None => return Err(Reject::bad_request("Missing Sec-WebSocket-Key header.")),
    };
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(Reject::with_body(
            StatusCode::UPGRADE_REQUIRED,
            "Unsupported WebSocket version; this server speaks version 13.",
        )
        .header("sec-websocket-version", "13"));
    }
    Ok(key)
}

/// A key is the base64 encoding of 16 bytes: 22 characters of the alphabet and `==`.
fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

/// Whether the origin policy admits this request.
pub(crate) fn origin_allowed(origins: &Origins, headers: &HeaderMap) -> bool {
    // `Any` admits every origin, even one that is not visible ASCII.
    if matches!(origins, Origins::Any) {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let same_host = || {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        match (origin_authority(origin), host) {
            (Some((authority, default_port)), Some(host)) => {
                authority_eq(authority, host, default_port)
            }
            _ => false,
        }
    };
    match origins {
        Origins::Any => true,
        Origins::SameHost => same_host(),
        Origins::AllowList(list) => {
            list.iter().any(|o| o.eq_ignore_ascii_case(origin)) || same_host()
        }
    }
}

/// `scheme://authority` → (authority, the scheme's default port).
fn origin_authority(origin: &str) -> Option<(&str, &'static str)> {
    let (scheme, rest) = origin.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "80",
        "https" | "wss" => "443",
        _ => return None,
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    (!authority.is_empty()).then_some((authority, default_port))
}

/// Compares `host[:port]` forms, treating an absent port as the scheme's default.
fn authority_eq(origin: &str, host: &str, default_port: &str) -> bool {
    fn split(authority: &str) -> (&str, Option<&str>) {
        // `[::1]:8080` keeps its brackets; a bare port follows the last colon outside them.
        match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                (&authority[..i], Some(&authority[i + 1..]))
            }
            _ => (authority, None),
        }
    }
    let (oh, op) = split(origin);
    let (hh, hp) = split(host.trim());
    oh.eq_ignore_ascii_case(hh) && op.unwrap_or(default_port) == hp.unwrap_or(default_port)
}

/// Picks the subprotocol: the handler's choice, else the first offer the config supports.
pub(crate) fn choose_protocol(
    config: &Config,
    request: &Request,
    accept: &Accept,
) -> Option<String> {
    accept.chosen_protocol().map(str::to_owned).or_else(|| {
        request
            .protocols()
            .find(|offer| config.protocols.iter().any(|p| p == offer))
            .map(str::to_owned)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Uri;

    /// A refusal is the cold path: boxed, `Reject` is one pointer, so `Result<S, Reject>`
    /// (what every `on_handshake` returns) stays as small as the session allows.
    #[test]
    fn a_reject_is_one_pointer() {
        assert_eq!(size_of::<Reject>(), size_of::<usize>());
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn origin_same_host() {
        let ok = headers(&[
            ("host", "localhost:8080"),
            ("origin", "http://localhost:8080"),
        ]);
        assert!(origin_allowed(&Origins::SameHost, &ok));
        let default_port = headers(&[
            ("host", "Example.com"),
            ("origin", "https://example.com:443"),
        ]);
        assert!(origin_allowed(&Origins::SameHost, &default_port));
        let other = headers(&[("host", "localhost:8080"), ("origin", "http://evil.com")]);
        assert!(!origin_allowed(&Origins::SameHost, &other));
        let port = headers(&[
            ("host", "localhost:8080"),
            ("origin", "http://localhost:8081"),
        ]);
        assert!(!origin_allowed(&Origins::SameHost, &port));
        let null = headers(&[("host", "localhost"), ("origin", "null")]);
        assert!(!origin_allowed(&Origins::SameHost, &null));
        let v6 = headers(&[("host", "[::1]:9000"), ("origin", "http://[::1]:9000")]);
        assert!(origin_allowed(&Origins::SameHost, &v6));
        let none = headers(&[("host", "localhost")]);
        assert!(origin_allowed(&Origins::SameHost, &none));
        assert!(origin_allowed(&Origins::Any, &other));
        // Found by fuzzing (`fuzz/`, target `handshake`): `Any` refused an origin that is not
        // visible ASCII.
        let mut binary = headers(&[("host", "localhost")]);
        binary.insert(
            header::ORIGIN,
            HeaderValue::from_bytes(b"http://\xff.example").unwrap(),
        );
        assert!(origin_allowed(&Origins::Any, &binary));
        assert!(!origin_allowed(&Origins::SameHost, &binary));
        let list = Origins::AllowList(vec!["HTTP://EVIL.COM".into()]);
        assert!(origin_allowed(&list, &other));
    }

    #[test]
    fn keys() {
        assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25j!Q=="));
        assert!(!is_valid_key(b""));
    }

    proptest::proptest! {
        /// Whatever a peer sends as method and headers, the checks answer without panicking,
        /// and a refusal is never informational.
        #[test]
        fn checks_never_panic(
            method in "[A-Z]{1,8}",
            pairs in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
                        "origin", "host", "sec-websocket-protocol", "cookie", "x-other",
                    ]),
                    proptest::collection::vec(proptest::num::u8::ANY, 0..40),
                ),
                0..12,
            ),
            query in proptest::collection::vec(proptest::num::u8::ANY, 0..60),
        ) {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                if let Ok(value) = HeaderValue::from_bytes(&value) {
                    map.append(name, value);
                }
            }
            let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
            if let Err(reject) = check_protocol(&method, &map) {
                proptest::prop_assert!(!reject.status().is_informational());
            }
            let _ = origin_allowed(&Origins::SameHost, &map);
            let path_and_query = format!("/ws?{}", String::from_utf8_lossy(&query));
            let uri = path_and_query.parse::<Uri>().unwrap_or_default();
            let request = Request::new(method, uri, map, None);
            let _ = (request.query("a"), request.cookie("b"), request.protocols().count());
        }

        /// A well-formed handshake is accepted whatever its token order, case and extras.
        #[test]
        fn valid_handshakes_pass(
            upper in proptest::bool::ANY,
            extra in "[a-z]{1,10}",
            key in proptest::collection::vec(proptest::num::u8::ANY, 16),
        ) {
            let mut map = HeaderMap::new();
            let (upgrade, connection) = if upper { ("WebSocket", "keep-alive, Upgrade") } else { ("websocket", "upgrade") };
            map.insert(header::UPGRADE, HeaderValue::from_static(upgrade));
            map.insert(header::CONNECTION, HeaderValue::from_str(&format!("{extra}, {connection}")).unwrap());
            let key = encode_base64(&key);
            map.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_str(&key).unwrap());
            map.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            proptest::prop_assert!(check_protocol(&Method::GET, &map).is_ok());
        }
    }

    /// Standard base64 with padding, for the property test's keys.
    fn encode_base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn request_parsing() {
        let req = Request::new(
            Method::GET,
            "/ws?password=a%20b&x=1&x=2".parse().unwrap(),
            headers(&[
                ("cookie", "a=1; b=\"two\""),
                ("cookie", "c=3"),
                ("sec-websocket-protocol", "chat, superchat"),
            ]),
            None,
        );
        assert_eq!(req.query("password"), Some("a b"));
        assert_eq!(req.query_all("x").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(req.cookie("b"), Some("two"));
        assert_eq!(req.cookie("c"), Some("3"));
        assert_eq!(req.protocols().collect::<Vec<_>>(), ["chat", "superchat"]);
        let mut accept = Accept::new(&req);
        assert!(accept.protocol("superchat").is_ok());
        assert_eq!(
            accept.protocol("nope").unwrap_err(),
            NotOffered("nope".into())
        );
        assert_eq!(accept.chosen_protocol(), Some("superchat"));
    }
}
