//! The QXL interface (spice-qxl.h) and the QXL device structs it passes
//! (qxl_dev.h, packed little-endian).

use std::ffi::{c_int, c_void};

use super::{SpiceBaseInstance, SpiceBaseInterface};

/// `SPICE_CAPABILITIES_SIZE`: `sizeof(QXLRom.client_capabilities)`.
pub const SPICE_CAPABILITIES_SIZE: usize = 58;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct QXLDevInitInfo {
    pub num_memslots_groups: u32,
    pub num_memslots: u32,
    pub memslot_gen_bits: u8,
    pub memslot_id_bits: u8,
    pub qxl_ram_size: u32,
    pub internal_groupslot_id: u8,
    pub n_surfaces: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct QXLDevMemSlot {
    pub slot_group_id: u32,
    pub slot_id: u32,
    pub generation: u32,
    pub virt_start: usize,
    pub virt_end: usize,
    pub addr_delta: u64,
    pub qxl_ram_size: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct QXLDevSurfaceCreate {
    pub width: u32,
    pub height: u32,
    pub stride: i32,
    pub format: u32,
    pub position: u32,
    pub mouse_mode: u32,
    pub flags: u32,
    pub type_: u32,
    pub mem: u64,
    pub group_id: u32,
}

#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default)]
pub struct QXLCommand {
    pub data: u64,
    pub type_: u32,
    pub padding: u32,
}

#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default)]
pub struct QXLCommandExt {
    pub cmd: QXLCommand,
    pub group_id: u32,
    pub flags: u32,
}

#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default)]
pub struct QXLRect {
    pub top: i32,
    pub left: i32,
    pub bottom: i32,
    pub right: i32,
}

/// `QXLReleaseInfo`: opaque to the server, only its address is passed back.
#[repr(C)]
pub struct QXLReleaseInfo {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct QXLReleaseInfoExt {
    pub info: *mut QXLReleaseInfo,
    pub group_id: u32,
}

#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default)]
pub struct VDAgentMonConfig {
    pub height: u32,
    pub width: u32,
    pub depth: u32,
    pub x: i32,
    pub y: i32,
}

#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default)]
pub struct VDAgentMonitorsConfig {
    pub num_of_monitors: u32,
    pub flags: u32,
    pub monitors: [VDAgentMonConfig; 0],
}

/// Opaque `QXLWorker` of the deprecated `attache_worker` callback.
#[repr(C)]
pub struct QXLWorker {
    _private: [u8; 0],
}

/// `attached_worker(qin)` and the deprecated `attache_worker(qin, worker)` share a slot.
#[repr(C)]
#[derive(Clone, Copy)]
pub union QXLAttachedWorker {
    pub attached_worker: Option<unsafe extern "C" fn(qin: *mut QXLInstance)>,
    pub attache_worker: Option<unsafe extern "C" fn(qin: *mut QXLInstance, worker: *mut QXLWorker)>,
}

#[repr(C)]
pub struct QXLInterface {
    pub base: SpiceBaseInterface,
    pub attached: QXLAttachedWorker,
    pub set_compression_level: Option<unsafe extern "C" fn(qin: *mut QXLInstance, level: c_int)>,
    pub set_mm_time: Option<unsafe extern "C" fn(qin: *mut QXLInstance, mm_time: u32)>,
    pub get_init_info: Option<unsafe extern "C" fn(qin: *mut QXLInstance, info: *mut QXLDevInitInfo)>,
    pub get_command: Option<unsafe extern "C" fn(qin: *mut QXLInstance, cmd: *mut QXLCommandExt) -> c_int>,
    pub req_cmd_notification: Option<unsafe extern "C" fn(qin: *mut QXLInstance) -> c_int>,
    pub release_resource:
        Option<unsafe extern "C" fn(qin: *mut QXLInstance, release_info: QXLReleaseInfoExt)>,
    pub get_cursor_command:
        Option<unsafe extern "C" fn(qin: *mut QXLInstance, cmd: *mut QXLCommandExt) -> c_int>,
    pub req_cursor_notification: Option<unsafe extern "C" fn(qin: *mut QXLInstance) -> c_int>,
    pub notify_update: Option<unsafe extern "C" fn(qin: *mut QXLInstance, update_id: u32)>,
    pub flush_resources: Option<unsafe extern "C" fn(qin: *mut QXLInstance) -> c_int>,
    pub async_complete: Option<unsafe extern "C" fn(qin: *mut QXLInstance, cookie: u64)>,
    pub update_area_complete: Option<
        unsafe extern "C" fn(
            qin: *mut QXLInstance,
            surface_id: u32,
            updated_rects: *mut QXLRect,
            num_updated_rects: u32,
        ),
    >,
    pub set_client_capabilities:
        Option<unsafe extern "C" fn(qin: *mut QXLInstance, client_present: u8, caps: *mut u8)>,
    pub client_monitors_config: Option<
        unsafe extern "C" fn(qin: *mut QXLInstance, monitors_config: *mut VDAgentMonitorsConfig) -> c_int,
    >,
}

#[repr(C)]
pub struct QXLInstance {
    pub base: SpiceBaseInstance,
    pub id: c_int,
    pub st: *mut c_void,
}
