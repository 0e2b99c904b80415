//! Fuzzes permessage-deflate negotiation (RFC 7692): an answer, when there is one, is a valid
//! header value that says what was agreed, that one of the client's offers allows, within the
//! server's settings, and that negotiates to itself when offered back.
//!
//! Input: two bytes of server settings, then `Sec-WebSocket-Extensions` values, one a line.

#![no_main]

use http::header::{self, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use ws_runtime::__fuzz::{self, Agreement};
use ws_runtime::Deflate;

struct Settings {
    server_context_takeover: bool,
    client_context_takeover: bool,
    server_max_window_bits: u8,
    client_max_window_bits: u8,
}

fuzz_target!(|data: &[u8]| {
    let [a, b, values @ ..] = data else {
        return;
    };
    let settings = Settings {
        server_context_takeover: a & 1 != 0,
        client_context_takeover: a & 2 == 0,
        server_max_window_bits: 8 + ((a >> 2) & 7),
        client_max_window_bits: 8 + ((a >> 5) & 7),
    };
    let config = Deflate::new()
        .server_context_takeover(settings.server_context_takeover)
        .client_context_takeover(settings.client_context_takeover)
        .server_max_window_bits(settings.server_max_window_bits)
        .client_max_window_bits(settings.client_max_window_bits)
        .level(u32::from(b % 10));
    let mut headers = HeaderMap::new();
    for line in values.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(header::SEC_WEBSOCKET_EXTENSIONS, value);
        }
    }
    let offers = offers(&headers);
    let Some(agreement) = __fuzz::negotiate(&config, &headers) else {
        // A plain offer is always acceptable, unless the client's window must be bounded.
        let plain = offers.iter().any(|o| o.params.is_empty());
        assert!(
            !plain || settings.client_max_window_bits < 15,
            "a plain offer was declined"
        );
        return;
    };
    check(&settings, &offers, &agreement);
    // Offered back, the answer is accepted as it is.
    let mut again = HeaderMap::new();
    let value = HeaderValue::from_str(&agreement.header).expect("the answer is a header value");
    again.insert(header::SEC_WEBSOCKET_EXTENSIONS, value);
    assert_eq!(
        __fuzz::negotiate(&config, &again).as_ref(),
        Some(&agreement),
        "the answer negotiates to something else"
    );
});

/// A `permessage-deflate` offer as read here: its parameters, names lowercased, values
/// unquoted.
struct Offer {
    params: Vec<(String, Option<String>)>,
}

impl Offer {
    fn get(&self, name: &str) -> Option<&Option<String>> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    fn bits(&self, name: &str) -> Option<u8> {
        self.get(name)?.as_deref()?.parse().ok()
    }
}

fn offers(headers: &HeaderMap) -> Vec<Offer> {
    let mut out = Vec::new();
    for value in headers.get_all(header::SEC_WEBSOCKET_EXTENSIONS) {
        let Ok(value) = value.to_str() else { continue };
        for element in value.split(',') {
            let mut parts = element.split(';').map(str::trim);
            if !parts
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case("permessage-deflate"))
            {
                continue;
            }
            let params = parts
                .map(|p| match p.split_once('=') {
                    Some((n, v)) => {
                        let v = v.trim();
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .unwrap_or(v);
                        (n.trim().to_ascii_lowercase(), Some(v.to_owned()))
                    }
                    None => (p.to_ascii_lowercase(), None),
                })
                .collect();
            out.push(Offer { params });
        }
    }
    out
}

fn check(settings: &Settings, offers: &[Offer], a: &Agreement) {
    // Within the settings.
    assert!((8..=settings.server_max_window_bits).contains(&a.server_window_bits));
    assert!((8..=settings.client_max_window_bits).contains(&a.client_window_bits));
    assert!(settings.server_context_takeover || a.server_no_context_takeover);
    assert!(settings.client_context_takeover || a.client_no_context_takeover);
    assert!(a.level <= 9);
    // The header says what was agreed, each parameter once.
    let mut parts = a.header.split("; ");
    assert_eq!(parts.next(), Some("permessage-deflate"), "{}", a.header);
    let params: Vec<&str> = parts.collect();
    let mut names: Vec<&str> = params
        .iter()
        .map(|p| p.split('=').next().unwrap_or(p))
        .collect();
    names.sort_unstable();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count, "a parameter twice in {}", a.header);
    let has = |p: &str| params.contains(&p);
    let bits = |name: &str| {
        params.iter().find_map(|p| {
            let value = p.strip_prefix(name)?.strip_prefix('=')?;
            Some(value.parse::<u8>().expect("window bits in decimal"))
        })
    };
    assert_eq!(
        has("server_no_context_takeover"),
        a.server_no_context_takeover
    );
    assert_eq!(
        has("client_no_context_takeover"),
        a.client_no_context_takeover
    );
    assert_eq!(
        bits("server_max_window_bits").unwrap_or(15),
        a.server_window_bits
    );
    assert_eq!(
        bits("client_max_window_bits").unwrap_or(15),
        a.client_window_bits
    );
    for p in &params {
        assert!(
            matches!(
                p.split('=').next(),
                Some(
                    "server_no_context_takeover"
                        | "client_no_context_takeover"
                        | "server_max_window_bits"
                        | "client_max_window_bits"
                )
            ),
            "unknown parameter {p}"
        );
    }
    // Some offer of the client allows it (RFC 7692 §7.1).
    let allowed = |o: &Offer| {
        let client_bits = o.get("client_max_window_bits");
        // The client's window is only bounded if it offered to be.
        (bits("client_max_window_bits").is_none() || client_bits.is_some())
            // The server's window is at most what the client asked for.
            && o.bits("server_max_window_bits").is_none_or(|b| a.server_window_bits <= b)
            && client_bits.and_then(Option::as_deref).and_then(|v| v.parse::<u8>().ok())
                .is_none_or(|b| a.client_window_bits <= b)
            && (o.get("server_no_context_takeover").is_none() || a.server_no_context_takeover)
            && (o.get("client_no_context_takeover").is_none() || a.client_no_context_takeover)
            // Without `client_max_window_bits` the client may use 15 bits.
            && (client_bits.is_some() || a.client_window_bits == 15)
    };
    assert!(offers.iter().any(allowed), "no offer allows {}", a.header);
}
