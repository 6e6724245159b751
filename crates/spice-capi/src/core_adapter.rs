//! The host's `SpiceCoreInterface` as a Rust [`Core`].
//!
//! Callbacks cross into C as a raw `Rc` pointer (the C "opaque") whose
//! reference the C side owns until the timer or watch is removed. While a
//! callback runs, the trampoline holds a reference of its own, so a callback
//! that removes its own timer or watch never frees what is running.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Duration;

use spice_server::core::{TimerCallback, WatchCallback};
use spice_server::{ChannelEvent, ChannelInfo, Core, Interest, TimerId, WatchId};

use crate::ffi::{
    SpiceChannelEventInfo, SpiceCoreInterface, SpiceTimer, SpiceWatch, SPICE_CHANNEL_EVENT_CONNECTED,
    SPICE_CHANNEL_EVENT_DISCONNECTED, SPICE_CHANNEL_EVENT_FLAG_ADDR_EXT, SPICE_CHANNEL_EVENT_FLAG_TLS,
    SPICE_CHANNEL_EVENT_INITIALIZED, SPICE_WATCH_EVENT_READ, SPICE_WATCH_EVENT_WRITE,
};
use crate::guard::guard;

struct TimerCtx {
    callback: RefCell<Option<TimerCallback>>,
}

struct WatchCtx {
    callback: RefCell<Option<WatchCallback>>,
}

struct TimerEntry {
    c_timer: *mut SpiceTimer,
    ctx: *const TimerCtx,
}

struct WatchEntry {
    c_watch: *mut SpiceWatch,
    ctx: *const WatchCtx,
}

/// A [`Core`] backed by the host's C core interface.
pub(crate) struct CCore {
    iface: *const SpiceCoreInterface,
    minor: u32,
    next: Cell<u64>,
    timers: RefCell<HashMap<u64, TimerEntry>>,
    watches: RefCell<HashMap<u64, WatchEntry>>,
    /// `SpiceChannelEventInfo` of each linked connection: the host may keep the
    /// pointer from CONNECTED until DISCONNECTED (QEMU's `query-spice` does).
    infos: RefCell<HashMap<u64, Box<SpiceChannelEventInfo>>>,
}

impl CCore {
    /// # Safety
    /// `iface` points to a core interface that stays valid while the server runs.
    pub(crate) unsafe fn new(iface: *const SpiceCoreInterface) -> Self {
        // SAFETY: valid per the caller's contract.
        let minor = unsafe { (*iface).base.minor_version };
        Self {
            iface,
            minor,
            next: Cell::new(1),
            timers: RefCell::new(HashMap::new()),
            watches: RefCell::new(HashMap::new()),
            infos: RefCell::new(HashMap::new()),
        }
    }

    fn iface(&self) -> &SpiceCoreInterface {
        // SAFETY: the host keeps its core interface alive while the server runs (spice.h contract).
        unsafe { &*self.iface }
    }

    fn fresh(&self) -> u64 {
        let id = self.next.get();
        self.next.set(id + 1);
        id
    }
}

unsafe extern "C" fn timer_trampoline(opaque: *mut c_void) {
    guard("timer callback", (), || {
        let ptr = opaque as *const TimerCtx;
        // SAFETY: `opaque` came from `Rc::into_raw` in `add_timer`, and the C side
        // holds that reference until `remove_timer`; we add our own for the call.
        let ctx = unsafe {
            Rc::increment_strong_count(ptr);
            Rc::from_raw(ptr)
        };
        let taken = ctx.callback.borrow_mut().take();
        if let Some(mut callback) = taken {
            callback();
            ctx.callback.borrow_mut().get_or_insert(callback);
        }
    })
}

