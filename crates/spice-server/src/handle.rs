//! Requests from the host to a running server, from any thread.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::config::Auth;
use crate::vdi::Leds;
use crate::waker::Waker;

/// A request queued for the main context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    SetLeds(Leds),
    SetAuth(Auth),
    ExpirePassword,
    DisconnectClients,
}

#[derive(Debug)]
pub(crate) struct HandleShared {
    commands: Mutex<VecDeque<Command>>,
    waker: Arc<Waker>,
}

impl HandleShared {
    pub(crate) fn new(waker: Arc<Waker>) -> Self {
        Self {
            commands: Mutex::new(VecDeque::new()),
            waker,
        }
    }

    pub(crate) fn take(&self) -> VecDeque<Command> {
        std::mem::take(&mut *self.commands.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Talks to a running server from any thread; cheap to clone.
///
/// Requests are carried out on the server's main context shortly after the call
/// returns, in the order they were made.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    pub(crate) shared: Arc<HandleShared>,
}

impl ServerHandle {
    fn push(&self, command: Command) {
        self.shared
            .commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(command);
        self.shared.waker.wake();
    }

    /// Tells clients the guest's keyboard LEDs changed (`spice_server_kbd_leds`).
    pub fn set_keyboard_leds(&self, leds: Leds) {
        self.push(Command::SetLeds(leds));
    }

    /// Changes how new clients authenticate (`spice_server_set_ticket`,
    /// `spice_server_set_noauth`). A password lifetime counts from this call;
    /// clients already connected stay connected.
    pub fn set_auth(&self, auth: Auth) {
        self.push(Command::SetAuth(auth));
    }

    /// Makes the current password stop working now, so no new client can link
    /// until a new one is set (`spice_server_set_ticket(NULL)`).
    pub fn expire_password(&self) {
        self.push(Command::ExpirePassword);
    }

    /// Disconnects every client.
    pub fn disconnect_clients(&self) {
        self.push(Command::DisconnectClients);
    }
}
