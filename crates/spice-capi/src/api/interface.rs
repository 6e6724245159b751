//! `spice_server_add_interface` / `spice_server_remove_interface`.

use std::ffi::c_int;

use super::server_ref;
use crate::ffi::{
    SpiceBaseInstance, SpiceBaseInterface, SpiceKbdInstance, SpiceMouseInstance, SpiceTabletInstance,
};
use crate::guard::{c_str, guard};
use crate::input::{CKeyboard, CMouse, CTablet};
use crate::instance::{InstanceState, Kind, Liveness};
use crate::server::CServer;

/// `(type string, major, minor)` this server implements, with the kind it maps to.
const INTERFACES: [(&str, u32, u32, Kind); 8] = [
    ("keyboard", 1, 1, Kind::Keyboard),
    ("mouse", 1, 1, Kind::Mouse),
    ("tablet", 1, 1, Kind::Tablet),
    ("qxl", 3, 3, Kind::Qxl),
    ("playback", 1, 3, Kind::Playback),
    ("record", 2, 3, Kind::Record),
    ("char_device", 1, 3, Kind::CharDevice),
    ("migration", 1, 1, Kind::Migration),
];

/// The `SpiceBaseInterface` of an instance.
///
/// # Safety
/// `sin` points to a live instance whose `sif` is set.
unsafe fn interface_of<'a>(sin: *mut SpiceBaseInstance) -> Option<&'a SpiceBaseInterface> {
    // SAFETY: per the caller's contract.
    unsafe { (*sin).sif.as_ref() }
}

