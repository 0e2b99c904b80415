//! Unmasking client payloads (RFC 6455 §5.3). The crate's one `unsafe` call of a
//! `#[target_feature]` function lives here, with its SAFETY line.

/// XORs the payload with the masking key: with AVX2 where the CPU has it (detected once, at
/// run time), otherwise with the baseline SSE2 the portable loop compiles to.
#[inline]
pub(crate) fn unmask(payload: &mut [u8], key: [u8; 4]) {
    #[cfg(target_arch = "x86_64")]
    if payload.len() >= 256 && std::arch::is_x86_feature_detected!("avx2") {
        #[allow(unsafe_code)]
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe {
            unmask_avx2(payload, key);
        }
        return;
    }
    unmask_words(payload, key);
}

/// [`unmask_words`] compiled for AVX2: the same loop, vectorised 32 bytes wide.
///
/// # Safety
///
/// The CPU must support AVX2. (An `unsafe fn` rather than a safe `#[target_feature]` one,
/// which Rust accepts only from 1.86: the crate's declared minimum is 1.85.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
unsafe fn unmask_avx2(payload: &mut [u8], key: [u8; 4]) {
    unmask_words(payload, key);
}

/// XORs eight bytes at a time, which the compiler vectorises for the target's widest unit.
// Always inlined: only a copy inside `unmask_avx2` is compiled with AVX2.
#[allow(clippy::inline_always)]
#[inline(always)]
fn unmask_words(payload: &mut [u8], key: [u8; 4]) {
    // The key twice, in memory order: the same on either endianness.
    let key32 = u64::from(u32::from_ne_bytes(key));
    let wide = key32 | (key32 << 32);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // Chunks of eight keep the key's phase, so the tail starts at key byte 0.
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmask_matches_bytewise() {
        let key = [1, 2, 3, 4];
        for len in [0, 1, 7, 8, 9, 31, 100, 255, 256, 257, 1000, 4099] {
            let data: Vec<u8> = (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect();
            let mut fast = data.clone();
            unmask(&mut fast, key);
            let slow: Vec<u8> = data
                .iter()
                .zip(key.iter().cycle())
                .map(|(b, k)| b ^ k)
                .collect();
            assert_eq!(fast, slow);
        }
    }
}
