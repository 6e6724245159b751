//! Differential rendering: the same QXL drawing, in native mode, through
//! Debian's C library and through ours; what each leaves in guest memory
//! must be the same after `update_area` (part of a surface, then each
//! whole, sync and async), after `flush_surfaces_async`, after `vm_stop`,
//! after a `loadvm` as QEMU does it (every surface dropped, the primary
//! created again over its memory, the off-screen creates replayed through
//! `loadvm_commands`) with more drawing on top, and after
//! `reset_image_cache`, `reset_cursor` and `oom` (which must call the
//! device's `flush_resources`) with more drawing again.
//!
//! The C host (`tests/c_host/host.c`) plays the scene of `scene.c`: a
//! seeded run of surface creates (every format the device takes, with and
//! without kept data) and drawables (fills, ROP descriptors, clip rectangles,
//! 1-bit masks, pattern brushes, copy-bits, copies from bitmaps and surfaces,
//! same size and scaled with NEAREST, blackness/whiteness/invers, opaque,
//! blend, ROP3, transparent, alpha blends, Render composites, 1- and 4-bit
//! text and strokes), all in guest RAM behind a memslot, as QEMU's qxl
//! device gives them. Both libraries composite through the same pixman, so
//! the surfaces must be byte-identical: pixels, the X byte of xRGB pixels
//! (the C canvas blits 32-bit pictures as raw words and converts only when
//! it scales a plain copy, and clears X bytes after an alpha blend or text
//! as its `clear_dest_alpha` does; ours does the same) and the padding of
//! each row (cleared when a surface is created without its data).
//!
//! What the scene leaves out, on purpose (see `scene.c`): A8 *bitmaps* as
//! composite masks and transforms on surface operands (C bugs no guest
//! driver reaches or that corrupt C's own later drawing), and dashed strokes
//! off the axes (spice-canvas's `stroke.rs` says where they may differ).
//!
//! On a mismatch the test names the surface, the phase, how many bytes
//! differ and the first differing pixel, saves both pictures as PPM under
//! `target/qxl-differential/`, and replays the scene one operation kind at a
//! time to say which kinds differ.

#[path = "c_host/harness.rs"]
mod harness;

use std::path::PathBuf;
use std::time::Instant;

use harness::*;
use serde_json::Value;

/// Drawables before the first `update_area`, and after it (before `vm_stop`).
const OPS: u32 = 600;
const MORE: u32 = 150;
const SEEDS: [u64; 6] = [1, 2, 3, 4, 5, 20_240_611];
/// The op kinds of `scene.c`, by bit.
const KINDS: [&str; 18] = [
    "fill",
    "fill_rop",
    "fill_mask",
    "fill_pattern",
    "copy_bits",
    "copy",
    "copy_scaled",
    "copy_surface",
    "copy_surface_scaled",
    "bwi",
    "opaque",
    "blend",
    "rop3",
    "transparent",
    "alpha_blend",
    "composite",
    "text",
    "stroke",
];

/// One surface's guest memory as a phase of the scene left it.
struct Dump {
    phase: String,
    id: u64,
    format: u64,
    width: usize,
    height: usize,
    stride: i64,
    /// The area compared: left, top, right, bottom.
    area: [usize; 4],
    memory: Vec<u8>,
}

impl Dump {
    fn from_event(v: &Value) -> Self {
        let n = |k: &str| v[k].as_i64().unwrap_or_else(|| panic!("{k} in {v}"));
        let path = PathBuf::from(v["path"].as_str().unwrap());
        Dump {
            phase: v["phase"].as_str().unwrap().to_owned(),
            id: n("id") as u64,
            format: n("format") as u64,
            width: n("width") as usize,
            height: n("height") as usize,
            stride: n("stride"),
            area: [
                n("left") as usize,
                n("top") as usize,
                n("right") as usize,
                n("bottom") as usize,
            ],
            memory: std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        }
    }

    fn bytes_per_pixel(&self) -> usize {
        match self.format {
            32 | 96 => 4,
            16 | 80 => 2,
            _ => 1,
        }
    }

    /// Row `y` (top-down) of the picture, with its padding.
    fn row(&self, y: usize) -> &[u8] {
        let stride = self.stride.unsigned_abs() as usize;
        let line = if self.stride < 0 { self.height - 1 - y } else { y };
        &self.memory[line * stride..(line + 1) * stride]
    }

    fn whole(&self) -> bool {
        self.area == [0, 0, self.width, self.height]
    }

