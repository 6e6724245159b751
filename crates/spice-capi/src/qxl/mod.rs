//! QXL instances: the device side of a display.
//!
//! Each instance gets one display thread (a [`DisplayWorker`], named "SPICE
//! Worker" like the C server's) that serves the display's clients and runs
//! the instance's [`worker::Worker`] as its device: it owns the memslot table,
//! pulls commands from the device's rings, parses them through `spice-qxl`
//! (copying guest memory once), draws them into the instance's
//! [`DisplayHandle`], and releases them back to the device. Every QXL callback
//! of an instance is made from that thread, and none before `vm_start`, after
//! `vm_stop` or before a memslot exists; the host's synchronous `spice_qxl_*`
//! calls send a request and wait for the worker's answer, the `_async` ones
//! return at once and end with `async_complete` from the worker.

mod deferred;
mod memory;
mod monitors;
mod surfaces;
mod worker;

use std::any::Any;
use std::sync::mpsc::{sync_channel, Sender, SyncSender};
use std::sync::{Arc, Mutex};

use spice_server::{DisplayHandle, DisplayWorker, WorkerWaker};

use crate::api::interface::instance_state;
use crate::ffi::{
    QXLCommandExt, QXLDevInitInfo, QXLDevMemSlot, QXLDevSurfaceCreate, QXLInstance, QXLInterface,
};
use crate::instance::Kind;
use crate::server::CServer;
use worker::Worker;

/// How a request reports completion: the caller waits, or `async_complete(cookie)`.
#[derive(Debug)]
pub(crate) enum Done {
    Reply(SyncSender<()>),
    Cookie(u64),
}

impl From<SyncSender<()>> for Done {
    fn from(reply: SyncSender<()>) -> Self {
        Self::Reply(reply)
    }
}

impl From<u64> for Done {
    fn from(cookie: u64) -> Self {
        Self::Cookie(cookie)
    }
}

/// Work for an instance's worker thread.
#[derive(Debug)]
pub(crate) enum Request {
    Wakeup,
    Oom,
    SetRunning(bool, SyncSender<()>),
    UpdateArea {
        surface_id: u32,
        area: Option<crate::ffi::QXLRect>,
        reply: SyncSender<()>,
    },
    UpdateAreaAsync {
        surface_id: u32,
        area: Option<crate::ffi::QXLRect>,
        cookie: u64,
    },
    AddMemslot(QXLDevMemSlot, Done),
    DelMemslot(u32, u32),
    ResetMemslots,
    CreatePrimary(u32, QXLDevSurfaceCreate, Done),
    DestroyPrimary(u32, Done),
    DestroySurface(u32, Done),
    DestroySurfaces(Done),
    Flush(Done),
    ResetCursor(SyncSender<()>),
    LoadvmCommands(Vec<QXLCommandExt>, SyncSender<()>),
    MonitorsConfig {
        phys: u64,
        group: u32,
        cookie: u64,
        /// The host's `spice_qxl_set_max_monitors` when the call came.
        max_monitors: u32,
    },
    DriverUnload,
    Sync(SyncSender<()>),
}

/// A QXL instance pointer the worker thread may use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Instance(pub(crate) *mut QXLInstance);

// SAFETY: the host keeps the instance alive until `spice_server_remove_interface`,
// which joins the worker first; the worker is the only thread making the
// instance's ring/release/async callbacks, as spice-qxl.h requires.
unsafe impl Send for Instance {}
// SAFETY: shared references only read the pointer value.
unsafe impl Sync for Instance {}

impl Instance {
    pub(crate) fn iface(&self) -> &QXLInterface {
        // SAFETY: a live instance whose `sif` is the QXL interface it was added with.
        unsafe { &*((*self.0).base.sif as *const QXLInterface) }
    }
}

/// An attached QXL instance, kept in its `InstanceState`.
pub(crate) struct QxlDevice {
    instance: Instance,
    id: u8,
    requests: Mutex<Sender<Request>>,
    waker: WorkerWaker,
    thread: Mutex<Option<DisplayWorker>>,
    display: DisplayHandle,
    device_info: Mutex<Option<(String, u32, u32)>>,
    max_monitors: std::sync::atomic::AtomicU32,
}

impl QxlDevice {
    /// Queues a request.
    pub(crate) fn post(&self, request: Request) {
        let sent = self
            .requests
            .lock()
            .map(|tx| tx.send(request).is_ok())
            .unwrap_or(false);
        if sent {
            self.waker.wake();
        } else {
            tracing::error!(id = self.id, "QXL worker is gone; request dropped");
        }
    }

    /// Sends a request and waits until the worker has carried it out.
    pub(crate) fn call(&self, make: impl FnOnce(SyncSender<()>) -> Request) {
        let (tx, rx) = sync_channel(1);
        self.post(make(tx));
        if rx.recv().is_err() {
            tracing::error!(id = self.id, "QXL worker ended before answering");
        }
    }

    /// Starts or stops command processing (`spice_server_vm_start/stop`), waiting for it.
    pub(crate) fn set_running(&self, running: bool) {
        self.call(|reply| Request::SetRunning(running, reply));
    }

    /// Completes an async call on the caller's thread (GL draws without a scanout).
    pub(crate) fn complete_now(&self, cookie: u64) {
        if let Some(done) = self.instance.iface().async_complete {
            // SAFETY: host callback with its own live instance.
            unsafe { done(self.instance.0, cookie) };
        }
    }

