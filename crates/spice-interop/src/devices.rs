//! Devices that record what the server gives them, for assertions.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spice_server::{Keyboard, Leds, Mouse, MouseButtons, Tablet};

/// Something a device received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEvent {
    /// Keyboard scancode byte.
    Scancode(u8),
    /// Tablet absolute position.
    Position(i32, i32, u16),
    /// Tablet or mouse buttons.
    Buttons(u16),
    /// Tablet wheel.
    Wheel(i32),
    /// Tablet logical size.
    LogicalSize(u32, u32),
    /// Mouse relative motion.
    Motion(i32, i32, i32, u16),
}

/// Receives device events.
#[derive(Debug)]
pub struct Recorder {
    rx: Receiver<DeviceEvent>,
}

impl Recorder {
    /// Waits for the next event matching `want`, skipping others; `None` on timeout.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut want: impl FnMut(&DeviceEvent) -> bool,
    ) -> Option<DeviceEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(e) if want(&e) => return Some(e),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Collects scancodes until `count` arrived or the time is up.
    pub fn scancodes(&self, count: usize, timeout: Duration) -> Vec<u8> {
        let mut codes = Vec::new();
        while codes.len() < count {
            match self.wait_for(timeout, |e| matches!(e, DeviceEvent::Scancode(_))) {
                Some(DeviceEvent::Scancode(c)) => codes.push(c),
                _ => break,
            }
        }
        codes
    }

    /// Everything received so far.
    pub fn drain(&self) -> Vec<DeviceEvent> {
        self.rx.try_iter().collect()
    }
}

/// A keyboard, tablet and mouse that forward events to a [`Recorder`].
#[derive(Debug, Clone)]
pub struct RecordingDevices {
    tx: Sender<DeviceEvent>,
    leds: Arc<Mutex<Leds>>,
}

/// Makes recording devices and their recorder.
pub fn recording() -> (RecordingDevices, Recorder) {
    let (tx, rx) = channel();
    (
        RecordingDevices {
            tx,
            leds: Arc::new(Mutex::new(Leds::default())),
        },
        Recorder { rx },
    )
}

impl RecordingDevices {
    /// Sets the LEDs the keyboard reports as the guest's.
    pub fn set_guest_leds(&self, leds: Leds) {
        *self.leds.lock().unwrap() = leds;
    }

    fn send(&self, e: DeviceEvent) {
        let _ = self.tx.send(e);
    }
}

impl Keyboard for RecordingDevices {
    fn push_scancode(&mut self, byte: u8) {
        self.send(DeviceEvent::Scancode(byte));
    }
    fn leds(&self) -> Leds {
        *self.leds.lock().unwrap()
    }
}

impl Tablet for RecordingDevices {
    fn set_logical_size(&mut self, width: u32, height: u32) {
        self.send(DeviceEvent::LogicalSize(width, height));
    }
    fn position(&mut self, x: i32, y: i32, buttons: MouseButtons) {
        self.send(DeviceEvent::Position(x, y, buttons.0));
    }
    fn wheel(&mut self, dz: i32, _buttons: MouseButtons) {
        self.send(DeviceEvent::Wheel(dz));
    }
    fn buttons(&mut self, buttons: MouseButtons) {
        self.send(DeviceEvent::Buttons(buttons.0));
    }
}

impl Mouse for RecordingDevices {
    fn motion(&mut self, dx: i32, dy: i32, dz: i32, buttons: MouseButtons) {
        self.send(DeviceEvent::Motion(dx, dy, dz, buttons.0));
    }
    fn buttons(&mut self, buttons: MouseButtons) {
        self.send(DeviceEvent::Buttons(buttons.0));
    }
}