    /// The area as a binary PPM (16-bit 565 expanded, A8 as grey).
    fn ppm(&self) -> Vec<u8> {
        let [l, t, r, b] = self.area;
        let mut out = format!("P6\n{} {}\n255\n", r - l, b - t).into_bytes();
        let bpp = self.bytes_per_pixel();
        for y in t..b {
            let row = self.row(y);
            for x in l..r {
                let p = &row[x * bpp..(x + 1) * bpp];
                let rgb = match (self.format, bpp) {
                    (_, 4) => [p[2], p[1], p[0]],
                    (80, 2) => {
                        let v = u16::from_le_bytes([p[0], p[1]]);
                        let c = |v: u16, bits: u32| ((u32::from(v) * 255) / ((1 << bits) - 1)) as u8;
                        [c(v >> 11, 5), c(v >> 5 & 0x3f, 6), c(v & 0x1f, 5)]
                    }
                    (_, 2) => {
                        let v = u16::from_le_bytes([p[0], p[1]]);
                        let c = |v: u16| ((u32::from(v & 0x1f) * 255) / 31) as u8;
                        [c(v >> 10), c(v >> 5), c(v)]
                    }
                    _ => [p[0]; 3],
                };
                out.extend_from_slice(&rgb);
            }
        }
        out
    }
}

/// What one library left: every dump, the scene's release counts and the
/// host's stderr.
struct Run {
    dumps: Vec<Dump>,
    /// Times `oom` made the library call the device's `flush_resources`.
    flushes: usize,
    counts: Value,
    ops: Value,
    stderr: Vec<String>,
}

fn run_scene(lib: Lib, seed: u64, ops: u32, kinds: u32, more: u32) -> Run {
    let mut host = Host::start(lib, &["--picture", "0", "--width", "320", "--height", "240"]);
    let dir = host.dir.join("scene");
    std::fs::create_dir_all(&dir).unwrap();
    host.cmd(&format!("scene_start {seed} {ops} {kinds} {}", dir.display()));
    host.cmd("scene_update");
    host.cmd(&format!("scene_more {more}"));
    host.cmd("scene_flush flushed");
    host.cmd(&format!("scene_more {more}"));
    host.cmd("vm_stop");
    host.cmd("scene_dump stop");
    host.cmd("scene_loadvm");
    host.cmd("vm_start");
    host.cmd(&format!("scene_more {more}"));
    host.cmd("scene_update_all loadvm");
    host.cmd("scene_resets");
    host.cmd(&format!("scene_more {more}"));
    host.cmd("scene_update_all reset");
    host.cmd("scene_end");
    let dumps: Vec<Dump> = host
        .events("scene-surface")
        .into_iter()
        .filter(|v| v["phase"] != "created")
        .map(Dump::from_event)
        .collect();
    let stderr_lines = host.stderr_lines.clone();
    let events = host.quit();
    let find = |name: &str| {
        events
            .iter()
            .find(|v| v["event"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{lib:?}: no {name}"))
    };
    let stderr = stderr_lines.lock().unwrap().clone();
    Run {
        dumps,
        flushes: events.iter().filter(|v| v["event"] == "flush-resources").count(),
        counts: find("scene-counts"),
        ops: find("scene-ops"),
        stderr,
    }
}

/// Every command released exactly once; no server bug or critical message.
fn assert_clean(lib: Lib, run: &Run) {
    let c = &run.counts;
    assert!(c["made"].as_u64() > Some(0), "{lib:?}: {c}");
    assert_eq!(c["sent"], c["made"], "{lib:?}: every command taken: {c}");
    assert_eq!(c["released"], c["sent"], "{lib:?}: every command released: {c}");
    assert_eq!(c["double"], 0, "{lib:?}: released twice: {c}");
    assert_eq!(c["bad"], 0, "{lib:?}: unknown releases: {c}");
    let bad: Vec<&String> = run
        .stderr
        .iter()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("spice-server bug")
                || l.contains("critical")
                || l.contains("error")
                || l.contains("panic")
        })
        .collect();
    assert!(bad.is_empty(), "{lib:?}: the library complained: {bad:#?}");
}

/// How two dumps of one surface differ.
#[derive(Default)]
struct Difference {
    /// Differing bytes, and pixels with one.
    bytes: usize,
    pixels: usize,
    /// The first such pixel: (x, y, C's bytes, ours).
    first: Option<(usize, usize, Vec<u8>, Vec<u8>)>,
    /// Of those pixels, the 32-bit ones that differ only in their fourth byte.
    fourth_byte_only: usize,
    /// Rows whose padding (beyond the pixels, within the stride) differs.
    padding_rows: usize,
}

