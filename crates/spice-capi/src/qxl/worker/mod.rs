//! The QXL instance as the device of its display thread: requests from the
//! host, the command and cursor rings, and drawing into the display.

mod drawing;

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use spice_qxl::{
    parse_command, read_monitors_config, Command, CommandExt, CursorCommand, Empty, Guest, MemSlot,
    MemSlotConfig, MemSlots, ParseLimits, PrimarySurface, ReleaseInfo, RingPoller, SurfaceCommand,
};
use spice_server::{CursorImage, DisplayDevice, DisplayHandle};

use super::deferred::{MemoryEpoch, Returned};
use super::memory::HostMemory;
use super::surfaces::{Create, Offscreen};
use super::{Done, Instance, Request};
use crate::ffi::{QXLCommandExt, QXLDevInitInfo, QXLReleaseInfo, QXLReleaseInfoExt};

/// Commands taken from a ring per poll at most, and for how long: a host's
/// burst (QEMU's simple display hands over a refresh as many strips at once)
/// is drawn in one poll, while a busy guest cannot starve the display's
/// clients and the host's synchronous calls (the C server's budget is 10 ms).
const BATCH: usize = 1024;
const BATCH_TIME: std::time::Duration = std::time::Duration::from_millis(5);

/// Longest a copy waits undrawn in the display (holding its command) when
/// nothing reads the picture: no client, or none taking frames.
const DEFERRED_HOLD: std::time::Duration = std::time::Duration::from_millis(50);

/// The device's two rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ring {
    Commands,
    Cursor,
}

pub(super) struct Worker {
    instance: Instance,
    requests: Receiver<Request>,
    slots: MemSlots,
    limits: ParseLimits,
    display: DisplayHandle,
    /// When to look at each ring; both stopped until the VM runs.
    commands: RingPoller,
    cursor: RingPoller,
    primary: Option<PrimarySurface>,
    /// The guest's off-screen surfaces, drawn by the canvas.
    offscreen: Offscreen,
    /// What the device was last told (`set_client_capabilities`): whether a
    /// client is present, and the capabilities its clients share.
    client_present: Option<(bool, [u8; crate::ffi::SPICE_CAPABILITIES_SIZE])>,
    /// The display's clients version `client_present` was worked out at:
    /// until it changes, every turn of the loop skips the work.
    presence_version: u64,
    /// The create command of each surface the guest has not destroyed yet,
    /// by surface id (at most the device's surface count).
    held_creates: HashMap<u32, ReleaseInfo>,
    /// Commands of deferred copies the display has dropped, to release.
    returned: Returned,
    /// Advanced whenever guest memory's mapping may change, so that a
    /// stream frame sharing a copy's pixels never reads stale addresses.
    memory_epoch: MemoryEpoch,
    /// The command of the copy this worker last left waiting in the
    /// display, and since when, until it is returned.
    waiting: Option<(ReleaseInfo, Instant)>,
    /// When the rings want their next look (the last poll's answer).
    rings_due: Option<Instant>,
    /// Returned commands kept while the VM is stopped.
    unreleased: Vec<ReleaseInfo>,
}

impl DisplayDevice for Worker {
    fn poll(&mut self, now: Instant) -> Option<Instant> {
        while let Ok(request) = self.requests.try_recv() {
            self.handle(request);
        }
        self.report_client_presence();
        if self
            .waiting
            .is_some_and(|(_, since)| now >= since + DEFERRED_HOLD)
        {
            self.display.settle();
        }
        self.release_returned();
        let commands = self.poll_ring(Ring::Commands, now);
        let cursor = self.poll_ring(Ring::Cursor, now);
        self.rings_due = [commands, cursor].into_iter().flatten().min();
        self.next_poll()
    }

    /// A client that took a frame drew the waiting copy: its command goes
    /// back in this turn, and no wakeup is left for its hold.
    fn after_serve(&mut self, _deadline: Option<Instant>) -> Option<Instant> {
        self.release_returned();
        self.next_poll()
    }
}

