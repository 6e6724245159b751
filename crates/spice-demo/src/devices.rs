//! The demo's keyboard, mouse and tablet: they record what arrives in
//! [`Inputs`], which the render loop reads to draw the card.
//!
//! The server calls these from its own thread, so everything they share with
//! the main thread sits behind an `Arc<Mutex<_>>`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};

use spice_server::{DisplayHandle, Keyboard, Leds, Mouse, MouseButtons, ServerHandle, Tablet};

use crate::keyboard::{Action, Decoder};
use crate::tone::Beeper;

/// How many typed characters the card keeps.
pub const TYPED_KEEP: usize = 40;

/// Which device last moved the pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointerSource {
    /// The tablet: client mouse mode, absolute positions.
    Tablet,
    /// The mouse: server mouse mode, accumulated relative motion.
    Mouse,
}

/// Pointer position and buttons as last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pointer {
    /// Column.
    pub x: i32,
    /// Row.
    pub y: i32,
    /// Buttons held.
    pub buttons: MouseButtons,
    /// Sum of wheel steps so far (negative = up).
    pub wheel: i32,
    /// Who reported last; `None` until the first event.
    pub source: Option<PointerSource>,
}

/// Everything the input devices have reported.
#[derive(Debug, Clone)]
pub struct Inputs {
    typed: VecDeque<char>,
    leds: Leds,
    pointer: Pointer,
}

/// [`Inputs`] shared between the server thread and the render loop.
pub type SharedInputs = Arc<Mutex<Inputs>>;

impl Inputs {
    /// Nothing typed, LEDs off, pointer at `(x, y)`.
    pub fn new(x: i32, y: i32) -> Self {
        Self {
            typed: VecDeque::with_capacity(TYPED_KEEP),
            leds: Leds::default(),
            pointer: Pointer {
                x,
                y,
                buttons: MouseButtons::default(),
                wheel: 0,
                source: None,
            },
        }
    }

    /// Wraps `self` for sharing.
    pub fn shared(self) -> SharedInputs {
        Arc::new(Mutex::new(self))
    }

    /// The last [`TYPED_KEEP`] characters typed, oldest first.
    pub fn typed(&self) -> String {
        self.typed.iter().collect()
    }

    /// The keyboard's lock LEDs.
    pub fn leds(&self) -> Leds {
        self.leds
    }

    /// The pointer state (for tests; the card shows [`Inputs::pointer_line`]).
    #[cfg(test)]
    pub fn pointer(&self) -> Pointer {
        self.pointer
    }

    /// The pointer as one line of text for the card.
    pub fn pointer_line(&self) -> String {
        let p = &self.pointer;
        let mode = match p.source {
            None => "no input yet",
            Some(PointerSource::Tablet) => "client mode",
            Some(PointerSource::Mouse) => "server mode",
        };
        let mut line = format!("{:>4},{:<4} {mode:<12} buttons ", p.x, p.y);
        for (button, name) in [
            (MouseButtons::LEFT, 'L'),
            (MouseButtons::MIDDLE, 'M'),
            (MouseButtons::RIGHT, 'R'),
        ] {
            line.push(if p.buttons.contains(button) { name } else { '-' });
        }
        let _ = write!(line, " wheel {}", p.wheel);
        line
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Char(c) => {
                if self.typed.len() == TYPED_KEEP {
                    self.typed.pop_front();
                }
                self.typed.push_back(c);
            }
            Action::Backspace => {
                self.typed.pop_back();
            }
            Action::Leds(leds) => self.leds = leds,
        }
    }
}

/// Locks the inputs; a panic elsewhere leaves plain data behind, so a poisoned lock is fine to use.
pub fn lock(inputs: &SharedInputs) -> MutexGuard<'_, Inputs> {
    inputs.lock().unwrap_or_else(|e| e.into_inner())
}

/// The guest keyboard: decodes scancodes into typed text and lock LEDs.
#[derive(Debug)]
pub struct DemoKeyboard {
    decoder: Decoder,
    inputs: SharedInputs,
    /// Reports LED changes to clients.
    server: ServerHandle,
    /// Sounds a tone for each typed character.
    beeper: Option<Beeper>,
}

impl DemoKeyboard {
    /// A keyboard writing to `inputs` and reporting LED changes through `server`.
    pub fn new(inputs: SharedInputs, server: ServerHandle) -> Self {
        Self {
            decoder: Decoder::new(),
            inputs,
            server,
            beeper: None,
        }
    }

    /// Plays a tone through `beeper` whenever a character is typed.
    pub fn with_beeper(mut self, beeper: Beeper) -> Self {
        self.beeper = Some(beeper);
        self
    }
}

impl Keyboard for DemoKeyboard {
    fn push_scancode(&mut self, byte: u8) {
        let Some(action) = self.decoder.feed(byte) else {
            return;
        };
        tracing::debug!(?action, "key");
        lock(&self.inputs).apply(action);
        if let (Action::Char(_), Some(beeper)) = (action, &self.beeper) {
            beeper.beep();
        }
        if let Action::Leds(leds) = action {
            // Like a real guest, tell the keyboard (here: the client) to light its LEDs.
            self.server.set_keyboard_leds(leds);
        }
    }

    fn leds(&self) -> Leds {
        self.decoder.leds()
    }
}

/// The relative mouse of server mouse mode: accumulates motion into a position
/// clamped to the screen, and moves the cursor the client draws.
#[derive(Debug)]
pub struct DemoMouse {
    inputs: SharedInputs,
    display: DisplayHandle,
    width: u32,
    height: u32,
}

