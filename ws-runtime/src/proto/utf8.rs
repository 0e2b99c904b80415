//! UTF-8 of text split across fragments, checked as it arrives and failing fast. (Whole
//! payloads are validated by `Text::from_utf8`, in one SIMD pass.)

/// Validates UTF-8 split across fragments, failing as soon as a byte cannot be valid.
#[derive(Clone, Debug, Default)]
pub(crate) struct Utf8Check {
    /// The start of a character cut by the fragment boundary (a valid prefix).
    carry: [u8; 4],
    /// Bytes of `carry` in use (0 to 3). A byte: the check is part of the decoder, which every
    /// connection holds.
    carry_len: u8,
}

impl Utf8Check {
    /// Whether these bytes can still be part of valid UTF-8.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> bool {
        if self.carry_len > 0 {
            let width = char_width(self.carry[0]);
            let mut len = usize::from(self.carry_len);
            while len < width && !data.is_empty() {
                self.carry[len] = data[0];
                len += 1;
                data = &data[1..];
            }
            // At most 4: `width` is.
            #[allow(clippy::cast_possible_truncation)]
            {
                self.carry_len = len as u8;
            }
            let pending = &self.carry[..len];
            if len < width {
                // Still cut: valid so far if the prefix is.
                return matches!(std::str::from_utf8(pending), Err(e) if e.error_len().is_none());
            }
            if std::str::from_utf8(pending).is_err() {
                return false;
            }
            self.carry_len = 0;
        }
        match std::str::from_utf8(data) {
            Ok(_) => true,
            Err(err) if err.error_len().is_none() => {
                let rest = &data[err.valid_up_to()..];
                self.carry[..rest.len()].copy_from_slice(rest);
                // At most 3: an incomplete character.
                #[allow(clippy::cast_possible_truncation)]
                {
                    self.carry_len = rest.len() as u8;
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Whether the text ended on a character boundary.
    pub(crate) fn is_complete(&self) -> bool {
        self.carry_len == 0
    }
}

fn char_width(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_anywhere() {
        let text = "aé€😀z".as_bytes();
        for cut in 0..=text.len() {
            let mut check = Utf8Check::default();
            assert!(
                check.feed(&text[..cut]) && check.feed(&text[cut..]) && check.is_complete(),
                "{cut}"
            );
        }
        let mut check = Utf8Check::default();
        assert!(check.feed(&[0xF0, 0x9F]));
        assert!(!check.is_complete());
        assert!(!check.feed(&[0x41]), "a cut character continued wrongly");
    }
}