    /// The most monitors the host's device has (`spice_qxl_set_max_monitors`
    /// or `spice_qxl_set_device_info`; unbounded until set).
    pub(crate) fn max_monitors(&self) -> u32 {
        self.max_monitors.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn set_max_monitors(&self, max: u32) {
        tracing::debug!(id = self.id, max, "QXL device's most monitors");
        self.max_monitors
            .store(max.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn set_device_info(&self, address: String, start: u32, count: u32) {
        tracing::debug!(id = self.id, %address, start, count, "QXL device info");
        if let Ok(mut info) = self.device_info.lock() {
            *info = Some((address, start, count));
        }
        // The device's outputs bound its monitors, as C (QEMU 7.2 no longer
        // calls spice_qxl_set_max_monitors: max_outputs comes this way).
        self.set_max_monitors(count);
    }
}

impl QxlDevice {
    /// Stops the worker and waits for it; idempotent.
    pub(crate) fn stop(&self) {
        // The instance is going away: no client's monitors config may reach it.
        self.display.set_client_monitors_handler(None);
        let worker = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(worker) = worker {
            worker.stop();
        }
    }
}

impl Drop for QxlDevice {
    /// A server destroyed with its QXL interfaces still added must not leave a
    /// worker calling into the host.
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `f` on the device of a QXL instance, logging when there is none.
pub(crate) fn with_device(qin: *mut QXLInstance, entry: &'static str, f: impl FnOnce(&QxlDevice)) {
    // SAFETY: the host passes its own QXL instance.
    let Some(state) = (unsafe { instance_state(qin.cast(), Kind::Qxl) }) else {
        tracing::error!(entry, "QXL call on an instance that was not added");
        return;
    };
    match state
        .extra
        .as_ref()
        .and_then(|e| e.downcast_ref::<Arc<QxlDevice>>())
    {
        Some(device) => f(device),
        None => tracing::error!(entry, "QXL instance has no device"),
    }
}

/// Adds a QXL instance: asks the device for its memslot layout (on the caller's
/// thread, as the C server does), and starts its display thread with the
/// worker stopped. [`attached`] follows once the instance is registered.
pub(crate) fn attach(server: &CServer, qin: *mut QXLInstance) -> Result<Box<dyn Any + Send + Sync>, String> {
    let instance = Instance(qin);
    // SAFETY: live instance passed by the host.
    let raw_id = unsafe { (*qin).id };
    let id = u8::try_from(raw_id).map_err(|_| format!("QXL instance id {raw_id} out of range"))?;
    if server.qxl_devices().iter().any(|d| d.id == id) {
        return Err(format!("QXL instance id {id} is already added"));
    }
    let iface = instance.iface();
    let mut init = QXLDevInitInfo::default();
    let get_init_info = iface.get_init_info.ok_or("QXL interface lacks get_init_info")?;
    // SAFETY: host callback filling our struct.
    unsafe { get_init_info(qin, &mut init) };
    let display = DisplayHandle::new();
    display.set_client_monitors_handler(Some(Box::new(monitors::QxlMonitors { instance })));
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = Worker::new(instance, init, display.clone(), rx)?;
    let thread = DisplayWorker::start(&display, Some(Box::new(worker)))
        .map_err(|e| format!("cannot start the QXL worker: {e}"))?;
    server.handle.add_display(id, display.clone());
    tracing::info!(
        id,
        slots = init.num_memslots,
        groups = init.num_memslots_groups,
        "QXL instance added"
    );
    let device = Arc::new(QxlDevice {
        instance,
        id,
        requests: Mutex::new(tx),
        waker: thread.waker(),
        thread: Mutex::new(Some(thread)),
        display,
        device_info: Mutex::new(None),
        // Unbounded until the host says, as C.
        max_monitors: std::sync::atomic::AtomicU32::new(u32::MAX),
    });
    server.qxl_devices().push(device.clone());
    Ok(Box::new(device))
}

/// The instance is registered and takes `spice_qxl_*` calls: the device
/// hears `attached_worker` (a host may add memslots, create the primary
/// surface or start the VM from there), then its compression level, and the
/// worker starts if the VM runs, in the C server's order.
pub(crate) fn attached(server: &CServer, qin: *mut QXLInstance) {
    let instance = Instance(qin);
    let iface = instance.iface();
    // SAFETY: reading the union slot; both variants are function pointers (or NULL).
    if let Some(attached) = unsafe { iface.attached.attached_worker } {
        // SAFETY: host callback with its own, now registered, instance.
        unsafe { attached(qin) };
    }
    if let Some(set_level) = iface.set_compression_level {
        // SAFETY: host callback; the level is advisory.
        unsafe { set_level(qin, 0) };
    }
    if server.vm_running() {
        with_device(qin, "spice_server_add_interface", |d| d.set_running(true));
    }
}

/// Removes a QXL instance: stops its worker and its display.
pub(crate) fn detach(server: &CServer, extra: Option<Box<dyn Any + Send + Sync>>) {
    let Some(device) = extra.and_then(|e| e.downcast::<Arc<QxlDevice>>().ok()) else {
        return;
    };
    server.qxl_devices().retain(|d| !Arc::ptr_eq(d, &device));
    device.stop();
    server.handle.remove_display(device.id);
}
