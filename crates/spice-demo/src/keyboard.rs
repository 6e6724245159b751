//! A pure decoder from XT (set 1) scancodes to typed characters, US layout.
//!
//! SPICE clients send what a PC keyboard controller would: one byte per make
//! code, the same byte with bit `0x80` set on release, `0xE0` before the
//! extended keys (arrows, keypad Enter, right Ctrl/Alt, …) and the `0xE1`
//! sequence for Pause. The decoder tracks Shift, Ctrl, Alt and the three lock
//! keys, and turns key presses into [`Action`]s.

use spice_server::Leds;

use crate::font::ENTER_SYMBOL;

/// What a scancode did, as far as the demo cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A printable character (Enter is reported as [`ENTER_SYMBOL`]).
    Char(char),
    /// Backspace was pressed.
    Backspace,
    /// A lock key toggled; these are the LEDs now.
    Leds(Leds),
}

const LSHIFT: u8 = 0x2a;
const RSHIFT: u8 = 0x36;
const CTRL: u8 = 0x1d;
const ALT: u8 = 0x38;
const CAPS_LOCK: u8 = 0x3a;
const NUM_LOCK: u8 = 0x45;
const SCROLL_LOCK: u8 = 0x46;
const ENTER: u8 = 0x1c;
const BACKSPACE: u8 = 0x0e;
const SPACE: u8 = 0x39;

/// Unshifted and shifted characters of the main block, by scancode, from 0x02.
const MAIN_KEYS: [(u8, char, char); 47] = [
    (0x02, '1', '!'),
    (0x03, '2', '@'),
    (0x04, '3', '#'),
    (0x05, '4', '$'),
    (0x06, '5', '%'),
    (0x07, '6', '^'),
    (0x08, '7', '&'),
    (0x09, '8', '*'),
    (0x0a, '9', '('),
    (0x0b, '0', ')'),
    (0x0c, '-', '_'),
    (0x0d, '=', '+'),
    (0x10, 'q', 'Q'),
    (0x11, 'w', 'W'),
    (0x12, 'e', 'E'),
    (0x13, 'r', 'R'),
    (0x14, 't', 'T'),
    (0x15, 'y', 'Y'),
    (0x16, 'u', 'U'),
    (0x17, 'i', 'I'),
    (0x18, 'o', 'O'),
    (0x19, 'p', 'P'),
    (0x1a, '[', '{'),
    (0x1b, ']', '}'),
    (0x1e, 'a', 'A'),
    (0x1f, 's', 'S'),
    (0x20, 'd', 'D'),
    (0x21, 'f', 'F'),
    (0x22, 'g', 'G'),
    (0x23, 'h', 'H'),
    (0x24, 'j', 'J'),
    (0x25, 'k', 'K'),
    (0x26, 'l', 'L'),
    (0x27, ';', ':'),
    (0x28, '\'', '"'),
    (0x29, '`', '~'),
    (0x2b, '\\', '|'),
    (0x2c, 'z', 'Z'),
    (0x2d, 'x', 'X'),
    (0x2e, 'c', 'C'),
    (0x2f, 'v', 'V'),
    (0x30, 'b', 'B'),
    (0x31, 'n', 'N'),
    (0x32, 'm', 'M'),
    (0x33, ',', '<'),
    (0x34, '.', '>'),
    (0x35, '/', '?'),
];

/// Keypad keys 0x47..=0x53 as they type with Num Lock on.
const KEYPAD: [char; 13] = ['7', '8', '9', '-', '4', '5', '6', '+', '1', '2', '3', '0', '.'];

/// Where the decoder is within a multi-byte sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Prefix {
    #[default]
    None,
    /// After `0xE0`: the next byte is an extended key.
    Extended,
    /// After `0xE1`: this many bytes of the Pause sequence remain to skip.
    Pause(u8),
}

/// Scancode decoder state: modifiers, lock keys and any pending prefix.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    prefix: Prefix,
    lshift: bool,
    rshift: bool,
    /// Left and right Ctrl (bit 0 / bit 1); with either held, keys don't type.
    ctrl: u8,
    /// Left and right Alt, likewise.
    alt: u8,
    leds: Leds,
    /// Lock keys currently held, so auto-repeat does not toggle them again.
    locks_held: Leds,
}

impl Decoder {
    /// A decoder with no key held and every lock off.
    pub fn new() -> Self {
        Self::default()
    }

    /// The lock LEDs as this keyboard has them.
    pub fn leds(&self) -> Leds {
        self.leds
    }

