//! Fuzzes inflation (RFC 7692) with its size limit: never more output than the limit,
//! failures that are 1007 or 1009, and what the server's own compressor wrote comes back
//! whole when it fits the limit, and fails with 1009 when it does not.
//!
//! Input: a settings byte (window bits, context takeover, the limit), a byte cutting the rest
//! into frames and messages, then either raw deflate data from the client (settings bit 7
//! clear) or a message to compress and inflate back (bit 7 set).

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ws_runtime::__fuzz::{Deflater, Inflater};

fuzz_target!(|data: &[u8]| {
    let [settings, cuts, rest @ ..] = data else {
        return;
    };
    let bits = 8 + (settings & 7);
    let takeover = settings & 8 != 0;
    let limit = match (settings >> 4) & 7 {
        0 => 0,
        1 => 1,
        2 => 100,
        // The size inflated at a time, and around it.
        3 => 16 << 10,
        4 => (16 << 10) + 1,
        5 => rest.len(),
        6 => rest.len().saturating_sub(1),
        // A server configured without a limit.
        _ => usize::MAX,
    };
    let mut inflater = Inflater::new(bits, takeover).expect("bits within 8 to 15");
    // Frame sizes from `cuts`; a message ends after each frame whose size is odd.
    let mut sizes = (0..8)
        .map(|i| usize::from(cuts.rotate_left(i) & 31))
        .cycle();
    if settings & 0x80 == 0 {
        raw(&mut inflater, rest, &mut sizes, limit);
    } else {
        round_trip(&mut inflater, bits, takeover, rest, &mut sizes, limit);
    }
});

/// Arbitrary deflate data, frame by frame and message by message.
fn raw(
    inflater: &mut Inflater,
    mut rest: &[u8],
    sizes: &mut dyn Iterator<Item = usize>,
    limit: usize,
) {
    let mut out = Vec::new();
    // Empty frames are allowed; this many in a row is enough.
    let mut frames = rest.len() + 64;
    while !rest.is_empty() && frames > 0 {
        frames -= 1;
        let size = sizes.next().unwrap_or(1);
        let (frame, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        let last = size % 2 == 1 || rest.is_empty();
        let result = inflater.inflate(frame, last, &mut out, limit);
        assert!(
            out.len() <= limit,
            "{} bytes out of a limit of {limit}",
            out.len()
        );
        match result {
            Ok(()) if last => out.clear(),
            Ok(()) => {}
            // The connection is failed: nothing more is inflated.
            Err(code) => {
                assert!(code == 1007 || code == 1009, "inflate failed with {code}");
                return;
            }
        }
    }
}

/// Messages compressed as a client would, inflated back.
fn round_trip(
    inflater: &mut Inflater,
    bits: u8,
    takeover: bool,
    mut rest: &[u8],
    sizes: &mut dyn Iterator<Item = usize>,
    limit: usize,
) {
    let new_deflater = || Deflater::new(bits, takeover).expect("bits within 8 to 15");
    let mut deflater = new_deflater();
    while !rest.is_empty() {
        let size = sizes.next().unwrap_or(1).max(1) * 8;
        let (message, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        let Some(packed) = deflater.deflate(&Bytes::copy_from_slice(message)) else {
            panic!("a message of {} bytes was not compressed", message.len());
        };
        let mut out = Vec::new();
        // In two frames, cut where `size` says.
        let (first, second) = packed.split_at(size.min(packed.len()) / 2);
        let result = inflater
            .inflate(first, false, &mut out, limit)
            .and_then(|()| inflater.inflate(second, true, &mut out, limit));
        assert!(
            out.len() <= limit,
            "{} bytes out of a limit of {limit}",
            out.len()
        );
        if message.len() <= limit {
            assert_eq!(result, Ok(()), "a message of {} bytes", message.len());
            assert_eq!(out, message, "inflated differently");
        } else {
            assert_eq!(
                result,
                Err(1009),
                "a message of {} over {limit}",
                message.len()
            );
            return;
        }
        if !takeover {
            // Each message on its own, as the agreement says.
            deflater = new_deflater();
        }
    }
}