unsafe extern "C" fn watch_trampoline(_fd: c_int, event: c_int, opaque: *mut c_void) {
    guard("watch callback", (), || {
        let ptr = opaque as *const WatchCtx;
        // SAFETY: as in `timer_trampoline`: the C side owns one reference until `remove_watch`.
        let ctx = unsafe {
            Rc::increment_strong_count(ptr);
            Rc::from_raw(ptr)
        };
        let fired = Interest {
            read: event & SPICE_WATCH_EVENT_READ != 0,
            write: event & SPICE_WATCH_EVENT_WRITE != 0,
        };
        let taken = ctx.callback.borrow_mut().take();
        if let Some(mut callback) = taken {
            callback(fired);
            ctx.callback.borrow_mut().get_or_insert(callback);
        }
    })
}

fn event_mask(interest: Interest) -> c_int {
    let mut mask = 0;
    if interest.read {
        mask |= SPICE_WATCH_EVENT_READ;
    }
    if interest.write {
        mask |= SPICE_WATCH_EVENT_WRITE;
    }
    mask
}

impl Core for CCore {
    fn add_timer(&self, callback: TimerCallback) -> TimerId {
        let id = self.fresh();
        let ctx = Rc::into_raw(Rc::new(TimerCtx {
            callback: RefCell::new(Some(callback)),
        }));
        let c_timer = match self.iface().timer_add {
            // SAFETY: a host callback of the interface, called on the host's loop thread.
            Some(add) => unsafe { add(timer_trampoline, ctx as *mut c_void) },
            None => std::ptr::null_mut(),
        };
        if c_timer.is_null() {
            tracing::error!("host core refused a timer");
        }
        self.timers.borrow_mut().insert(id, TimerEntry { c_timer, ctx });
        TimerId(id)
    }

    fn start_timer(&self, timer: TimerId, after: Duration) {
        let Some(c_timer) = self.timers.borrow().get(&timer.0).map(|t| t.c_timer) else {
            return;
        };
        if let (Some(start), false) = (self.iface().timer_start, c_timer.is_null()) {
            let ms = u32::try_from(after.as_millis()).unwrap_or(u32::MAX);
            // SAFETY: `c_timer` was returned by the host's timer_add and not removed.
            unsafe { start(c_timer, ms) };
        }
    }

    fn cancel_timer(&self, timer: TimerId) {
        let Some(c_timer) = self.timers.borrow().get(&timer.0).map(|t| t.c_timer) else {
            return;
        };
        if let (Some(cancel), false) = (self.iface().timer_cancel, c_timer.is_null()) {
            // SAFETY: `c_timer` is live, as above.
            unsafe { cancel(c_timer) };
        }
    }

    fn remove_timer(&self, timer: TimerId) {
        let Some(entry) = self.timers.borrow_mut().remove(&timer.0) else {
            return;
        };
        if let (Some(remove), false) = (self.iface().timer_remove, entry.c_timer.is_null()) {
            // SAFETY: `c_timer` is live until this call, after which the host never calls it.
            unsafe { remove(entry.c_timer) };
        }
        // SAFETY: drops the reference handed to the host in `add_timer`.
        drop(unsafe { Rc::from_raw(entry.ctx) });
    }

    fn add_watch(&self, fd: RawFd, interest: Interest, callback: WatchCallback) -> WatchId {
        let id = self.fresh();
        let ctx = Rc::into_raw(Rc::new(WatchCtx {
            callback: RefCell::new(Some(callback)),
        }));
        let c_watch = match self.iface().watch_add {
            // SAFETY: a host callback of the interface, on the host's loop thread.
            Some(add) => unsafe { add(fd, event_mask(interest), watch_trampoline, ctx as *mut c_void) },
            None => std::ptr::null_mut(),
        };
        if c_watch.is_null() {
            tracing::error!(fd, "host core refused a watch");
        }
        self.watches.borrow_mut().insert(id, WatchEntry { c_watch, ctx });
        WatchId(id)
    }

    fn update_watch(&self, watch: WatchId, interest: Interest) {
        let Some(c_watch) = self.watches.borrow().get(&watch.0).map(|w| w.c_watch) else {
            return;
        };
        if let (Some(update), false) = (self.iface().watch_update_mask, c_watch.is_null()) {
            // SAFETY: `c_watch` was returned by the host's watch_add and not removed.
            unsafe { update(c_watch, event_mask(interest)) };
        }
    }