/// The `st` field of an instance: every instance struct puts it right after
/// `base`, except QXL (after `id`) and char devices (after `subtype`).
///
/// # Safety
/// `sin` points to a live instance of `kind`.
pub(crate) unsafe fn st_slot(sin: *mut SpiceBaseInstance, kind: Kind) -> *mut *mut std::ffi::c_void {
    // SAFETY: the casts follow the instance layouts checked by tests/layout.rs.
    unsafe {
        match kind {
            Kind::Qxl => &mut (*(sin as *mut crate::ffi::QXLInstance)).st,
            Kind::CharDevice => &mut (*(sin as *mut crate::ffi::SpiceCharDeviceInstance)).st,
            _ => &mut (*(sin as *mut SpiceKbdInstance)).st,
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_add_interface(s: *mut CServer, sin: *mut SpiceBaseInstance) -> c_int {
    guard("spice_server_add_interface", -1, || {
        // SAFETY: `s` comes from spice_server_new.
        let Some(server) = (unsafe { server_ref(s) }) else {
            return -1;
        };
        if sin.is_null() {
            return -1;
        }
        // SAFETY: the host passes a live instance with its interface set.
        let Some(iface) = (unsafe { interface_of(sin) }) else {
            tracing::error!("interface instance without an interface");
            return -1;
        };
        // SAFETY: the interface's type is a NUL-terminated string.
        let type_name = unsafe { c_str(iface.type_) }.unwrap_or_default();
        let Some(&(_, major, minor, kind)) = INTERFACES.iter().find(|i| i.0 == type_name) else {
            tracing::error!(interface = type_name, "unsupported interface");
            return -1;
        };
        if iface.major_version != major || iface.minor_version > minor {
            tracing::warn!(
                interface = type_name,
                major = iface.major_version,
                minor = iface.minor_version,
                "unsupported interface version"
            );
            return -1;
        }
        let alive = Liveness::new();
        let extra = match kind {
            Kind::Keyboard => {
                let kbd = CKeyboard::new(sin as *mut SpiceKbdInstance, alive.clone());
                server.handle.set_keyboard(Some(Box::new(kbd)));
                None
            }
            Kind::Mouse => {
                let mouse = CMouse::new(sin as *mut SpiceMouseInstance, alive.clone());
                server.handle.set_mouse(Some(Box::new(mouse)));
                None
            }
            Kind::Tablet => {
                let tablet = CTablet::new(sin as *mut SpiceTabletInstance, alive.clone());
                server.handle.set_tablet(Some(Box::new(tablet)));
                None
            }
            Kind::Qxl => match crate::qxl::attach(server, sin as *mut crate::ffi::QXLInstance) {
                Ok(extra) => Some(extra),
                Err(e) => {
                    // A warning, as the C server's "invalid QXL ID" and
                    // "QXL ID already allocated".
                    tracing::warn!(error = %e, "cannot add QXL instance");
                    return -1;
                }
            },
            Kind::Playback => {
                let handle = spice_server::PlaybackHandle::new();
                server.handle.set_playback(Some(handle.clone()));
                Some(Box::new(crate::audio::Playback::new(handle)) as Box<dyn std::any::Any + Send + Sync>)
            }
            Kind::Record => {
                let handle = spice_server::RecordHandle::new();
                server.handle.set_record(Some(handle.clone()));
                Some(Box::new(crate::audio::Record { handle }) as Box<dyn std::any::Any + Send + Sync>)
            }
            Kind::CharDevice => {
                let cin = sin as *mut crate::ffi::SpiceCharDeviceInstance;
                // SAFETY: a live char device instance; `subtype` is NULL or a NUL-terminated string.
                let subtype = unsafe { c_str((*cin).subtype) }.unwrap_or_default();
                let mut vmc = None;
                match subtype {
                    "vdagent" => {
                        // One agent port per server, as in the C server,
                        // which warns and still returns 0, leaving the
                        // instance unattached (its `st` NULL).
                        if server.agent_port.swap(true, std::sync::atomic::Ordering::AcqRel) {
                            tracing::warn!("vdagent already attached");
                            return 0;
                        }
                        let device = crate::chardev::CCharDevice::new(cin, alive.clone());
                        // state(1) before returning, as the C server's attach_to_red_agent.
                        set_agent(server, Some(Box::new(device)));
                    }
                    other => match crate::chardev::vmc_kind(other, {
                        // SAFETY: `portname` is NULL or a NUL-terminated string (QEMU sets it for ports).
                        unsafe { c_str((*cin).portname) }
                    }) {
                        Some(kind) => {
                            let device = crate::chardev::CCharDevice::new(cin, alive.clone());
                            vmc = Some(server.handle.add_vmc_device(kind, Box::new(device)));
                        }
                        None => tracing::warn!(subtype = other, "char device accepted but not served"),
                    },
                }
                Some(Box::new(crate::chardev::CharDeviceState {
                    subtype: subtype.to_owned(),
                    vmc,
                }) as Box<dyn std::any::Any + Send + Sync>)
            }
            Kind::Migration => {
                if server
                    .migration_interface
                    .swap(true, std::sync::atomic::Ordering::AcqRel)
                {
                    tracing::warn!("already have migration");
                    return -1;
                }
                let host = crate::migration::CMigrationHost::new(
                    sin as *mut crate::ffi::SpiceMigrateInstance,
                    alive.clone(),
                );
                server.handle.set_migration_host(Some(Box::new(host)));
                None
            }
        };
        let state = Box::new(InstanceState {
            server,
            kind,
            alive,
            extra,
        });
        // SAFETY: `sin` is a live instance of `kind`; the C server owns `st` likewise.
        unsafe { *st_slot(sin, kind) = Box::into_raw(state).cast() };
        if kind == Kind::Qxl {
            crate::qxl::attached(server, sin as *mut crate::ffi::QXLInstance);
        }
        tracing::debug!(interface = type_name, "interface added");
        0
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_remove_interface(sin: *mut SpiceBaseInstance) -> c_int {
    guard("spice_server_remove_interface", -1, || {
        if sin.is_null() {
            tracing::error!("spice_server_remove_interface: assertion 'sin != nullptr' failed");
            return -1;
        }
        // SAFETY: the host passes a live instance with its interface set.
        let Some(iface) = (unsafe { interface_of(sin) }) else {
            return -1;
        };
        // SAFETY: NUL-terminated type string.
        let type_name = unsafe { c_str(iface.type_) }.unwrap_or_default();
        let Some(&(_, _, _, kind)) = INTERFACES.iter().find(|i| i.0 == type_name) else {
            return -1;
        };
        // SAFETY: live instance of `kind`.
        let slot = unsafe { st_slot(sin, kind) };
        // SAFETY: reading the instance's own field.
        let st = unsafe { *slot } as *mut InstanceState;
        if st.is_null() {
            // As the C server answers each kind: a critical (GLib's failed
            // precondition) where it dereferences `st`, nothing to do for
            // audio, a warning for the rest.
            let field = match kind {
                Kind::Tablet => "tablet",
                Kind::CharDevice => "char_device",
                Kind::Qxl => "qxl",
                Kind::Playback | Kind::Record => return 0,
                Kind::Keyboard | Kind::Mouse | Kind::Migration => {
                    tracing::warn!(
                        interface = type_name,
                        "removing an interface that was never added"
                    );
                    return -1;
                }
            };
            tracing::error!("spice_server_remove_interface: assertion '{field}->st != nullptr' failed");
            return -1;
        }
        // SAFETY: `st` came from Box::into_raw in spice_server_add_interface, freed once here.
        let state = unsafe { Box::from_raw(st) };
        // SAFETY: clearing the instance's own field.
        unsafe { *slot = std::ptr::null_mut() };
        // SAFETY: the server outlives its interfaces (the host removes them before destroy).
        let server = unsafe { state.server.as_ref() };
        let char_device = state
            .extra
            .as_ref()
            .and_then(|e| e.downcast_ref::<crate::chardev::CharDeviceState>());
        if let (Some(id), Some(server)) = (char_device.and_then(|c| c.vmc), server) {
            // Its client's channel closes inside this call, so the device
            // hears state(0) while the instance is live, as from the C server.
            crate::chardev::now_or_queued(
                server,
                id,
                |srv, id| srv.remove_vmc_device_now(id),
                |handle, id| handle.remove_vmc_device(id),
            );
        }
        let is_agent = kind == Kind::CharDevice && char_device.is_some_and(|c| c.is_agent());
        if let (true, Some(server)) = (is_agent, server) {
            // Detached while the instance is still live, so it hears state(0)
            // inside this call, as from the C server's reds_reset_vdp.
            set_agent(server, None);
            server
                .agent_port
                .store(false, std::sync::atomic::Ordering::Release);
        }
        state.alive.kill();
        let Some(server) = server else {
            return -1;
        };
        match kind {
            Kind::Keyboard => server.handle.set_keyboard(None),
            Kind::Mouse => server.handle.set_mouse(None),
            Kind::Tablet => server.handle.set_tablet(None),
            Kind::Qxl => crate::qxl::detach(server, state.extra),
            Kind::Playback => server.handle.set_playback(None),
            Kind::Record => server.handle.set_record(None),
            // The agent port was detached above.
            Kind::Migration => {
                server.handle.set_migration_host(None);
                server
                    .migration_interface
                    .store(false, std::sync::atomic::Ordering::Release)
            }
            _ => {}
        }
        0
    })
}

/// Attaches or detaches the guest agent's port: at once when called on the
/// main thread with the server running and free (the device hears `state()`
/// before the host's call returns, as with the C server), queued otherwise.
fn set_agent(server: &CServer, agent: Option<Box<dyn spice_server::CharDevice + Send>>) {
    crate::chardev::now_or_queued(
        server,
        agent,
        |srv, a| srv.set_agent_now(a),
        |h, a| h.set_agent(a),
    );
}

/// The instance state behind `sin->st`, if the instance was added.
///
/// # Safety
/// `sin` is NULL or a live instance of `kind`.
pub(crate) unsafe fn instance_state<'a>(
    sin: *mut SpiceBaseInstance,
    kind: Kind,
) -> Option<&'a InstanceState> {
    if sin.is_null() {
        return None;
    }
    // SAFETY: live instance of `kind`; `st` is NULL or our InstanceState.
    unsafe { (*st_slot(sin, kind) as *const InstanceState).as_ref() }.filter(|s| s.kind == kind)
}
