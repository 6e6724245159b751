//! Keyboard, mouse and tablet: the input back-ends.

/// Keyboard lock LEDs, as bits of `SPICE_KEYBOARD_MODIFIER_FLAGS_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Leds(pub u8);

impl Leds {
    /// Scroll Lock.
    pub const SCROLL_LOCK: Leds = Leds(1);
    /// Num Lock.
    pub const NUM_LOCK: Leds = Leds(2);
    /// Caps Lock.
    pub const CAPS_LOCK: Leds = Leds(4);

    /// Whether every LED of `other` is lit.
    pub fn contains(self, other: Leds) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Leds {
    type Output = Leds;
    fn bitor(self, rhs: Leds) -> Leds {
        Leds(self.0 | rhs.0)
    }
}

/// Mouse buttons held down, as bits of `SPICE_MOUSE_BUTTON_MASK_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MouseButtons(pub u16);

impl MouseButtons {
    /// Left button.
    pub const LEFT: MouseButtons = MouseButtons(1);
    /// Middle button.
    pub const MIDDLE: MouseButtons = MouseButtons(2);
    /// Right button.
    pub const RIGHT: MouseButtons = MouseButtons(4);
    /// Wheel up (held while scrolling).
    pub const WHEEL_UP: MouseButtons = MouseButtons(8);
    /// Wheel down (held while scrolling).
    pub const WHEEL_DOWN: MouseButtons = MouseButtons(16);
    /// Side button.
    pub const SIDE: MouseButtons = MouseButtons(32);
    /// Extra button.
    pub const EXTRA: MouseButtons = MouseButtons(64);

    /// Whether every button of `other` is held.
    pub fn contains(self, other: MouseButtons) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for MouseButtons {
    type Output = MouseButtons;
    fn bitor(self, rhs: MouseButtons) -> MouseButtons {
        MouseButtons(self.0 | rhs.0)
    }
}

/// A PC keyboard fed with XT (set 1) scancodes (`SpiceKbdInterface`).
pub trait Keyboard {
    /// One scancode byte. Extended keys arrive as `0xE0` followed by the code;
    /// bit `0x80` marks a release.
    fn push_scancode(&mut self, byte: u8);

    /// The lock LEDs as the guest currently has them. The server uses this to bring
    /// the guest's locks in line with the client's.
    fn leds(&self) -> Leds {
        Leds::default()
    }
}

/// A relative pointing device, used in server mouse mode (`SpiceMouseInterface`).
pub trait Mouse {
    /// Relative motion; `dz` is the wheel (negative = up).
    fn motion(&mut self, dx: i32, dy: i32, dz: i32, buttons: MouseButtons);
    /// Button state changed without motion.
    fn buttons(&mut self, buttons: MouseButtons);
    /// A button other than the wheel went down; `buttons` is the new state.
    /// Defaults to [`Mouse::buttons`].
    fn press(&mut self, buttons: MouseButtons) {
        self.buttons(buttons);
    }
}

/// An absolute pointing device, used in client mouse mode (`SpiceTabletInterface`).
///
/// Having a tablet is what lets the server offer client mouse mode.
pub trait Tablet {
    /// The size of the display positions refer to; called when the display is resized.
    fn set_logical_size(&mut self, _width: u32, _height: u32) {}
    /// Absolute position in display pixels.
    fn position(&mut self, x: i32, y: i32, buttons: MouseButtons);
    /// Wheel motion (negative = up).
    fn wheel(&mut self, dz: i32, buttons: MouseButtons);
    /// Button state changed without motion.
    fn buttons(&mut self, buttons: MouseButtons);
    /// A button other than the wheel went down; `buttons` is the new state.
    /// Defaults to [`Tablet::buttons`].
    fn press(&mut self, buttons: MouseButtons) {
        self.buttons(buttons);
    }
}