impl DemoMouse {
    /// A mouse confined to a `width × height` screen, moving `display`'s cursor.
    pub fn new(inputs: SharedInputs, display: DisplayHandle, width: u32, height: u32) -> Self {
        Self {
            inputs,
            display,
            width,
            height,
        }
    }
}

impl Mouse for DemoMouse {
    fn motion(&mut self, dx: i32, dy: i32, dz: i32, buttons: MouseButtons) {
        let max_x = self.width.saturating_sub(1).min(i32::MAX as u32) as i32;
        let max_y = self.height.saturating_sub(1).min(i32::MAX as u32) as i32;
        let (x, y) = {
            let mut inputs = lock(&self.inputs);
            let p = &mut inputs.pointer;
            p.x = p.x.saturating_add(dx).clamp(0, max_x);
            p.y = p.y.saturating_add(dy).clamp(0, max_y);
            p.wheel = p.wheel.saturating_add(dz);
            p.buttons = buttons;
            p.source = Some(PointerSource::Mouse);
            (p.x, p.y)
        };
        // In server mode the client draws the cursor where the server says it is.
        self.display.move_cursor(x, y);
    }

    fn buttons(&mut self, buttons: MouseButtons) {
        let mut inputs = lock(&self.inputs);
        inputs.pointer.buttons = buttons;
        inputs.pointer.source = Some(PointerSource::Mouse);
    }
}

/// The absolute tablet of client mouse mode: records where the client's pointer is.
#[derive(Debug)]
pub struct DemoTablet {
    inputs: SharedInputs,
}

impl DemoTablet {
    /// A tablet writing to `inputs`.
    pub fn new(inputs: SharedInputs) -> Self {
        Self { inputs }
    }
}

impl Tablet for DemoTablet {
    fn position(&mut self, x: i32, y: i32, buttons: MouseButtons) {
        let mut inputs = lock(&self.inputs);
        let p = &mut inputs.pointer;
        (p.x, p.y, p.buttons) = (x, y, buttons);
        p.source = Some(PointerSource::Tablet);
    }

    fn wheel(&mut self, dz: i32, buttons: MouseButtons) {
        let mut inputs = lock(&self.inputs);
        let p = &mut inputs.pointer;
        p.wheel = p.wheel.saturating_add(dz);
        p.buttons = buttons;
        p.source = Some(PointerSource::Tablet);
    }

    fn buttons(&mut self, buttons: MouseButtons) {
        let mut inputs = lock(&self.inputs);
        inputs.pointer.buttons = buttons;
        inputs.pointer.source = Some(PointerSource::Tablet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyboard() -> (DemoKeyboard, SharedInputs) {
        let inputs = Inputs::new(0, 0).shared();
        (DemoKeyboard::new(inputs.clone(), ServerHandle::default()), inputs)
    }

    #[test]
    fn keyboard_keeps_the_last_chars_and_backspaces() {
        let (mut kbd, inputs) = keyboard();
        for _ in 0..TYPED_KEEP + 5 {
            kbd.push_scancode(0x1e); // a
        }
        kbd.push_scancode(0x30); // b
        assert_eq!(lock(&inputs).typed().chars().count(), TYPED_KEEP);
        assert!(lock(&inputs).typed().ends_with("ab"));
        kbd.push_scancode(0x0e);
        kbd.push_scancode(0x0e);
        assert_eq!(lock(&inputs).typed().len(), TYPED_KEEP - 2);
        kbd.push_scancode(0x1c);
        assert!(lock(&inputs).typed().ends_with('⏎'));
    }

    #[test]
    fn keyboard_reports_lock_leds() {
        let (mut kbd, inputs) = keyboard();
        kbd.push_scancode(0x3a);
        kbd.push_scancode(0xba);
        assert_eq!(kbd.leds(), Leds::CAPS_LOCK);
        assert_eq!(lock(&inputs).leds(), Leds::CAPS_LOCK);
    }

    #[test]
    fn mouse_accumulates_and_clamps() {
        let inputs = Inputs::new(10, 10).shared();
        let display = DisplayHandle::new();
        let mut mouse = DemoMouse::new(inputs.clone(), display, 100, 50);
        mouse.motion(5, -3, 0, MouseButtons::LEFT);
        let p = lock(&inputs).pointer();
        assert_eq!((p.x, p.y, p.buttons), (15, 7, MouseButtons::LEFT));
        mouse.motion(1000, -1000, -2, MouseButtons::default());
        let p = lock(&inputs).pointer();
        assert_eq!((p.x, p.y, p.wheel), (99, 0, -2));
        mouse.motion(i32::MIN, i32::MAX, 0, MouseButtons::RIGHT);
        let p = lock(&inputs).pointer();
        assert_eq!((p.x, p.y, p.buttons), (0, 49, MouseButtons::RIGHT));
        assert_eq!(p.source, Some(PointerSource::Mouse));
    }

    #[test]
    fn tablet_records_position_and_buttons() {
        let inputs = Inputs::new(0, 0).shared();
        let mut tablet = DemoTablet::new(inputs.clone());
        tablet.position(300, 200, MouseButtons::LEFT | MouseButtons::RIGHT);
        tablet.wheel(1, MouseButtons::default());
        let line = lock(&inputs).pointer_line();
        assert!(line.contains(" 300,200"), "{line}");
        assert!(line.contains("client mode"), "{line}");
        assert!(line.contains("buttons ---"), "{line}");
        assert!(line.ends_with("wheel 1"), "{line}");
        tablet.buttons(MouseButtons::MIDDLE);
        assert!(lock(&inputs).pointer_line().contains("buttons -M-"));
    }
}
