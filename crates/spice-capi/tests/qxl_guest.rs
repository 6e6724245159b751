//! A hostile guest behind the QXL interface, through the real C ABI.
//!
//! The test plays QEMU's qxl device in native mode: a guest memslot covers one
//! buffer, and the command ring serves valid and malicious commands built with
//! `spice_qxl::testkit`. Whatever the guest sends, the server must not crash,
//! must keep serving, and must hand every command whose struct it could reach
//! back through `release_resource` exactly once.

use std::collections::VecDeque;
use std::ffi::{c_int, c_void};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use spice_capi::ffi::*;
use spice_qxl::testkit::{self, Arena, BitmapSpec, DrawableSpec};
use spice_qxl::{MemSlotConfig, MemSlots};

extern "C" {
    fn spice_server_new() -> *mut c_void;
    fn spice_server_init(s: *mut c_void, core: *mut SpiceCoreInterface) -> c_int;
    fn spice_server_set_noauth(s: *mut c_void) -> c_int;
    fn spice_server_add_interface(s: *mut c_void, sin: *mut SpiceBaseInstance) -> c_int;
    fn spice_server_remove_interface(sin: *mut SpiceBaseInstance) -> c_int;
    fn spice_server_destroy(s: *mut c_void);
    fn spice_server_vm_start(s: *mut c_void);
    fn spice_server_vm_stop(s: *mut c_void);
    fn spice_qxl_add_memslot(qin: *mut QXLInstance, slot: *mut QXLDevMemSlot);
    fn spice_qxl_create_primary_surface(qin: *mut QXLInstance, id: u32, surface: *mut QXLDevSurfaceCreate);
    fn spice_qxl_create_primary_surface_async(
        qin: *mut QXLInstance,
        id: u32,
        surface: *mut QXLDevSurfaceCreate,
        cookie: u64,
    );
    fn spice_qxl_wakeup(qin: *mut QXLInstance);
    fn spice_qxl_oom(qin: *mut QXLInstance);
    fn spice_qxl_update_area(
        qin: *mut QXLInstance,
        surface_id: u32,
        area: *mut QXLRect,
        dirty: *mut QXLRect,
        n: u32,
        clear: u32,
    );
    fn spice_qxl_monitors_config_async(qin: *mut QXLInstance, phys: u64, group: c_int, cookie: u64);
    fn spice_qxl_destroy_surfaces(qin: *mut QXLInstance);
}

/// What the fake device saw, shared with the worker thread's callbacks.
#[derive(Default)]
struct Device {
    commands: VecDeque<QXLCommandExt>,
    cursor: VecDeque<QXLCommandExt>,
    released: Vec<u64>,
    /// What had been released when each `flush_resources` came.
    flushed: Vec<Vec<u64>>,
    completed: Vec<u64>,
    callback_threads: Vec<std::thread::ThreadId>,
}

static DEVICE: Mutex<Option<Device>> = Mutex::new(None);

fn device<R>(f: impl FnOnce(&mut Device) -> R) -> R {
    f(DEVICE.lock().unwrap().get_or_insert_with(Device::default))
}

fn note_thread() {
    device(|d| d.callback_threads.push(std::thread::current().id()));
}

unsafe extern "C" fn get_init_info(_: *mut QXLInstance, info: *mut QXLDevInitInfo) {
    // SAFETY: the server passes its struct to fill.
    unsafe {
        *info = QXLDevInitInfo {
            num_memslots_groups: 2,
            num_memslots: 8,
            memslot_gen_bits: 8,
            memslot_id_bits: 8,
            qxl_ram_size: 0,
            internal_groupslot_id: 0,
            n_surfaces: 64,
        }
    };
}

unsafe extern "C" fn get_command(_: *mut QXLInstance, cmd: *mut QXLCommandExt) -> c_int {
    note_thread();
    match device(|d| d.commands.pop_front()) {
        Some(c) => {
            // SAFETY: the server passes its struct to fill.
            unsafe { *cmd = c };
            1
        }
        None => 0,
    }
}