impl Drop for Worker {
    /// A copy still waiting in the display reads guest memory, which is
    /// only sure to be there while the instance is: it is drawn now, on
    /// the worker's thread (the display may outlive the worker).
    fn drop(&mut self) {
        self.display.settle();
        self.memory_epoch.advance();
    }
}

impl Worker {
    pub(super) fn new(
        instance: Instance,
        init: QXLDevInitInfo,
        display: DisplayHandle,
        requests: Receiver<Request>,
    ) -> Result<Self, String> {
        let slots = MemSlots::new(MemSlotConfig {
            num_groups: init.num_memslots_groups,
            num_slots: init.num_memslots,
            generation_bits: init.memslot_gen_bits,
            id_bits: init.memslot_id_bits,
        })
        .map_err(|e| e.to_string())?;
        let limits = ParseLimits {
            n_surfaces: init.n_surfaces.max(1),
            ..ParseLimits::default()
        };
        Ok(Self {
            instance,
            requests,
            slots,
            limits,
            display,
            commands: RingPoller::new(),
            cursor: RingPoller::new(),
            primary: None,
            offscreen: Offscreen::default(),
            client_present: None,
            presence_version: 0,
            held_creates: HashMap::new(),
            returned: Returned::default(),
            memory_epoch: MemoryEpoch::default(),
            waiting: None,
            rings_due: None,
            unreleased: Vec::new(),
        })
    }

    /// When to be polled next: for the rings, or to draw a copy that has
    /// waited long enough.
    fn next_poll(&self) -> Option<Instant> {
        let hold = self.waiting.map(|(_, since)| since + DEFERRED_HOLD);
        [self.rings_due, hold].into_iter().flatten().min()
    }

    /// Whether the VM runs (both rings follow `vm_start` / `vm_stop` together).
    fn running(&self) -> bool {
        self.commands.is_running()
    }

    /// Whether the rings may be touched: the VM runs and some memslot exists
    /// (before one does, no command could be read anyway).
    fn rings_open(&self) -> bool {
        self.running() && !self.slots.is_empty()
    }

    fn poller(&mut self, ring: Ring) -> &mut RingPoller {
        match ring {
            Ring::Commands => &mut self.commands,
            Ring::Cursor => &mut self.cursor,
        }
    }

    /// Takes up to [`BATCH`] commands (for at most [`BATCH_TIME`]) from `ring` if it is due, following the
    /// notification handshake. Returns when the ring wants the next look.
    fn poll_ring(&mut self, ring: Ring, now: Instant) -> Option<Instant> {
        if !self.rings_open() {
            return None;
        }
        if !self.poller(ring).due(now) {
            return self.poller(ring).deadline();
        }
        for taken in 0..BATCH {
            if taken % 16 == 15 && now.elapsed() >= BATCH_TIME {
                break;
            }
            if let Some(ext) = self.get_command(ring) {
                self.poller(ring).got_command();
                self.process(&ext);
                continue;
            }
            match self.poller(ring).empty(now) {
                Empty::RetryLater => return self.poller(ring).deadline(),
                Empty::RequestNotification => {
                    let wait = self.request_notification(ring);
                    self.poller(ring).notification(wait, now);
                    if wait {
                        return self.poller(ring).deadline();
                    }
                }
            }
        }
        // The batch is used up; more may be waiting.
        Some(Instant::now())
    }

    fn get_command(&self, ring: Ring) -> Option<QXLCommandExt> {
        let iface = self.instance.iface();
        let get = match ring {
            Ring::Commands => iface.get_command,
            Ring::Cursor => iface.get_cursor_command,
        }?;
        let mut ext = QXLCommandExt::default();
        // SAFETY: worker-thread callback filling our struct.
        (unsafe { get(self.instance.0, &mut ext) } != 0).then_some(ext)
    }

