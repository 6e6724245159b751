//! `spice-qxl.h`: the QXL device's calls into the server. Most are forwarded to
//! the instance's worker thread; the synchronous ones wait for it.

use std::ffi::{c_char, c_int};

use crate::ffi::{QXLCommandExt, QXLDevMemSlot, QXLDevSurfaceCreate, QXLInstance, QXLRect};
use crate::guard::{c_str, guard};
use crate::qxl::{with_device, Request};

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_wakeup(instance: *mut QXLInstance) {
    guard("spice_qxl_wakeup", (), || {
        with_device(instance, "spice_qxl_wakeup", |d| d.post(Request::Wakeup))
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_oom(instance: *mut QXLInstance) {
    guard("spice_qxl_oom", (), || {
        with_device(instance, "spice_qxl_oom", |d| d.post(Request::Oom))
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_start(instance: *mut QXLInstance) {
    guard("spice_qxl_start", (), || {
        with_device(instance, "spice_qxl_start", |d| {
            d.call(|reply| Request::SetRunning(true, reply))
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_stop(instance: *mut QXLInstance) {
    guard("spice_qxl_stop", (), || {
        with_device(instance, "spice_qxl_stop", |d| {
            d.call(|reply| Request::SetRunning(false, reply))
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_update_area(
    instance: *mut QXLInstance,
    surface_id: u32,
    area: *mut QXLRect,
    dirty_rects: *mut QXLRect,
    num_dirty_rects: u32,
    clear_dirty_region: u32,
) {
    guard("spice_qxl_update_area", (), || {
        let _ = clear_dirty_region;
        // SAFETY: NULL or the host's rect, copied before use.
        let area = unsafe { area.as_ref() }.copied();
        with_device(instance, "spice_qxl_update_area", |d| {
            d.call(|reply| Request::UpdateArea {
                surface_id,
                area,
                reply,
            })
        });
        // Everything is rendered as it arrives: nothing is left dirty.
        if !dirty_rects.is_null() {
            for i in 0..num_dirty_rects as usize {
                // SAFETY: the host passes an array of `num_dirty_rects` rects to fill.
                unsafe { dirty_rects.add(i).write_unaligned(QXLRect::default()) };
            }
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_add_memslot(instance: *mut QXLInstance, slot: *mut QXLDevMemSlot) {
    guard("spice_qxl_add_memslot", (), || {
        if slot.is_null() {
            return;
        }
        // SAFETY: the host passes a memslot description to copy.
        let slot = unsafe { slot.read() };
        with_device(instance, "spice_qxl_add_memslot", |d| {
            d.call(|reply| Request::AddMemslot(slot, reply.into()))
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_add_memslot_async(
    instance: *mut QXLInstance,
    slot: *mut QXLDevMemSlot,
    cookie: u64,
) {
    guard("spice_qxl_add_memslot_async", (), || {
        if slot.is_null() {
            return;
        }
        // SAFETY: the host passes a memslot description to copy.
        let slot = unsafe { slot.read() };
        with_device(instance, "spice_qxl_add_memslot_async", |d| {
            d.post(Request::AddMemslot(slot, cookie.into()))
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_del_memslot(instance: *mut QXLInstance, slot_group_id: u32, slot_id: u32) {
    guard("spice_qxl_del_memslot", (), || {
        with_device(instance, "spice_qxl_del_memslot", |d| {
            d.post(Request::DelMemslot(slot_group_id, slot_id))
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_reset_memslots(instance: *mut QXLInstance) {
    guard("spice_qxl_reset_memslots", (), || {
        with_device(instance, "spice_qxl_reset_memslots", |d| {
            d.post(Request::ResetMemslots)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_destroy_surfaces(instance: *mut QXLInstance) {
    guard("spice_qxl_destroy_surfaces", (), || {
        with_device(instance, "spice_qxl_destroy_surfaces", |d| {
            d.call(|reply| Request::DestroySurfaces(reply.into()))
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_destroy_surfaces_async(instance: *mut QXLInstance, cookie: u64) {
    guard("spice_qxl_destroy_surfaces_async", (), || {
        with_device(instance, "spice_qxl_destroy_surfaces_async", |d| {
            d.post(Request::DestroySurfaces(cookie.into()))
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_destroy_primary_surface(instance: *mut QXLInstance, surface_id: u32) {
    guard("spice_qxl_destroy_primary_surface", (), || {
        with_device(instance, "spice_qxl_destroy_primary_surface", |d| {
            d.call(|reply| Request::DestroyPrimary(surface_id, reply.into()))
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_destroy_primary_surface_async(
    instance: *mut QXLInstance,
    surface_id: u32,
    cookie: u64,
) {
    guard("spice_qxl_destroy_primary_surface_async", (), || {
        with_device(instance, "spice_qxl_destroy_primary_surface_async", |d| {
            d.post(Request::DestroyPrimary(surface_id, cookie.into()))
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_create_primary_surface(
    instance: *mut QXLInstance,
    surface_id: u32,
    surface: *mut QXLDevSurfaceCreate,
) {
    guard("spice_qxl_create_primary_surface", (), || {
        if surface.is_null() {
            return;
        }
        // SAFETY: the host passes a surface description to copy.
        let surface = unsafe { surface.read() };
        with_device(instance, "spice_qxl_create_primary_surface", |d| {
            d.call(|reply| Request::CreatePrimary(surface_id, surface, reply.into()))
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_create_primary_surface_async(
    instance: *mut QXLInstance,
    surface_id: u32,
    surface: *mut QXLDevSurfaceCreate,
    cookie: u64,
) {
    guard("spice_qxl_create_primary_surface_async", (), || {
        if surface.is_null() {
            return;
        }
        // SAFETY: the host passes a surface description to copy.
        let surface = unsafe { surface.read() };
        with_device(instance, "spice_qxl_create_primary_surface_async", |d| {
            d.post(Request::CreatePrimary(surface_id, surface, cookie.into()))
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_reset_image_cache(instance: *mut QXLInstance) {
    guard("spice_qxl_reset_image_cache", (), || {
        with_device(instance, "spice_qxl_reset_image_cache", |d| d.call(Request::Sync))
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_reset_cursor(instance: *mut QXLInstance) {
    guard("spice_qxl_reset_cursor", (), || {
        with_device(instance, "spice_qxl_reset_cursor", |d| {
            d.call(Request::ResetCursor)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_destroy_surface_wait(instance: *mut QXLInstance, surface_id: u32) {
    guard("spice_qxl_destroy_surface_wait", (), || {
        with_device(instance, "spice_qxl_destroy_surface_wait", |d| {
            d.call(|reply| Request::DestroySurface(surface_id, reply.into()))
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_destroy_surface_async(
    instance: *mut QXLInstance,
    surface_id: u32,
    cookie: u64,
) {
    guard("spice_qxl_destroy_surface_async", (), || {
        with_device(instance, "spice_qxl_destroy_surface_async", |d| {
            d.post(Request::DestroySurface(surface_id, cookie.into()))
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_loadvm_commands(
    instance: *mut QXLInstance,
    ext: *mut QXLCommandExt,
    count: u32,
) {
    guard("spice_qxl_loadvm_commands", (), || {
        let commands: Vec<QXLCommandExt> = if ext.is_null() {
            Vec::new()
        } else {
            // SAFETY: the host passes `count` commands to copy.
            (0..count as usize)
                .map(|i| unsafe { ext.add(i).read_unaligned() })
                .collect()
        };
        with_device(instance, "spice_qxl_loadvm_commands", |d| {
            d.call(|reply| Request::LoadvmCommands(commands, reply))
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_update_area_async(
    instance: *mut QXLInstance,
    surface_id: u32,
    qxl_area: *mut QXLRect,
    clear_dirty_region: u32,
    cookie: u64,
) {
    guard("spice_qxl_update_area_async", (), || {
        let _ = clear_dirty_region;
        // SAFETY: NULL or the host's rect, copied before use.
        let area = unsafe { qxl_area.as_ref() }.copied();
        with_device(instance, "spice_qxl_update_area_async", |d| {
            d.post(Request::UpdateAreaAsync {
                surface_id,
                area,
                cookie,
            })
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_flush_surfaces_async(instance: *mut QXLInstance, cookie: u64) {
    guard("spice_qxl_flush_surfaces_async", (), || {
        with_device(instance, "spice_qxl_flush_surfaces_async", |d| {
            d.post(Request::Flush(cookie.into()))
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_monitors_config_async(
    instance: *mut QXLInstance,
    monitors_config: u64,
    group_id: c_int,
    cookie: u64,
) {
    guard("spice_qxl_monitors_config_async", (), || {
        with_device(instance, "spice_qxl_monitors_config_async", |d| {
            d.post(Request::MonitorsConfig {
                phys: monitors_config,
                group: group_id as u32,
                cookie,
                max_monitors: d.max_monitors(),
            })
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_driver_unload(instance: *mut QXLInstance) {
    guard("spice_qxl_driver_unload", (), || {
        with_device(instance, "spice_qxl_driver_unload", |d| {
            d.post(Request::DriverUnload)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_set_max_monitors(
    instance: *mut QXLInstance,
    max_monitors: std::ffi::c_uint,
) {
    guard("spice_qxl_set_max_monitors", (), || {
        with_device(instance, "spice_qxl_set_max_monitors", |d| {
            d.set_max_monitors(max_monitors)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_gl_scanout(
    qxl: *mut QXLInstance,
    fd: c_int,
    width: u32,
    height: u32,
    stride: u32,
    format: u32,
    y_0_top: c_int,
) {
    guard("spice_qxl_gl_scanout", (), || {
        let _ = (qxl, width, height, stride, format, y_0_top);
        tracing::error!("GL scanout (gl=on) is not supported");
        if fd >= 0 {
            // The server owns the dmabuf fd it is given.
            // SAFETY: ownership of `fd` passes to us per spice.h.
            drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_gl_draw_async(
    qxl: *mut QXLInstance,
    x: u32,
    y: u32,
    w: u32,
    h: u32,
    cookie: u64,
) {
    guard("spice_qxl_gl_draw_async", (), || {
        let _ = (x, y, w, h);
        // With no scanout the C server completes at once, on the caller's thread.
        with_device(qxl, "spice_qxl_gl_draw_async", |d| d.complete_now(cookie))
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_qxl_set_device_info(
    instance: *mut QXLInstance,
    device_address: *const c_char,
    device_display_id_start: u32,
    device_display_id_count: u32,
) {
    guard("spice_qxl_set_device_info", (), || {
        // SAFETY: NULL or a NUL-terminated string.
        let address = unsafe { c_str(device_address) }.unwrap_or_default().to_owned();
        with_device(instance, "spice_qxl_set_device_info", |d| {
            d.set_device_info(address, device_display_id_start, device_display_id_count)
        })
    })
}
