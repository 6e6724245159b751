//! Which keys the client holds down, so they can be released when it leaves.
//!
//! A client that disconnects with a key down would leave it stuck in the guest;
//! like the C server, the server tracks set-1 make/break codes (with the 0xE0
//! prefix) and sends the breaks itself when the inputs channel closes.

/// Key state of the XT (set 1) stream sent to the keyboard.
#[derive(Debug, Clone)]
pub(crate) struct HeldKeys {
    key: [bool; 128],
    key_ext: [bool; 128],
    /// The prefix byte (0xE0, 0xE1, 0xE2) that applies to the next code, if any.
    prefix: u8,
}

impl Default for HeldKeys {
    fn default() -> Self {
        Self {
            key: [false; 128],
            key_ext: [false; 128],
            prefix: 0,
        }
    }
}

impl HeldKeys {
    /// Follows one byte going to the keyboard.
    pub(crate) fn track(&mut self, scan: u8) {
        if (0xe0..=0xe2).contains(&scan) {
            self.prefix = scan;
            return;
        }
        // 0xE1/0xE2 sequences (Pause) have no lasting state.
        let table = match self.prefix {
            0 => Some(&mut self.key),
            0xe0 => Some(&mut self.key_ext),
            _ => None,
        };
        // Codes 0x60..=0x62 name no key: their break codes would be the
        // prefixes, so they could never be released.
        let code = scan & 0x7f;
        if let (Some(table), false) = (table, (0x60..=0x62).contains(&code)) {
            table[usize::from(code)] = scan & 0x80 == 0;
        }
        self.prefix = 0;
    }

    /// The bytes that release every held key (plain keys first, then 0xE0
    /// ones), forgetting them.
    pub(crate) fn release_all(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        // A client that left after a bare prefix byte has the keyboard waiting
        // for the rest: the first release (or the next client's first key)
        // would be read as that sequence's code (after 0xE0, `9E` releases
        // extended 0x1E, not 'a'). 0xAA ends it harmlessly: E0 AA is the
        // fake-shift release keyboards send themselves, and after 0xE1 or
        // 0xE2 the byte holds nothing.
        if self.prefix != 0 {
            out.push(0xaa);
        }
        for (code, held) in self.key.iter_mut().enumerate() {
            if std::mem::take(held) {
                out.push(code as u8 | 0x80);
            }
        }
        for (code, held) in self.key_ext.iter_mut().enumerate() {
            if std::mem::take(held) {
                out.extend([0xe0, code as u8 | 0x80]);
            }
        }
        self.prefix = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_keys_are_released_plain_first_then_extended() {
        let mut k = HeldKeys::default();
        for b in [0x1e, 0xe0, 0x1d, 0x30, 0xb0, 0xe1, 0x1d, 0x45] {
            k.track(b);
        }
        // 'a' held, right ctrl held, 'b' pressed and released, Pause ignored, Num Lock held.
        assert_eq!(k.release_all(), [0x9e, 0xc5, 0xe0, 0x9d]);
        assert!(k.release_all().is_empty(), "released only once");
    }

    #[test]
    fn codes_whose_break_is_a_prefix_are_not_held() {
        let mut k = HeldKeys::default();
        // A release of 0x60 would be 0xE0, which starts a sequence instead.
        for b in [0x60, 0xe0, 0x61, 0x1e] {
            k.track(b);
        }
        assert_eq!(k.release_all(), [0x9e]);
    }

    #[test]
    fn a_pending_prefix_is_ended_before_the_releases() {
        let mut k = HeldKeys::default();
        // 'a' held, then a lone 0xE0: the keyboard waits for an extended code.
        for b in [0x1e, 0xe0] {
            k.track(b);
        }
        // Without the 0xAA, 0x9E would release extended 0x1E and leave 'a' down.
        assert_eq!(k.release_all(), [0xaa, 0x9e]);
        // Nothing held, but the next client's first key would be misread.
        k.track(0xe1);
        assert_eq!(k.release_all(), [0xaa]);
        assert!(k.release_all().is_empty(), "nothing more to end");
    }
}