    /// Asks the device for a wakeup when the ring gets commands; `false` means
    /// some arrived meanwhile.
    fn request_notification(&self, ring: Ring) -> bool {
        let iface = self.instance.iface();
        let request = match ring {
            Ring::Commands => iface.req_cmd_notification,
            Ring::Cursor => iface.req_cursor_notification,
        };
        // SAFETY: worker-thread callback.
        request.is_none_or(|req| unsafe { req(self.instance.0) } != 0)
    }

    /// Carries out one request.
    fn handle(&mut self, request: Request) {
        if !matches!(request, Request::Wakeup) {
            // Whatever the host asks may read the picture or take memory
            // away (a memslot, a surface): a copy waiting in the display is
            // drawn first, and frames sharing its pixels no longer read them.
            self.display.settle();
            self.memory_epoch.advance();
        }
        self.carry_out(request);
        self.release_returned();
    }

    fn carry_out(&mut self, request: Request) {
        match request {
            Request::Wakeup => {
                tracing::trace!("wakeup");
                self.commands.wakeup();
                self.cursor.wakeup();
            }
            Request::Oom => {
                self.drain();
                // The copies the display let go of (`handle` settled the
                // display) go back before the flush: QEMU batches releases
                // and pushes a short batch to the guest only on a flush.
                self.release_returned();
                if let Some(flush) = self.instance.iface().flush_resources {
                    // SAFETY: worker-thread callback with the device's own instance.
                    unsafe { flush(self.instance.0) };
                }
            }
            Request::SetRunning(running, reply) => {
                if running && !self.running() {
                    tracing::debug!("QXL worker started");
                    self.commands.start();
                    self.cursor.start();
                    // The device forgets what it was told while stopped.
                    self.client_present = None;
                    self.report_client_presence();
                } else if !running && self.running() {
                    // vm_stop: everything queued is drawn, into the primary's memory
                    // too, before the device stops.
                    self.drain();
                    self.flush_primary(None);
                    self.offscreen.write_back_all(&self.slots);
                    // No callback once stopped: every command goes back now.
                    self.release_returned();
                    self.commands.stop();
                    self.cursor.stop();
                    tracing::debug!("QXL worker stopped");
                }
                self.answer(reply);
            }
            Request::UpdateArea {
                surface_id,
                area,
                reply,
            } => {
                tracing::trace!(surface_id, "update area");
                self.drain();
                self.update_area(surface_id, area);
                self.answer(reply);
            }
            Request::UpdateAreaAsync {
                surface_id,
                area,
                cookie,
            } => {
                self.drain();
                self.update_area(surface_id, area);
                if let Some(complete) = self.instance.iface().update_area_complete {
                    // SAFETY: worker-thread callback; no rects are left dirty.
                    unsafe { complete(self.instance.0, surface_id, std::ptr::null_mut(), 0) };
                }
                self.complete(Done::Cookie(cookie));
            }
            Request::AddMemslot(slot, done) => {
                let result = self.slots.add(
                    slot.slot_group_id,
                    slot.slot_id,
                    MemSlot {
                        generation: slot.generation,
                        virt_start: slot.virt_start as u64,
                        virt_end: slot.virt_end as u64,
                        addr_delta: slot.addr_delta,
                    },
                );
                if let Err(e) = result {
                    tracing::error!(error = %e, "memslot refused");
                }
                self.complete(done);
            }
            Request::DelMemslot(group, slot) => {
                if let Err(e) = self.slots.remove(group, slot) {
                    tracing::warn!(error = %e, "removing memslot");
                }
            }
            Request::ResetMemslots => self.slots.reset(),
            Request::CreatePrimary(surface_id, surface, done) => {
                self.create_primary(surface_id, surface);
                self.complete(done);
            }
            Request::DestroyPrimary(surface_id, done) => {
                tracing::debug!(surface_id, "primary surface destroyed");
                self.drain();
                self.flush_primary(None);
                self.primary = None;
                self.display.clear();
                self.complete(done);
            }
            Request::DestroySurface(surface_id, done) => {
                tracing::trace!(surface_id, "destroy surface");
                self.drain();
                self.complete(done);
            }
            Request::DestroySurfaces(done) => {
                // Every surface, the primary too, as the C server does (QEMU's reset).
                self.drain();
                self.offscreen.clear();
                self.release_held_creates();
                if self.primary.take().is_some() {
                    self.display.clear();
                }
                self.complete(done);
            }
            Request::Flush(done) => {
                // flush_surfaces_async: every surface's memory up to date, as
                // the C server leaves it (its canvas draws into guest memory).
                self.drain();
                self.flush_primary(None);
                self.offscreen.write_back_all(&self.slots);
                self.complete(done);
            }
            Request::ResetCursor(reply) => {
                self.display.hide_cursor();
                self.answer(reply);
            }
            Request::LoadvmCommands(commands, reply) => {
                // Surfaces re-created from a saved VM keep what their memory holds.
                for ext in commands {
                    self.process_command(&ext, true);
                }
                self.answer(reply);
            }
            Request::MonitorsConfig {
                phys,
                group,
                cookie,
                max_monitors,
            } => {
                let guest = Guest::new(&self.slots, &HostMemory).with_limits(self.limits);
                // As C: the guest's word, bounded by the outputs the host's
                // device has (QEMU's max_outputs): its first heads only.
                let limit = (max_monitors as usize).clamp(1, spice_server::MAX_HEADS);
                match read_monitors_config(&guest, phys, group, limit) {
                    Ok((max, heads)) => self.set_heads(u32::from(max), &heads),
                    Err(e) => tracing::warn!(error = %e, "monitors config rejected"),
                }
                self.complete(Done::Cookie(cookie));
            }
            Request::DriverUnload => tracing::debug!("guest driver unloaded"),
            Request::Sync(reply) => {
                self.answer(reply);
            }
        }
    }

