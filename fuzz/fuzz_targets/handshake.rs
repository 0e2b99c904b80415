//! Fuzzes the handshake's checks of an upgrade request (RFC 6455 §4.2.1, the origin policy,
//! the subprotocol and permessage-deflate offers) against an oracle written here.
//!
//! Input: one byte choosing the server's settings, then an HTTP/1.1 request as text (request
//! line, then `name: value` lines; lines that are not valid HTTP are skipped, as hyper would
//! refuse them before the handshake runs).

#![no_main]

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use libfuzzer_sys::fuzz_target;
use sha1::Digest as _;
use ws_runtime::__fuzz::{self, Handshake};
use ws_runtime::{Deflate, Origins};

fuzz_target!(|data: &[u8]| {
    let Some((&settings, text)) = data.split_first() else {
        return;
    };
    let Some((method, uri, headers)) = parse(text) else {
        return;
    };
    let origins = match settings & 3 {
        1 => Origins::Any,
        2 => Origins::AllowList(vec![
            "http://allowed.example".into(),
            "HTTPS://Other.example:8443".into(),
        ]),
        _ => Origins::SameHost,
    };
    let protocols: Vec<String> = if settings & 4 != 0 {
        vec!["chat".into(), "superchat".into()]
    } else {
        Vec::new()
    };
    let deflate = (settings & 8 != 0).then(|| {
        Deflate::new()
            .server_context_takeover(settings & 16 != 0)
            .client_max_window_bits(8 + (settings >> 5))
    });
    let outcome = __fuzz::handshake(
        method.clone(),
        uri,
        headers.clone(),
        &origins,
        &protocols,
        deflate.as_ref(),
    );
    check(
        &method,
        &headers,
        &origins,
        &protocols,
        deflate.as_ref(),
        &outcome,
    );
});

/// A lenient reading of an HTTP request: what hyper would hand over, minus what it refuses.
fn parse(text: &[u8]) -> Option<(Method, Uri, HeaderMap)> {
    let mut lines = text
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let mut request_line = lines.next()?.split(|&b| b == b' ');
    let method = Method::from_bytes(request_line.next()?).ok()?;
    let uri = request_line
        .next()
        .and_then(|t| Uri::try_from(t).ok())
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    Some((method, uri, headers))
}

/// Comma-separated tokens of every value of a header that is visible ASCII (RFC 9110 lists).
fn tokens<'a>(headers: &'a HeaderMap, name: &'a HeaderName) -> Vec<&'a str> {
    let mut out = Vec::new();
    for value in headers.get_all(name) {
        let bytes = value.as_bytes();
        if !bytes
            .iter()
            .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            continue;
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            continue;
        };
        for token in text.split(',') {
            let token = token.trim_matches([' ', '\t']);
            if !token.is_empty() {
                out.push(token);
            }
        }
    }
    out
}

/// RFC 6455 §4.1: the key is 16 bytes in base64 (with its padding).
fn key_is_valid(key: &HeaderValue) -> bool {
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
    );
    engine
        .decode(key.as_bytes())
        .is_ok_and(|bytes| bytes.len() == 16)
}

/// The refusal RFC 6455 §4.2.1 asks for, checked in the server's documented order (method,
/// upgrade tokens, key, version); `None` when the request is a valid handshake.
fn expected_refusal(method: &Method, headers: &HeaderMap) -> Option<StatusCode> {
    if method != Method::GET {
        return Some(StatusCode::METHOD_NOT_ALLOWED);
    }
    let has = |name, token: &str| {
        tokens(headers, name)
            .iter()
            .any(|t| t.eq_ignore_ascii_case(token))
    };
    if !has(&header::UPGRADE, "websocket") || !has(&header::CONNECTION, "upgrade") {
        return Some(StatusCode::UPGRADE_REQUIRED);
    }
    // Neither may appear twice (RFC 6455 §11.3.1, §11.3.5).
    for name in [header::SEC_WEBSOCKET_KEY, header::SEC_WEBSOCKET_VERSION] {
        if headers.get_all(&name).iter().count() > 1 {
            return Some(StatusCode::BAD_REQUEST);
        }
    }
    if !headers
        .get(header::SEC_WEBSOCKET_KEY)
        .is_some_and(key_is_valid)
    {
        return Some(StatusCode::BAD_REQUEST);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Some(StatusCode::UPGRADE_REQUIRED);
    }
    None
}

