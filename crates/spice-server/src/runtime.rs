//! The server on its own thread, driven by the built-in loop.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::config::{Config, Devices};
use crate::core::{BuiltinLoop, Core, LoopStopper};
use crate::error::ServerError;
use crate::handle::ServerHandle;
use crate::server::Server;

/// A server running on its own thread (see [`crate::ServerBuilder::spawn`]).
///
/// Dropping it stops the server and joins the thread.
#[derive(Debug)]
pub struct RunningServer {
    handle: ServerHandle,
    local_addr: SocketAddr,
    tls_local_addr: Option<SocketAddr>,
    stopper: LoopStopper,
    thread: Option<JoinHandle<()>>,
}

impl RunningServer {
    pub(crate) fn spawn(config: Config, devices: Devices, handle: ServerHandle) -> Result<Self, ServerError> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("spice-main".into())
            .spawn(move || {
                let event_loop = match BuiltinLoop::new() {
                    Ok(l) => Rc::new(l),
                    Err(source) => {
                        let _ = tx.send(Err(ServerError::Io {
                            what: "event loop",
                            source,
                        }));
                        return;
                    }
                };
                let core: Rc<dyn Core> = event_loop.clone();
                let server = match Server::start(core, config, devices, handle) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = tx.send(Ok((
                    server.handle(),
                    server.local_addr(),
                    server.tls_local_addr(),
                    event_loop.stopper(),
                )));
                if let Err(e) = event_loop.run() {
                    tracing::error!(error = %e, "event loop failed");
                }
                drop(server);
            })
            .map_err(|source| ServerError::Io {
                what: "server thread",
                source,
            })?;
        match rx.recv() {
            Ok(Ok((handle, local_addr, tls_local_addr, stopper))) => Ok(Self {
                handle,
                local_addr,
                tls_local_addr,
                stopper,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(ServerError::ThreadExited)
            }
        }
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The TLS port's address, when TLS is configured.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls_local_addr
    }

    /// A thread-safe handle for requests to this server.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Stops the server, disconnecting every client, and waits for its thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.stopper.stop();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("server thread panicked");
            }
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop();
    }
}