    /// The guest's monitors (`spice_qxl_monitors_config_async`): the heads
    /// on the primary surface with pixels (a disabled output has none, and
    /// the C server leaves those out too) become the display's heads.
    fn set_heads(&self, max_allowed: u32, heads: &[spice_qxl::Head]) {
        let shown: Vec<spice_server::Head> = heads
            .iter()
            .filter(|h| h.surface_id == 0 && h.width > 0 && h.height > 0)
            .map(|h| spice_server::Head {
                id: h.id,
                x: h.x,
                y: h.y,
                width: h.width,
                height: h.height,
            })
            .collect();
        tracing::debug!(max_allowed, heads = ?shown, "guest monitors config");
        if let Err(e) = self.display.set_heads(&shown, max_allowed) {
            tracing::warn!(error = %e, "guest monitors config refused");
        }
    }

    /// Answers a host's synchronous call, once every command the display
    /// is done with is back with the device (a host that counts its
    /// commands may look as soon as its call returns).
    fn answer(&mut self, reply: std::sync::mpsc::SyncSender<()>) {
        self.release_returned();
        let _ = reply.send(());
    }

    fn complete(&mut self, done: Done) {
        self.release_returned();
        match done {
            Done::Reply(reply) => {
                let _ = reply.send(());
            }
            Done::Cookie(cookie) => {
                if let Some(complete) = self.instance.iface().async_complete {
                    // SAFETY: worker-thread callback with the device's own instance.
                    unsafe { complete(self.instance.0, cookie) };
                }
            }
        }
    }

    /// Processes both rings until empty (for the host's calls that must see
    /// everything queued drawn); nothing while the rings are closed.
    fn drain(&mut self) {
        if !self.rings_open() {
            return;
        }
        for ring in [Ring::Commands, Ring::Cursor] {
            // Bounded: a guest that keeps producing cannot hold a host call forever.
            for _ in 0..64 * BATCH {
                let Some(ext) = self.get_command(ring) else { break };
                self.process(&ext);
            }
            // Whatever comes next is found by the ring's normal polling.
            self.poller(ring).got_command();
        }
    }

    /// Parses, applies and releases one command.
    fn process(&mut self, ext: &QXLCommandExt) {
        self.process_command(ext, false);
    }