    /// Feeds one scancode byte.
    pub fn feed(&mut self, byte: u8) -> Option<Action> {
        match self.prefix {
            Prefix::Pause(left) => {
                // Pause's bytes (1D 45 / 9D C5) would otherwise read as Ctrl and Num Lock.
                self.prefix = if left > 1 {
                    Prefix::Pause(left - 1)
                } else {
                    Prefix::None
                };
                return None;
            }
            Prefix::Extended => {
                self.prefix = Prefix::None;
                self.extended(byte);
                return None;
            }
            Prefix::None => {}
        }
        match byte {
            0xe0 => {
                self.prefix = Prefix::Extended;
                return None;
            }
            0xe1 => {
                self.prefix = Prefix::Pause(2);
                return None;
            }
            _ => {}
        }
        let code = byte & 0x7f;
        let pressed = byte & 0x80 == 0;
        match code {
            LSHIFT => self.lshift = pressed,
            RSHIFT => self.rshift = pressed,
            CTRL => set_bit(&mut self.ctrl, 1, pressed),
            ALT => set_bit(&mut self.alt, 1, pressed),
            CAPS_LOCK => return self.lock(Leds::CAPS_LOCK, pressed),
            NUM_LOCK => return self.lock(Leds::NUM_LOCK, pressed),
            SCROLL_LOCK => return self.lock(Leds::SCROLL_LOCK, pressed),
            _ if pressed => return self.press(code),
            _ => {}
        }
        None
    }

    /// An `0xE0`-prefixed key: only right Ctrl/Alt matter. The rest (arrows,
    /// keypad Enter and `/`, the fake shifts around Print Screen) type nothing.
    fn extended(&mut self, byte: u8) {
        let pressed = byte & 0x80 == 0;
        match byte & 0x7f {
            CTRL => set_bit(&mut self.ctrl, 2, pressed),
            ALT => set_bit(&mut self.alt, 2, pressed),
            _ => {}
        }
    }

    /// A lock key went down or up; toggles on the first press only.
    fn lock(&mut self, led: Leds, pressed: bool) -> Option<Action> {
        if !pressed {
            self.locks_held = Leds(self.locks_held.0 & !led.0);
            return None;
        }
        if self.locks_held.contains(led) {
            return None;
        }
        self.locks_held = self.locks_held | led;
        self.leds = Leds(self.leds.0 ^ led.0);
        Some(Action::Leds(self.leds))
    }

    /// A non-modifier key press.
    fn press(&mut self, code: u8) -> Option<Action> {
        if self.ctrl != 0 || self.alt != 0 {
            return None; // Shortcuts, not typing.
        }
        let shift = self.lshift || self.rshift;
        match code {
            ENTER => Some(Action::Char(ENTER_SYMBOL)),
            BACKSPACE => Some(Action::Backspace),
            SPACE => Some(Action::Char(' ')),
            0x37 => Some(Action::Char('*')), // Keypad '*' types regardless of Num Lock.
            0x47..=0x53 => {
                let c = KEYPAD[usize::from(code - 0x47)];
                // '-' and '+' type always; digits and '.' only with Num Lock.
                let always = matches!(c, '-' | '+');
                (always || self.leds.contains(Leds::NUM_LOCK)).then_some(Action::Char(c))
            }
            _ => {
                let &(_, plain, shifted) = MAIN_KEYS.iter().find(|(k, _, _)| *k == code)?;
                let upper = if plain.is_ascii_alphabetic() {
                    shift != self.leds.contains(Leds::CAPS_LOCK)
                } else {
                    shift
                };
                Some(Action::Char(if upper { shifted } else { plain }))
            }
        }
    }
}

