//! The host's C keyboard, mouse and tablet as the Rust server's device traits.

use spice_server::{Keyboard, Leds, Mouse, MouseButtons, Tablet};

use crate::ffi::{
    SpiceKbdInstance, SpiceKbdInterface, SpiceMouseInstance, SpiceMouseInterface, SpiceTabletInstance,
    SpiceTabletInterface,
};
use crate::instance::Liveness;

/// Protocol button mask (L=1, M=2, R=4, Up=8, Down=16, Side=32, …) to the order
/// QEMU's interfaces use (L=1, R=2, M=4; side/extra shifted up one): the C
/// server's `RED_MOUSE_STATE_TO_LOCAL`. The wheel bits are dropped: wheel motion
/// travels as `dz`.
pub(crate) fn buttons_to_local(buttons: MouseButtons) -> u32 {
    let s = u32::from(buttons.0);
    (s & 1) | ((s & (2 | 0xffe0)) << 1) | ((s & 4) >> 1)
}

/// A C instance pointer that the Rust server may hold.
#[derive(Debug)]
pub(crate) struct Ptr<T>(pub(crate) *mut T);

// SAFETY: the host keeps the instance alive until it removes the interface (and
// `Liveness` stops every call after that); the server calls devices only on the
// host's main thread, which is where the host expects them.
unsafe impl<T> Send for Ptr<T> {}

/// `SpiceKbdInstance` as a [`Keyboard`].
pub(crate) struct CKeyboard {
    sin: Ptr<SpiceKbdInstance>,
    alive: Liveness,
}

impl CKeyboard {
    pub(crate) fn new(sin: *mut SpiceKbdInstance, alive: Liveness) -> Self {
        Self { sin: Ptr(sin), alive }
    }

    fn iface(&self) -> Option<&SpiceKbdInterface> {
        if !self.alive.is_alive() {
            return None;
        }
        // SAFETY: live instance (see `Ptr`); its `sif` is the keyboard interface it was added with.
        unsafe { ((*self.sin.0).base.sif as *const SpiceKbdInterface).as_ref() }
    }
}

impl Keyboard for CKeyboard {
    fn push_scancode(&mut self, byte: u8) {
        if let Some(f) = self.iface().and_then(|i| i.push_scan_freg) {
            // SAFETY: host callback on the main thread with its own instance.
            unsafe { f(self.sin.0, byte) };
        }
    }

    fn leds(&self) -> Leds {
        match self.iface().and_then(|i| i.get_leds) {
            // SAFETY: host callback on the main thread with its own instance.
            Some(f) => Leds(unsafe { f(self.sin.0) }),
            None => Leds::default(),
        }
    }
}

/// `SpiceMouseInstance` as a [`Mouse`].
pub(crate) struct CMouse {
    sin: Ptr<SpiceMouseInstance>,
    alive: Liveness,
}

impl CMouse {
    pub(crate) fn new(sin: *mut SpiceMouseInstance, alive: Liveness) -> Self {
        Self { sin: Ptr(sin), alive }
    }

    fn iface(&self) -> Option<&SpiceMouseInterface> {
        if !self.alive.is_alive() {
            return None;
        }
        // SAFETY: as for the keyboard.
        unsafe { ((*self.sin.0).base.sif as *const SpiceMouseInterface).as_ref() }
    }
}

impl Mouse for CMouse {
    fn motion(&mut self, dx: i32, dy: i32, dz: i32, buttons: MouseButtons) {
        if let Some(f) = self.iface().and_then(|i| i.motion) {
            // SAFETY: host callback on the main thread with its own instance.
            unsafe { f(self.sin.0, dx, dy, dz, buttons_to_local(buttons)) };
        }
    }

    fn buttons(&mut self, buttons: MouseButtons) {
        if let Some(f) = self.iface().and_then(|i| i.buttons) {
            // SAFETY: host callback on the main thread with its own instance.
            unsafe { f(self.sin.0, buttons_to_local(buttons)) };
        }
    }

    /// The C server reports a press as motion without movement.
    fn press(&mut self, buttons: MouseButtons) {
        self.motion(0, 0, 0, buttons);
    }
}

/// `SpiceTabletInstance` as a [`Tablet`].
pub(crate) struct CTablet {
    sin: Ptr<SpiceTabletInstance>,
    alive: Liveness,
}

impl CTablet {
    pub(crate) fn new(sin: *mut SpiceTabletInstance, alive: Liveness) -> Self {
        Self { sin: Ptr(sin), alive }
    }

    fn iface(&self) -> Option<&SpiceTabletInterface> {
        if !self.alive.is_alive() {
            return None;
        }
        // SAFETY: as for the keyboard.
        unsafe { ((*self.sin.0).base.sif as *const SpiceTabletInterface).as_ref() }
    }
}

impl Tablet for CTablet {
    fn set_logical_size(&mut self, width: u32, height: u32) {
        if let Some(f) = self.iface().and_then(|i| i.set_logical_size) {
            // SAFETY: host callback on the main thread with its own instance.
            unsafe { f(self.sin.0, width as i32, height as i32) };
        }
    }

    fn position(&mut self, x: i32, y: i32, buttons: MouseButtons) {
        if let Some(f) = self.iface().and_then(|i| i.position) {
            // SAFETY: host callback on the main thread with its own instance.
            unsafe { f(self.sin.0, x, y, buttons_to_local(buttons)) };
        }
    }

    fn wheel(&mut self, dz: i32, buttons: MouseButtons) {
        if let Some(f) = self.iface().and_then(|i| i.wheel) {
            // SAFETY: host callback on the main thread with its own instance.
            unsafe { f(self.sin.0, dz, buttons_to_local(buttons)) };
        }
    }

    fn buttons(&mut self, buttons: MouseButtons) {
        if let Some(f) = self.iface().and_then(|i| i.buttons) {
            // SAFETY: host callback on the main thread with its own instance.
            unsafe { f(self.sin.0, buttons_to_local(buttons)) };
        }
    }

    /// The C server reports a press as a wheel event of zero.
    fn press(&mut self, buttons: MouseButtons) {
        self.wheel(0, buttons);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn button_masks_follow_red_mouse_state_to_local() {
        assert_eq!(buttons_to_local(MouseButtons::LEFT), 1);
        assert_eq!(buttons_to_local(MouseButtons::MIDDLE), 4);
        assert_eq!(buttons_to_local(MouseButtons::RIGHT), 2);
        assert_eq!(buttons_to_local(MouseButtons::WHEEL_UP), 0);
        assert_eq!(buttons_to_local(MouseButtons::WHEEL_DOWN), 0);
        assert_eq!(buttons_to_local(MouseButtons::SIDE), 64);
        assert_eq!(buttons_to_local(MouseButtons::LEFT | MouseButtons::RIGHT), 3);
    }
}