    /// [`process`](Self::process); `loadvm` for commands a restored VM replays.
    fn process_command(&mut self, ext: &QXLCommandExt, loadvm: bool) {
        let ext = CommandExt {
            data: ext.cmd.data,
            cmd_type: ext.cmd.type_,
            group_id: ext.group_id,
            flags: ext.flags,
        };
        let parsed = {
            // 32-bit rows stay in guest memory until drawn: one copy, straight
            // into the surface, before the command is released below.
            let guest = Guest::new(&self.slots, &HostMemory)
                .with_limits(self.limits)
                .with_bitmap_rows_in_place();
            parse_command(&guest, &ext)
        };
        if parsed.release.is_none() {
            tracing::warn!(
                data = format_args!("{:#x}", ext.data),
                "QXL command outside every memslot cannot be released"
            );
        }
        // Taken by a copy left waiting in the display, which returns it.
        let mut release = parsed.release;
        let mut surface_command = None;
        match parsed.command {
            Ok(command) => {
                if let Command::Surface(s) = &command {
                    surface_command = Some(s.clone());
                }
                self.apply(command, ext.group_id, loadvm, &mut release);
            }
            Err(e) => tracing::warn!(cmd_type = ext.cmd_type, error = %e, "QXL command rejected"),
        }
        if let Some(release) = release {
            self.release_after(surface_command, release);
        }
    }

    /// Hands a processed command back to the device, except a surface's
    /// create command, which is held until the surface is destroyed and
    /// then released just before the destroy command, as the C server does:
    /// the Linux qxl driver keeps the destroy command in the create
    /// command's buffer and frees the surface's id when the create comes
    /// back, so an early release lets the guest reuse both while the
    /// surface still exists.
    fn release_after(&mut self, surface_command: Option<SurfaceCommand>, release: ReleaseInfo) {
        match surface_command {
            Some(SurfaceCommand::Create { surface_id, .. }) => {
                // A second create of a live id (a guest bug): the older one goes back.
                if let Some(older) = self.held_creates.insert(surface_id, release) {
                    self.release(older);
                }
            }
            Some(SurfaceCommand::Destroy { surface_id }) => {
                if let Some(create) = self.held_creates.remove(&surface_id) {
                    self.release(create);
                }
                self.release(release);
            }
            None => self.release(release),
        }
    }

    /// Releases every held surface create command (all surfaces destroyed).
    fn release_held_creates(&mut self) {
        let held: Vec<ReleaseInfo> = self.held_creates.drain().map(|(_, r)| r).collect();
        for release in held {
            self.release(release);
        }
    }

    /// Releases the commands of the copies the display is done with (not
    /// while the VM is stopped: they wait for it to run again).
    fn release_returned(&mut self) {
        let back = self.returned.take();
        if self.waiting.is_some_and(|(waiting, _)| back.contains(&waiting)) {
            self.waiting = None;
        }
        self.unreleased.extend(back);
        if self.running() {
            for release in std::mem::take(&mut self.unreleased) {
                self.release(release);
            }
        }
    }

    fn release(&self, release: ReleaseInfo) {
        if let Some(release_resource) = self.instance.iface().release_resource {
            let info = QXLReleaseInfoExt {
                info: release.addr as usize as *mut QXLReleaseInfo,
                group_id: release.group_id,
            };
            // SAFETY: worker-thread callback; `info` is the translated address of
            // the command's own release info, as the device expects.
            unsafe { release_resource(self.instance.0, info) };
        }
    }