fn check(
    method: &Method,
    headers: &HeaderMap,
    origins: &Origins,
    protocols: &[String],
    deflate: Option<&Deflate>,
    outcome: &Handshake,
) {
    let expected = expected_refusal(method, headers);
    let origin = headers.get(header::ORIGIN);
    let reply = match (outcome, expected) {
        (Err(reject), Some(status)) => {
            assert_eq!(reject.status(), status, "{reject}");
            assert!(!reject.body_bytes().is_empty(), "a refusal says why");
            if status == StatusCode::METHOD_NOT_ALLOWED {
                assert_eq!(reject.headers()["allow"], "GET");
            }
            if status == StatusCode::UPGRADE_REQUIRED {
                assert_eq!(reject.headers()["sec-websocket-version"], "13");
            }
            return;
        }
        (Err(reject), None) => {
            // Only the origin policy may still refuse a valid handshake.
            assert_eq!(reject.status(), StatusCode::FORBIDDEN, "{reject}");
            let origin = origin.expect("a request without Origin is never refused for it");
            assert!(
                !matches!(origins, Origins::Any),
                "Origins::Any refused {origin:?}"
            );
            if let (Origins::AllowList(list), Ok(origin)) = (origins, origin.to_str()) {
                assert!(
                    !list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
                    "a listed origin was refused: {origin}"
                );
            }
            return;
        }
        (Ok(_), Some(status)) => panic!("accepted a request the RFC refuses with {status}"),
        (Ok(reply), None) => reply,
    };
    // A same-host origin names the request's host.
    if let (Origins::SameHost, Some(origin)) = (origins, origin) {
        let origin = origin.to_str().expect("a non-ASCII origin is refused");
        let host = headers[header::HOST]
            .to_str()
            .expect("the host was compared");
        let host = host.trim();
        let name = match host.rfind(':') {
            Some(i) if !host[i..].contains(']') => &host[..i],
            _ => host,
        };
        let authority = origin.split_once("://").expect("an origin has a scheme").1;
        assert!(
            authority.len() >= name.len() && authority[..name.len()].eq_ignore_ascii_case(name),
            "origin {origin} accepted for host {host}"
        );
    }
    assert_eq!(reply[header::UPGRADE], "websocket");
    assert_eq!(reply[header::CONNECTION], "Upgrade");
    // RFC 6455 §4.2.2: base64(SHA-1(key + GUID)), computed here.
    let key = headers[header::SEC_WEBSOCKET_KEY].as_bytes();
    let digest = sha1::Sha1::new()
        .chain_update(key)
        .chain_update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
        .finalize();
    let accept = base64::engine::general_purpose::STANDARD.encode(digest);
    assert_eq!(reply[header::SEC_WEBSOCKET_ACCEPT], accept.as_str());
    // The subprotocol: the first the client offered (in its order) that the server speaks.
    let offered = tokens(headers, &header::SEC_WEBSOCKET_PROTOCOL);
    let expected = offered
        .iter()
        .find(|offer| protocols.iter().any(|p| p == *offer));
    let chosen: Vec<_> = reply
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .collect();
    match expected {
        Some(expected) => assert_eq!(chosen, [expected]),
        None => assert!(chosen.is_empty(), "{chosen:?} chosen from {offered:?}"),
    }
    // permessage-deflate: the answer, when any, is the agreement itself and a single value.
    let answers: Vec<_> = reply
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .collect();
    let agreement = deflate.and_then(|d| __fuzz::negotiate(d, headers));
    match agreement {
        Some(agreement) => assert_eq!(answers, [agreement.header.as_str()]),
        None => assert!(answers.is_empty(), "{answers:?} without an agreement"),
    }
}