fn set_bit(bits: &mut u8, bit: u8, on: bool) {
    if on {
        *bits |= bit;
    } else {
        *bits &= !bit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `codes` and keeps the characters typed.
    fn typed(decoder: &mut Decoder, codes: &[u8]) -> String {
        codes
            .iter()
            .filter_map(|&b| match decoder.feed(b) {
                Some(Action::Char(c)) => Some(c),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn shifted_hi_bang() {
        let mut d = Decoder::new();
        let codes = [
            0x2a, 0x23, 0xa3, 0xaa, // Shift+h
            0x17, 0x97, // i
            0x36, 0x02, 0x82, 0xb6, // RShift+1
        ];
        assert_eq!(typed(&mut d, &codes), "Hi!");
    }

    #[test]
    fn release_codes_type_nothing() {
        let mut d = Decoder::new();
        for code in [0x9e, 0x82, 0xb9, 0x9c, 0x8e] {
            assert_eq!(d.feed(code), None, "{code:#x}");
        }
    }

    #[test]
    fn extended_keys_type_nothing() {
        let mut d = Decoder::new();
        // Keypad Enter, keypad '/', Up, Delete, and their releases.
        let codes = [
            0xe0, 0x1c, 0xe0, 0x9c, 0xe0, 0x35, 0xe0, 0xb5, 0xe0, 0x48, 0xe0, 0xc8, 0xe0, 0x53,
        ];
        assert_eq!(typed(&mut d, &codes), "");
        // The fake shift of Print Screen does not shift the next letter.
        assert_eq!(typed(&mut d, &[0xe0, 0x2a, 0x1e, 0x9e]), "a");
    }

    #[test]
    fn enter_space_backspace_and_punctuation() {
        let mut d = Decoder::new();
        assert_eq!(d.feed(0x1c), Some(Action::Char(ENTER_SYMBOL)));
        assert_eq!(d.feed(0x0e), Some(Action::Backspace));
        assert_eq!(
            typed(
                &mut d,
                &[0x39, 0x0c, 0x1a, 0x27, 0x28, 0x29, 0x2b, 0x33, 0x34, 0x35]
            ),
            " -[;'`\\,./"
        );
        assert_eq!(
            typed(
                &mut d,
                &[0x2a, 0x0d, 0x1b, 0x27, 0x28, 0x29, 0x2b, 0x33, 0x34, 0x35, 0xaa]
            ),
            "+}:\"~|<>?"
        );
    }

    #[test]
    fn caps_lock_toggles_led_and_case_of_letters_only() {
        let mut d = Decoder::new();
        assert_eq!(d.feed(0x3a), Some(Action::Leds(Leds::CAPS_LOCK)));
        assert_eq!(d.feed(0xba), None);
        assert_eq!(typed(&mut d, &[0x1e, 0x02]), "A1");
        assert_eq!(typed(&mut d, &[0x2a, 0x1e, 0x02, 0xaa]), "a!");
        assert_eq!(d.feed(0x3a), Some(Action::Leds(Leds::default())));
        assert_eq!(typed(&mut d, &[0xba, 0x1e]), "a");
    }

    #[test]
    fn lock_keys_toggle_once_per_press() {
        let mut d = Decoder::new();
        assert_eq!(d.feed(0x45), Some(Action::Leds(Leds::NUM_LOCK)));
        assert_eq!(d.feed(0x45), None, "auto-repeat must not toggle");
        assert_eq!(d.feed(0xc5), None);
        assert_eq!(
            d.feed(0x46),
            Some(Action::Leds(Leds::NUM_LOCK | Leds::SCROLL_LOCK))
        );
        assert_eq!(d.feed(0xc6), None);
        assert_eq!(d.leds(), Leds::NUM_LOCK | Leds::SCROLL_LOCK);
        assert_eq!(d.feed(0x45), Some(Action::Leds(Leds::SCROLL_LOCK)));
    }

    #[test]
    fn keypad_digits_follow_num_lock() {
        let mut d = Decoder::new();
        assert_eq!(typed(&mut d, &[0x47, 0x4a, 0x4e, 0x37, 0x52]), "-+*");
        d.feed(0x45);
        d.feed(0xc5);
        assert_eq!(typed(&mut d, &[0x47, 0x4c, 0x51, 0x52, 0x53]), "7530.");
    }

    #[test]
    fn pause_does_not_toggle_num_lock_or_stick_ctrl() {
        let mut d = Decoder::new();
        for b in [0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5] {
            assert_eq!(d.feed(b), None);
        }
        assert_eq!(d.leds(), Leds::default());
        assert_eq!(typed(&mut d, &[0x1e]), "a");
    }

    #[test]
    fn ctrl_and_alt_suppress_typing() {
        let mut d = Decoder::new();
        assert_eq!(typed(&mut d, &[0x1d, 0x2e, 0x9d, 0x2e]), "c");
        assert_eq!(typed(&mut d, &[0xe0, 0x38, 0x1e, 0xe0, 0xb8, 0x1e]), "a");
        assert_eq!(
            typed(&mut d, &[0x1d, 0xe0, 0x1d, 0x9d, 0x1e, 0xe0, 0x9d, 0x1e]),
            "a"
        );
    }
}