    /// Carries out a parsed command; a drawing that keeps reading the
    /// command's memory takes `release`.
    fn apply(&mut self, command: Command, group: u32, loadvm: bool, release: &mut Option<ReleaseInfo>) {
        match command {
            Command::Draw(drawable) => self.draw(drawable, release),
            Command::Cursor(cursor) => self.cursor(cursor),
            Command::Update(update) => {
                // The legacy update command: the area rendered into guest memory, then told.
                let a = update.area;
                let area = crate::ffi::QXLRect {
                    top: a.top,
                    left: a.left,
                    bottom: a.bottom,
                    right: a.right,
                };
                self.update_area(update.surface_id, Some(area));
                if let Some(notify) = self.instance.iface().notify_update {
                    // SAFETY: worker-thread callback.
                    unsafe { notify(self.instance.0, update.update_id) };
                }
            }
            Command::Message(text) => {
                tracing::debug!(message = %String::from_utf8_lossy(&text), "guest QXL message");
            }
            Command::Surface(SurfaceCommand::Create {
                surface_id,
                format,
                width,
                height,
                stride,
                data,
                flags,
            }) => {
                // Whatever was queued reads the old surface of this id.
                let create = Create {
                    surface_id,
                    format,
                    width,
                    height,
                    stride,
                    data,
                    group,
                    flags,
                };
                match self.offscreen.create(&self.slots, create, loadvm) {
                    Ok(()) => tracing::trace!(surface_id, width, height, format, "surface created"),
                    Err(e) => tracing::warn!(surface_id, error = %e, "surface not created"),
                }
            }
            Command::Surface(SurfaceCommand::Destroy { surface_id }) => {
                tracing::trace!(surface_id, "surface destroyed");
                self.offscreen.destroy(surface_id);
            }
            Command::Nop => {}
        }
    }

    fn cursor(&mut self, command: CursorCommand) {
        match command {
            CursorCommand::Set { x, y, visible, shape } => {
                if let Some(shape) = shape {
                    match shape.to_argb().map(|argb| {
                        CursorImage::new(shape.width, shape.height, shape.hot_x, shape.hot_y, argb)
                    }) {
                        Some(Ok(image)) => self.display.set_cursor(image),
                        Some(Err(e)) => tracing::warn!(error = %e, "cursor rejected"),
                        None => tracing::debug!(cursor_type = shape.cursor_type, "cursor type not supported"),
                    }
                }
                self.display.move_cursor(i32::from(x), i32::from(y));
                if !visible {
                    self.display.hide_cursor();
                }
            }
            CursorCommand::Move { x, y } => self.display.move_cursor(i32::from(x), i32::from(y)),
            CursorCommand::Hide => self.display.hide_cursor(),
            CursorCommand::Trail { .. } => {}
        }
    }

    /// Tells the device whether a client shows its display and which of the
    /// display capabilities that matter to a guest's drawing every client has
    /// (interface 3.2+), as the C server does: QEMU's qxl passes them on to
    /// the guest driver, which then sends composite operations and A8
    /// surfaces, all rendered by the canvas.
    fn report_client_presence(&mut self) {
        // QEMU's device raises an interrupt for it, which a stopped VM cannot take.
        if !self.running() {
            return;
        }
        use spice_proto::consts::display_cap;
        const REPORTED: [u32; 4] = [
            display_cap::SIZED_STREAM,
            display_cap::MONITORS_CONFIG,
            display_cap::COMPOSITE,
            display_cap::A8_SURFACE,
        ];
        // Read before the capabilities: a client that comes meanwhile
        // changes it again, and the next turn looks again.
        let version = self.display.clients_version();
        if self.client_present.is_some() && version == self.presence_version {
            return;
        }
        self.presence_version = version;
        let mut caps = [0u8; crate::ffi::SPICE_CAPABILITIES_SIZE];
        let common = self.display.clients_common_caps(&REPORTED);
        for cap in common.iter().flatten() {
            caps[*cap as usize / 8] |= 1 << (cap % 8);
        }
        let report = (common.is_some(), caps);
        if self.client_present == Some(report) {
            return;
        }
        self.client_present = Some(report);
        let iface = self.instance.iface();
        if iface.base.minor_version < 2 {
            return;
        }
        if let Some(set) = iface.set_client_capabilities {
            // SAFETY: worker-thread callback; `caps` has the size spice.h declares.
            unsafe { set(self.instance.0, u8::from(report.0), caps.as_mut_ptr()) };
        }
    }
}