unsafe extern "C" fn req_cmd_notification(_: *mut QXLInstance) -> c_int {
    i32::from(device(|d| d.commands.is_empty()))
}

unsafe extern "C" fn get_cursor_command(_: *mut QXLInstance, cmd: *mut QXLCommandExt) -> c_int {
    note_thread();
    match device(|d| d.cursor.pop_front()) {
        Some(c) => {
            // SAFETY: the server passes its struct to fill.
            unsafe { *cmd = c };
            1
        }
        None => 0,
    }
}

unsafe extern "C" fn req_cursor_notification(_: *mut QXLInstance) -> c_int {
    i32::from(device(|d| d.cursor.is_empty()))
}

unsafe extern "C" fn release_resource(_: *mut QXLInstance, info: QXLReleaseInfoExt) {
    note_thread();
    device(|d| d.released.push(info.info as u64));
}

unsafe extern "C" fn flush_resources(_: *mut QXLInstance) -> c_int {
    note_thread();
    device(|d| {
        let released = d.released.clone();
        d.flushed.push(released);
    });
    0
}

unsafe extern "C" fn async_complete(_: *mut QXLInstance, cookie: u64) {
    device(|d| d.completed.push(cookie));
}

unsafe extern "C" fn timer_add(_: SpiceTimerFunc, _: *mut c_void) -> *mut SpiceTimer {
    std::ptr::NonNull::dangling().as_ptr()
}
unsafe extern "C" fn timer_op(_: *mut SpiceTimer) {}
unsafe extern "C" fn timer_start(_: *mut SpiceTimer, _: u32) {}
unsafe extern "C" fn watch_add(_: c_int, _: c_int, _: SpiceWatchFunc, _: *mut c_void) -> *mut SpiceWatch {
    std::ptr::NonNull::dangling().as_ptr()
}
unsafe extern "C" fn watch_update(_: *mut SpiceWatch, _: c_int) {}
unsafe extern "C" fn watch_remove(_: *mut SpiceWatch) {}

/// The guest's memory: one real buffer behind memslot group 1, slot 1.
const GUEST_PHYS: u64 = 0x1000_0000;
const GENERATION: u32 = 5;
const SIZE: usize = 1 << 20;

struct Guest {
    buffer: Box<[u8]>,
    slots: MemSlots,
}

impl Guest {
    fn base(&self) -> u64 {
        self.buffer.as_ptr() as u64
    }

    /// QXLPHYSICAL of a guest-physical address in our slot.
    fn phys(&self, guest_addr: u64) -> u64 {
        self.slots.physical(1, GENERATION, guest_addr)
    }

    /// Host address the server will release for a command at `guest_addr`.
    fn host(&self, guest_addr: u64) -> u64 {
        self.base() + (guest_addr - GUEST_PHYS)
    }

    fn load(&mut self, arena: &Arena) {
        self.buffer.copy_from_slice(arena.memory().as_bytes());
    }
}

fn draw_ext(guest: &Guest, drawable_at: u64) -> QXLCommandExt {
    command_ext(guest, drawable_at, 1) // QXL_CMD_DRAW
}

fn surface_ext(guest: &Guest, command_at: u64) -> QXLCommandExt {
    command_ext(guest, command_at, 5) // QXL_CMD_SURFACE
}

fn command_ext(guest: &Guest, at: u64, type_: u32) -> QXLCommandExt {
    QXLCommandExt {
        cmd: QXLCommand {
            data: guest.phys(at),
            type_,
            padding: 0,
        },
        group_id: 1,
        flags: 0,
    }
}

/// Runs `commands` through the worker and returns what it released, in order.
fn run_commands(qin: &mut QXLInstance, commands: &[QXLCommandExt]) -> Vec<u64> {
    device(|d| {
        d.released.clear();
        d.commands.extend(commands.iter().copied());
    });
    // SAFETY: a live instance, from the host's side.
    unsafe { spice_qxl_wakeup(qin) };
    assert!(
        wait_for(|| device(|d| d.commands.is_empty())),
        "worker drained the ring"
    );
    let mut area = QXLRect::default();
    // SAFETY: as above; update_area returns once the commands are processed.
    unsafe { spice_qxl_update_area(qin, 0, &mut area, std::ptr::null_mut(), 0, 0) };
    device(|d| d.released.clone())
}

fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// The library logs every command it rejects as a warning, through `g_log`
/// straight to stderr. This test sends them on purpose, so a subscriber of
/// its own, installed before the library's (which then stands aside), sends
/// them through the harness's captured output: shown only if the test fails.
fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SPICE_RS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

#[test]
fn hostile_commands_are_rejected_released_once_and_the_worker_goes_on() {
    capture_logs();
    let mut guest = Guest {
        buffer: vec![0u8; SIZE].into_boxed_slice(),
        slots: MemSlots::new(MemSlotConfig::QEMU).unwrap(),
    };
    let mut arena = Arena::new(GUEST_PHYS, SIZE);
    let p = |addr: u64| guest.slots.physical(1, GENERATION, addr);

    // A valid QEMU-style DRAW_COPY of a 4x2 bitmap.
    let pixels = arena.put(&[0x55; 4 * 2 * 4]);
    let image = arena.put(&testkit::bitmap_image(&BitmapSpec::qemu(4, 2, p(pixels))));
    let copy = |img: u64| testkit::copy_op(img, testkit::rect(0, 0, 4, 2), 8, 0, 0);
    let valid = arena.put(&testkit::drawable(&DrawableSpec::qemu_copy(
        testkit::rect(0, 0, 4, 2),
        copy(p(image)),
    )));

    // Nested bitmap pointer outside every memslot.
    let outside = GUEST_PHYS + SIZE as u64 + 4096;
    let bad_image = arena.put(&testkit::drawable(&DrawableSpec::qemu_copy(
        testkit::rect(0, 0, 4, 2),
        copy(p(outside)),
    )));
    // Wrong generation on the image pointer.
    let wrong_gen = arena.put(&testkit::drawable(&DrawableSpec::qemu_copy(
        testkit::rect(0, 0, 4, 2),
        copy(guest.slots.physical(1, GENERATION + 1, image)),
    )));
    // Slot index equal to the slot count (the CVE-2019-3813 off-by-one).
    let slot_8 = arena.put(&testkit::drawable(&DrawableSpec::qemu_copy(
        testkit::rect(0, 0, 4, 2),
        copy(guest.slots.physical(8, GENERATION, image)),
    )));
    // A chunked bitmap whose chunk list loops.
    let chunk_a = arena.reserve(64);
    let chunk_b = arena.put(&testkit::data_chunk(p(chunk_a), &[0; 16]));
    arena
        .memory_mut()
        .write(chunk_a, &testkit::data_chunk(p(chunk_b), &[0; 16]));
    let mut looping = BitmapSpec::qemu(4, 2, p(chunk_a));
    looping.flags = 0; // chunked, bottom-up
    let looping_image = arena.put(&testkit::bitmap_image(&looping));
    let loop_draw = arena.put(&testkit::drawable(&DrawableSpec::qemu_copy(
        testkit::rect(0, 0, 4, 2),
        copy(p(looping_image)),
    )));
    // A chunk claiming 4 GiB.
    let huge_chunk = arena.put(&testkit::data_chunk_sized(u32::MAX, 0, &[0; 16]));
    let mut oversized = BitmapSpec::qemu(4, 2, p(huge_chunk));
    oversized.flags = 0;
    let oversized_image = arena.put(&testkit::bitmap_image(&oversized));
    let oversized_draw = arena.put(&testkit::drawable(&DrawableSpec::qemu_copy(
        testkit::rect(0, 0, 4, 2),
        copy(p(oversized_image)),
    )));
    // A bitmap claiming more rows than its data holds (flat data at the slot's end).
    let tail = GUEST_PHYS + SIZE as u64 - 16;
    let too_big_image = arena.put(&testkit::bitmap_image(&BitmapSpec::qemu(64, 64, p(tail))));
    let too_big = arena.put(&testkit::drawable(&DrawableSpec::qemu_copy(
        testkit::rect(0, 0, 64, 64),
        testkit::copy_op(p(too_big_image), testkit::rect(0, 0, 64, 64), 8, 0, 0),
    )));
    // A drawable on a surface id past n_surfaces.
    let mut bad_surface_spec = DrawableSpec::qemu_copy(testkit::rect(0, 0, 4, 2), copy(p(image)));
    bad_surface_spec.surface_id = 1000;
    let bad_surface = arena.put(&testkit::drawable(&bad_surface_spec));
    // Monitors config with more heads than allowed.
    let monitors = arena.put(&testkit::monitors_config(3, 1, &[]));
    // Off-screen surfaces 3 and 4 (16x8, 32-bit), and 3's destroy command.
    let surface_mem = arena.reserve(2 * 16 * 8 * 4);
    let create_3 = arena.put(&testkit::surface_create(3, 32, 16, 8, 64, p(surface_mem)));
    let destroy_3 = arena.put(&testkit::surface_destroy(3));
    let create_4 = arena.put(&testkit::surface_create(4, 32, 16, 8, 64, p(surface_mem + 512)));
    // The primary surface in guest memory.
    let primary = arena.reserve(64 * 48 * 4);
    // Video: a 128x96 primary, and whole-screen copies of bitmaps of one
    // byte value each (large enough to be left waiting in the display).
    let (video_w, video_h) = (128u32, 96u32);
    let video_primary = arena.reserve((video_w * video_h * 4) as usize);
    let frames: Vec<u64> = (1..=5u8)
        .map(|value| {
            let pixels = arena.put(&vec![value * 0x11; (video_w * video_h * 4) as usize]);
            let image = arena.put(&testkit::bitmap_image(&BitmapSpec::qemu(
                video_w,
                video_h,
                p(pixels),
            )));
            arena.put(&testkit::drawable(&DrawableSpec::qemu_copy(
                testkit::rect(0, 0, video_w as i32, video_h as i32),
                testkit::copy_op(
                    p(image),
                    testkit::rect(0, 0, video_w as i32, video_h as i32),
                    8,
                    0,
                    0,
                ),
            )))
        })
        .collect();
    guest.load(&arena);

    // SAFETY: the test plays the host side of the C ABI with valid structs that
    // outlive the server.
    unsafe {
        let mut core = SpiceCoreInterface {
            base: SpiceBaseInterface {
                type_: c"core".as_ptr(),
                description: c"test core".as_ptr(),
                major_version: 1,
                minor_version: 3,
            },
            timer_add: Some(timer_add),
            timer_start: Some(timer_start),
            timer_cancel: Some(timer_op),
            timer_remove: Some(timer_op),
            watch_add: Some(watch_add),
            watch_update_mask: Some(watch_update),
            watch_remove: Some(watch_remove),
            channel_event: None,
        };
        let qif = QXLInterface {
            base: SpiceBaseInterface {
                type_: c"qxl".as_ptr(),
                description: c"hostile guest".as_ptr(),
                major_version: 3,
                minor_version: 3,
            },
            attached: QXLAttachedWorker {
                attached_worker: None,
            },
            set_compression_level: None,
            set_mm_time: None,
            get_init_info: Some(get_init_info),
            get_command: Some(get_command),
            req_cmd_notification: Some(req_cmd_notification),
            release_resource: Some(release_resource),
            get_cursor_command: Some(get_cursor_command),
            req_cursor_notification: Some(req_cursor_notification),
            notify_update: None,
            flush_resources: Some(flush_resources),
            async_complete: Some(async_complete),
            update_area_complete: None,
            set_client_capabilities: None,
            client_monitors_config: None,
        };
        let mut qin = QXLInstance {
            base: SpiceBaseInstance { sif: &qif.base },
            id: 0,
            st: std::ptr::null_mut(),
        };
        let s = spice_server_new();
        assert_eq!(spice_server_set_noauth(s), 0);
        assert_eq!(
            spice_server_init(s, &mut core),
            0,
            "init without a port: local-only server"
        );
        assert_eq!(spice_server_add_interface(s, &mut qin.base), 0);
        // As QEMU: the VM starts after its devices are added.
        spice_server_vm_start(s);
        let mut twin = QXLInstance {
            base: SpiceBaseInstance { sif: &qif.base },
            id: 0,
            st: std::ptr::null_mut(),
        };
        assert_eq!(
            spice_server_add_interface(s, &mut twin.base),
            -1,
            "a second QXL id 0 is refused"
        );
        let mut negative = QXLInstance {
            base: SpiceBaseInstance { sif: &qif.base },
            id: -1,
            st: std::ptr::null_mut(),
        };
        assert_eq!(
            spice_server_add_interface(s, &mut negative.base),
            -1,
            "a negative QXL id is refused"
        );

        let mut slot = QXLDevMemSlot {
            slot_group_id: 1,
            slot_id: 1,
            generation: GENERATION,
            virt_start: guest.base() as usize,
            virt_end: (guest.base() + SIZE as u64) as usize,
            addr_delta: guest.base().wrapping_sub(GUEST_PHYS),
            qxl_ram_size: SIZE as u32,
        };
        spice_qxl_add_memslot(&mut qin, &mut slot);
        let mut surface = QXLDevSurfaceCreate {
            width: 64,
            height: 48,
            stride: 64 * 4,
            format: 32,
            position: 0,
            mouse_mode: 1,
            flags: 0,
            type_: 0,
            mem: guest.phys(primary),
            group_id: 1,
        };
        spice_qxl_create_primary_surface(&mut qin, 0, &mut surface);

        // A command pointer outside every memslot cannot be released (the device
        // would dereference it); every other command is, once.
        let hostile = [
            bad_image,
            wrong_gen,
            slot_8,
            loop_draw,
            oversized_draw,
            too_big,
            bad_surface,
        ];
        let unreachable = draw_ext(&guest, outside);
        device(|d| {
            d.commands.push_back(draw_ext(&guest, valid));
            for &h in &hostile {
                d.commands.push_back(draw_ext(&guest, h));
            }
            d.commands.push_back(unreachable);
            d.commands.push_back(draw_ext(&guest, valid));
        });
        spice_qxl_wakeup(&mut qin);
        let mut area = QXLRect::default();
        spice_qxl_update_area(&mut qin, 0, &mut area, std::ptr::null_mut(), 0, 0);
        assert!(
            wait_for(|| device(|d| d.commands.is_empty())),
            "worker drained the ring"
        );

        let mut expected: Vec<u64> = std::iter::once(valid)
            .chain(hostile)
            .chain(std::iter::once(valid))
            .map(|a| guest.host(a))
            .collect();
        expected.sort_unstable();
        let mut released = device(|d| d.released.clone());
        released.sort_unstable();
        assert_eq!(released, expected, "each reachable command released exactly once");

        // A surface's create command comes back only with its destroy, just
        // before it, as from the C server (the Linux qxl driver reuses the
        // surface's id and the create's buffer once it is back); destroying
        // every surface gives back every create.
        let released = run_commands(
            &mut qin,
            &[surface_ext(&guest, create_3), surface_ext(&guest, create_4)],
        );
        assert_eq!(
            released,
            Vec::<u64>::new(),
            "creates held while their surfaces live"
        );
        let released = run_commands(
            &mut qin,
            &[draw_ext(&guest, valid), surface_ext(&guest, destroy_3)],
        );
        // (The draw may come back after them: a plain copy waits in the
        // display, holding its command, until the picture is read.)
        let (draws, surfaces): (Vec<u64>, Vec<u64>) = released.iter().partition(|&&r| r == guest.host(valid));
        assert_eq!(draws, [guest.host(valid)], "the draw is released once");
        assert_eq!(
            surfaces,
            [guest.host(create_3), guest.host(destroy_3)],
            "a destroy releases its create first"
        );
        device(|d| d.released.clear());
        spice_qxl_destroy_surfaces(&mut qin);
        assert_eq!(
            device(|d| d.released.clone()),
            [guest.host(create_4)],
            "destroy_surfaces releases the creates still held"
        );

        // Video: frames that come faster than anything reads the picture.
        // One that a newer one covers is given back at once, unread; the
        // newest waits in the display holding its command, and comes back
        // soon even if nothing reads the picture; whatever the host reads
        // then is the newest frame.
        let mut video_surface = QXLDevSurfaceCreate {
            width: video_w,
            height: video_h,
            stride: video_w as i32 * 4,
            mem: guest.phys(video_primary),
            ..surface
        };
        spice_qxl_create_primary_surface(&mut qin, 0, &mut video_surface);
        device(|d| {
            d.released.clear();
            d.commands
                .extend(frames[..3].iter().map(|&f| draw_ext(&guest, f)));
        });
        spice_qxl_wakeup(&mut qin);
        let host = |i: usize| guest.host(frames[i]);
        assert!(
            wait_for(|| device(|d| d.released.len() == 3)),
            "every frame released, the newest after a short wait"
        );
        assert_eq!(device(|d| d.released.clone()), [host(0), host(1), host(2)]);
        // (No area: the whole surface.)
        spice_qxl_update_area(&mut qin, 0, std::ptr::null_mut(), std::ptr::null_mut(), 0, 0);
        let primary_pixel = |guest: &Guest| guest.buffer[(video_primary - GUEST_PHYS) as usize];
        assert_eq!(primary_pixel(&guest), 0x33, "the host reads the newest frame");
        // vm_stop: the waiting frame is drawn and its command given back
        // before the device stops, as everything else.
        device(|d| {
            d.released.clear();
            d.commands
                .extend(frames[3..].iter().map(|&f| draw_ext(&guest, f)));
        });
        spice_qxl_wakeup(&mut qin);
        assert!(wait_for(|| device(|d| d.commands.is_empty())));
        spice_server_vm_stop(s);
        let mut released = device(|d| d.released.clone());
        released.sort_unstable();
        assert_eq!(released, [host(3), host(4)], "all given back by vm_stop");
        assert_eq!(
            primary_pixel(&guest),
            0x55,
            "vm_stop leaves the newest frame in the primary"
        );
        spice_server_vm_start(s);
        // The guest short of memory (QEMU's oom): a frame left waiting goes
        // back before the device is told to flush its releases, which QEMU
        // batches and hands the guest only on a flush.
        device(|d| {
            d.released.clear();
            d.commands.push_back(draw_ext(&guest, frames[3]));
        });
        spice_qxl_wakeup(&mut qin);
        assert!(wait_for(|| device(|d| d.commands.is_empty())));
        spice_qxl_oom(&mut qin);
        assert!(wait_for(|| device(|d| !d.flushed.is_empty())), "oom flushes");
        assert_eq!(
            device(|d| d.flushed.clone()),
            [vec![host(3)]],
            "the waiting frame released before the flush"
        );

        // Async calls complete through async_complete, also for a rejected monitors config.
        spice_qxl_monitors_config_async(&mut qin, guest.phys(monitors), 1, 77);
        spice_qxl_create_primary_surface_async(&mut qin, 0, &mut surface, 78);
        assert!(wait_for(|| device(
            |d| d.completed.contains(&77) && d.completed.contains(&78)
        )));

        // All ring and release callbacks came from one thread, not the test's.
        let threads = device(|d| d.callback_threads.clone());
        assert!(!threads.is_empty());
        assert!(threads.iter().all(|t| *t == threads[0]));
        assert_ne!(threads[0], std::thread::current().id());

        assert_eq!(spice_server_remove_interface(&mut qin.base), 0);
        spice_server_destroy(s);
    }
}