fn compare(c: &Dump, ours: &Dump) -> Difference {
    assert_eq!(
        (c.format, c.width, c.height, c.stride, c.area),
        (ours.format, ours.width, ours.height, ours.stride, ours.area),
        "surface {} ({}) is laid out alike",
        c.id,
        c.phase
    );
    let bpp = c.bytes_per_pixel();
    let [l, t, r, b] = c.area;
    let mut d = Difference::default();
    for y in t..b {
        let (rc, ro) = (c.row(y), ours.row(y));
        for x in l..r {
            let (pc, po) = (&rc[x * bpp..(x + 1) * bpp], &ro[x * bpp..(x + 1) * bpp]);
            if pc == po {
                continue;
            }
            let n = pc.iter().zip(po).filter(|(a, b)| a != b).count();
            if bpp == 4 && pc[..3] == po[..3] {
                d.fourth_byte_only += 1;
            }
            d.bytes += n;
            d.pixels += 1;
            d.first.get_or_insert_with(|| (x, y, pc.to_vec(), po.to_vec()));
        }
        if c.whole() && rc[c.width * bpp..] != ro[c.width * bpp..] {
            d.padding_rows += 1;
        }
    }
    d
}

/// Compares every dump; returns a description of each mismatch (after saving
/// both pictures when `save`).
fn mismatches(seed: u64, c: &Run, ours: &Run, save: bool) -> Vec<String> {
    assert_eq!(
        c.dumps.iter().map(|d| (&d.phase, d.id)).collect::<Vec<_>>(),
        ours.dumps.iter().map(|d| (&d.phase, d.id)).collect::<Vec<_>>(),
        "both libraries ran the same scene"
    );
    let out_dir = workspace_root().join("target/qxl-differential");
    let mut found = Vec::new();
    for (dc, dr) in c.dumps.iter().zip(&ours.dumps) {
        let d = compare(dc, dr);
        if d.bytes == 0 && d.padding_rows == 0 {
            continue;
        }
        let mut what = format!(
            "seed {seed}, {} surface {} (format {}, {}x{}, area {:?}): {} bytes in {} pixels differ ({} only in their fourth byte)",
            dc.phase, dc.id, dc.format, dc.width, dc.height, dc.area, d.bytes, d.pixels, d.fourth_byte_only
        );
        if let Some((x, y, pc, po)) = &d.first {
            what += &format!("; first at ({x}, {y}): C {}, ours {}", hex(pc), hex(po));
        }
        if d.padding_rows > 0 {
            what += &format!("; row padding differs in {} rows", d.padding_rows);
        }
        if save {
            std::fs::create_dir_all(&out_dir).unwrap();
            let name = format!("seed{seed}-{}-{}", dc.phase, dc.id);
            for (lib, dump) in [("c", dc), ("ours", dr)] {
                let path = out_dir.join(format!("{name}-{lib}.ppm"));
                std::fs::write(&path, dump.ppm()).unwrap();
            }
            what += &format!("; saved {}/{name}-{{c,ours}}.ppm", out_dir.display());
        }
        found.push(what);
    }
    found
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The op kinds whose scene alone renders differently.
fn differing_kinds(seed: u64) -> Vec<String> {
    let mut kinds = Vec::new();
    for (bit, name) in KINDS.iter().enumerate() {
        let c = run_scene(Lib::Debian, seed, 200, 1 << bit, 50);
        let ours = run_scene(Lib::Ours, seed, 200, 1 << bit, 50);
        let found = mismatches(seed, &c, &ours, false);
        if let Some(first) = found.first() {
            kinds.push(format!("{name}: {} mismatching dumps, e.g. {first}", found.len()));
        }
    }
    kinds
}

#[test]
fn scene_renders_as_the_c_library() {
    let _serial = serial();
    for seed in SEEDS {
        let started = Instant::now();
        let c = run_scene(Lib::Debian, seed, OPS, 0, MORE);
        let ours = run_scene(Lib::Ours, seed, OPS, 0, MORE);
        assert_clean(Lib::Debian, &c);
        assert_clean(Lib::Ours, &ours);
        assert_eq!(c.ops, ours.ops, "the same operations were drawn");
        assert!(
            c.flushes > 0,
            "seed {seed}: oom made the C library flush resources"
        );
        assert!(
            ours.flushes > 0,
            "seed {seed}: oom made our library flush resources"
        );
        // The scene drew: the primary is not what its creation left.
        let primary = c.dumps.iter().find(|d| d.phase == "update" && d.id == 0).unwrap();
        assert!(
            primary.memory.iter().filter(|b| **b != 0).count() > primary.memory.len() / 2,
            "seed {seed}: the C library drew the primary"
        );
        let found = mismatches(seed, &c, &ours, true);
        eprintln!(
            "seed {seed}: {} surface dumps compared, {} commands, ops {}; {:.1} s",
            c.dumps.len(),
            c.counts["made"],
            c.ops,
            started.elapsed().as_secs_f64()
        );
        if !found.is_empty() {
            let kinds = differing_kinds(seed);
            panic!(
                "guest memory differs from the C library's:\n{}\nop kinds that differ alone:\n{}",
                found.join("\n"),
                kinds.join("\n")
            );
        }
    }
}
