//! Every `#[repr(C)]` mirror against the real `spice.h`: a C program compiled
//! with the installed headers (libspice-server-dev) prints sizes and offsets,
//! and they must equal ours.

use std::collections::HashMap;
use std::mem::{offset_of, size_of};
use std::process::Command;

use spice_capi::ffi::*;

/// Type name → fields checked, as (C expression, Rust offset).
macro_rules! layouts {
    ($( $ty:ident { $( $cfield:literal => $rfield:ident ),* $(,)? } )*) => {{
        let mut c = String::from("#include <spice.h>\n#include <stddef.h>\n#include <stdio.h>\nint main(void) {\n");
        let mut rust = HashMap::new();
        $(
            c.push_str(&format!("printf(\"{0} size %zu\\n\", sizeof({0}));\n", stringify!($ty)));
            rust.insert(format!("{} size", stringify!($ty)), size_of::<$ty>());
            $(
                c.push_str(&format!("printf(\"{0}.{1} %zu\\n\", offsetof({0}, {1}));\n", stringify!($ty), $cfield));
                rust.insert(format!("{}.{}", stringify!($ty), $cfield), offset_of!($ty, $rfield));
            )*
        )*
        c.push_str("return 0;\n}\n");
        (c, rust)
    }};
}

#[test]
fn mirrors_match_the_installed_headers() {
    let (program, rust) = layouts! {
        SpiceBaseInterface { "type" => type_, "description" => description, "major_version" => major_version, "minor_version" => minor_version }
        SpiceBaseInstance { "sif" => sif }
        SpiceCoreInterface {
            "base" => base, "timer_add" => timer_add, "timer_start" => timer_start, "timer_cancel" => timer_cancel,
            "timer_remove" => timer_remove, "watch_add" => watch_add, "watch_update_mask" => watch_update_mask,
            "watch_remove" => watch_remove, "channel_event" => channel_event,
        }
        SpiceChannelEventInfo {
            "connection_id" => connection_id, "type" => type_, "id" => id, "flags" => flags, "laddr" => laddr,
            "paddr" => paddr, "llen" => llen, "plen" => plen, "laddr_ext" => laddr_ext, "paddr_ext" => paddr_ext,
            "llen_ext" => llen_ext, "plen_ext" => plen_ext,
        }
        QXLDevInitInfo {
            "num_memslots_groups" => num_memslots_groups, "num_memslots" => num_memslots,
            "memslot_gen_bits" => memslot_gen_bits, "memslot_id_bits" => memslot_id_bits,
            "qxl_ram_size" => qxl_ram_size, "internal_groupslot_id" => internal_groupslot_id, "n_surfaces" => n_surfaces,
        }
        QXLDevMemSlot {
            "slot_group_id" => slot_group_id, "slot_id" => slot_id, "generation" => generation,
            "virt_start" => virt_start, "virt_end" => virt_end, "addr_delta" => addr_delta, "qxl_ram_size" => qxl_ram_size,
        }
        QXLDevSurfaceCreate {
            "width" => width, "height" => height, "stride" => stride, "format" => format, "position" => position,
            "mouse_mode" => mouse_mode, "flags" => flags, "type" => type_, "mem" => mem, "group_id" => group_id,
        }
        QXLCommand { "data" => data, "type" => type_, "padding" => padding }
        QXLCommandExt { "cmd" => cmd, "group_id" => group_id, "flags" => flags }
        QXLRect { "top" => top, "left" => left, "bottom" => bottom, "right" => right }
        QXLReleaseInfoExt { "info" => info, "group_id" => group_id }
        VDAgentMonConfig { "height" => height, "width" => width, "depth" => depth, "x" => x, "y" => y }
        VDAgentMonitorsConfig { "num_of_monitors" => num_of_monitors, "flags" => flags, "monitors" => monitors }
        QXLInterface {
            "base" => base, "attached_worker" => attached, "set_compression_level" => set_compression_level,
            "set_mm_time" => set_mm_time, "get_init_info" => get_init_info, "get_command" => get_command,
            "req_cmd_notification" => req_cmd_notification, "release_resource" => release_resource,
            "get_cursor_command" => get_cursor_command, "req_cursor_notification" => req_cursor_notification,
            "notify_update" => notify_update, "flush_resources" => flush_resources, "async_complete" => async_complete,
            "update_area_complete" => update_area_complete, "set_client_capabilities" => set_client_capabilities,
            "client_monitors_config" => client_monitors_config,
        }
        QXLInstance { "base" => base, "id" => id, "st" => st }
        SpiceKbdInterface { "base" => base, "push_scan_freg" => push_scan_freg, "get_leds" => get_leds }
        SpiceKbdInstance { "base" => base, "st" => st }
        SpiceMouseInterface { "base" => base, "motion" => motion, "buttons" => buttons }
        SpiceMouseInstance { "base" => base, "st" => st }
        SpiceTabletInterface {
            "base" => base, "set_logical_size" => set_logical_size, "position" => position, "wheel" => wheel, "buttons" => buttons,
        }
        SpiceTabletInstance { "base" => base, "st" => st }
        SpicePlaybackInterface { "base" => base }
        SpicePlaybackInstance { "base" => base, "st" => st }
        SpiceRecordInterface { "base" => base }
        SpiceRecordInstance { "base" => base, "st" => st }
        SpiceCharDeviceInterface {
            "base" => base, "state" => state, "write" => write, "read" => read, "event" => event, "flags" => flags,
        }
        SpiceCharDeviceInstance { "base" => base, "subtype" => subtype, "st" => st, "portname" => portname }
        SpiceMigrateInterface {
            "base" => base, "migrate_connect_complete" => migrate_connect_complete,
            "migrate_end_complete" => migrate_end_complete,
        }
        SpiceMigrateInstance { "base" => base, "st" => st }
    };
    let dir = std::env::temp_dir().join(format!("spice-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("layout.c");
    let binary = dir.join("layout");
    std::fs::write(&source, program).unwrap();
    let cc = Command::new("cc")
        .args(["-I/usr/include/spice-server", "-I/usr/include/spice-1", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("a C compiler");
    assert!(
        cc.status.success(),
        "compiling against spice.h failed (apt-get install libspice-server-dev):\n{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let out = Command::new(&binary).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let mut checked = 0;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (name, value) = line.rsplit_once(' ').unwrap();
        let c: usize = value.parse().unwrap();
        assert_eq!(
            rust.get(name),
            Some(&c),
            "{name}: C says {c}, Rust says {:?}",
            rust.get(name)
        );
        checked += 1;
    }
    assert_eq!(checked, rust.len(), "every layout was printed by the C program");
}