    fn remove_watch(&self, watch: WatchId) {
        let Some(entry) = self.watches.borrow_mut().remove(&watch.0) else {
            return;
        };
        if let (Some(remove), false) = (self.iface().watch_remove, entry.c_watch.is_null()) {
            // SAFETY: `c_watch` is live until this call.
            unsafe { remove(entry.c_watch) };
        }
        // SAFETY: drops the reference handed to the host in `add_watch`.
        drop(unsafe { Rc::from_raw(entry.ctx) });
    }

    fn channel_event(&self, event: ChannelEvent, info: &ChannelInfo) {
        // `channel_event` exists from core interface 1.3 on.
        let Some(notify) = self.iface().channel_event.filter(|_| self.minor >= 3) else {
            return;
        };
        let code = match event {
            ChannelEvent::Connected => SPICE_CHANNEL_EVENT_CONNECTED,
            ChannelEvent::Initialized => SPICE_CHANNEL_EVENT_INITIALIZED,
            ChannelEvent::Disconnected => SPICE_CHANNEL_EVENT_DISCONNECTED,
        };
        let ptr: *mut SpiceChannelEventInfo = {
            let mut infos = self.infos.borrow_mut();
            let boxed = infos
                .entry(info.link_id)
                .or_insert_with(|| Box::new(fill_info(info)));
            // The session id is only known once the channel is linked.
            boxed.connection_id = info.connection_id as c_int;
            &mut **boxed
        };
        // SAFETY: `ptr` points into a Box kept in `infos` until after the DISCONNECTED call.
        unsafe { notify(code, ptr) };
        if event == ChannelEvent::Disconnected {
            self.infos.borrow_mut().remove(&info.link_id);
        }
    }
}

impl Drop for CCore {
    fn drop(&mut self) {
        let timers: Vec<u64> = self.timers.borrow().keys().copied().collect();
        for id in timers {
            self.remove_timer(TimerId(id));
        }
        let watches: Vec<u64> = self.watches.borrow().keys().copied().collect();
        for id in watches {
            self.remove_watch(WatchId(id));
        }
    }
}

/// Builds the C event info, with IPv4/IPv6 addresses in the ADDR_EXT fields
/// (and in the legacy ones when they fit).
fn fill_info(info: &ChannelInfo) -> SpiceChannelEventInfo {
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut c: SpiceChannelEventInfo = unsafe { std::mem::zeroed() };
    c.connection_id = info.connection_id as c_int;
    c.type_ = c_int::from(info.channel_type);
    c.id = c_int::from(info.channel_id);
    c.flags = SPICE_CHANNEL_EVENT_FLAG_ADDR_EXT;
    if info.tls {
        c.flags |= SPICE_CHANNEL_EVENT_FLAG_TLS;
    }
    if let Some(local) = info.local {
        c.llen_ext = write_sockaddr(local, &mut c.laddr_ext);
        c.llen = legacy_copy(&c.laddr_ext, c.llen_ext, &mut c.laddr);
    }
    if let Some(peer) = info.peer {
        c.plen_ext = write_sockaddr(peer, &mut c.paddr_ext);
        c.plen = legacy_copy(&c.paddr_ext, c.plen_ext, &mut c.paddr);
    }
    c
}

fn write_sockaddr(addr: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in.
            unsafe { std::ptr::write(out as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in6.
            unsafe { std::ptr::write(out as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Copies an address into the legacy `sockaddr` field if it fits (IPv4 does).
fn legacy_copy(
    from: &libc::sockaddr_storage,
    len: libc::socklen_t,
    to: &mut libc::sockaddr,
) -> libc::socklen_t {
    let n = len as usize;
    if n > std::mem::size_of::<libc::sockaddr>() {
        return 0;
    }
    // SAFETY: both are plain bytes; `n` fits in the destination and the source is larger.
    unsafe { std::ptr::copy_nonoverlapping(from as *const _ as *const u8, to as *mut _ as *mut u8, n) };
    len
}
