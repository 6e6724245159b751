//! A real Linux guest for QEMU, built from Debian's packages: Debian's kernel
//! with its qxl DRM driver (the console on fbcon over the qxl framebuffer, as
//! a Linux VM on `-vga qxl` shows it) and a busybox initramfs whose init
//! (`guest/init.sh`) takes commands over the serial port.
//!
//! Nothing is installed on the host: `apt-get download` fetches the kernel
//! image and `busybox-static` into `target/guest/`, `dpkg-deb -x` unpacks
//! them there, and the initramfs (a `newc` cpio archive, written here) holds
//! busybox, the init script and the qxl module with the modules it depends
//! on, in load order. The result is kept and reused while the packages and
//! the init script stay the same.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The init script of the guest.
const INIT: &str = include_str!("../guest/init.sh");

/// The guest kernel's modules the init script loads (with what they depend
/// on, first): the qxl DRM driver, virtio-serial for an agent port, and
/// sound: the HDA controller with the generic codec driver (loaded first,
/// since nothing runs modprobe for the codec) and OSS emulation, whose
/// `/dev/dsp` busybox can write to.
const ROOT_MODULES: [&str; 6] = [
    "qxl",
    "virtio_pci",
    "virtio_console",
    "snd_hda_codec_generic",
    "snd_hda_intel",
    "snd_pcm_oss",
];

/// The guest's video (`video N` in the init script): frames of a
/// photographic picture, each a band of [`VIDEO_ROWS`] whole rows of a
/// [`VIDEO_WIDTH`]-pixel framebuffer, which the guest writes over its
/// screen one after the other with `dd`, as a framebuffer video player
/// writes into `/dev/fb0`.
pub const VIDEO_WIDTH: u32 = 1024;
/// See [`VIDEO_WIDTH`].
pub const VIDEO_ROWS: u32 = 160;
/// How many different frames the guest cycles through.
pub const VIDEO_FRAMES: u32 = 10;
/// The framebuffer row the video's band starts at (the init script seeks
/// by whole frames: 2 frames of 160 rows).
pub const VIDEO_TOP: u32 = 320;

/// The frames of the guest's video, one after the other: packed rows of
/// B, G, R, 0.
pub fn video_frames() -> Vec<u8> {
    let mut canvas = crate::pattern::Canvas::new(VIDEO_WIDTH, VIDEO_ROWS, 7);
    let area = spice_server::Rect {
        x: 0,
        y: 0,
        width: VIDEO_WIDTH,
        height: VIDEO_ROWS,
    };
    let mut out = Vec::new();
    for t in 0..VIDEO_FRAMES {
        canvas.video_frame(area, t * 3);
        out.extend(canvas.packed());
    }
    out
}

/// A bootable guest: `-kernel`, `-initrd`, and the kernel's version.
#[derive(Debug, Clone)]
pub struct LinuxGuest {
    /// The kernel image (`vmlinuz`).
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    /// The kernel release, e.g. `6.1.0-57-amd64`.
    pub release: String,
    /// The Debian packages it was built from (name_version).
    pub packages: Vec<String>,
    /// Where the kernel package was unpacked (its modules are under `lib/modules`).
    root: PathBuf,
}

impl LinuxGuest {
    /// Builds the guest once per process (or reuses one built before).
    /// Panics with what went wrong: without Debian's packages there is no
    /// real guest to test with.
    pub fn get() -> &'static LinuxGuest {
        static GUEST: OnceLock<LinuxGuest> = OnceLock::new();
        GUEST.get_or_init(
            || match build(&crate::qemu::workspace_root().join("target/guest")) {
                Ok(guest) => guest,
                Err(e) => panic!("cannot build the Linux test guest: {e}"),
            },
        )
    }

    /// The kernel command line for a serial console.
    pub fn append(&self) -> &'static str {
        "console=ttyS0 quiet"
    }

    /// The kernel's module tree (`lib/modules/RELEASE/kernel`).
    pub(crate) fn modules(&self) -> PathBuf {
        self.root.join(format!("lib/modules/{}/kernel", self.release))
    }

    /// Busybox (static), as unpacked next to the kernel.
    pub(crate) fn busybox(&self) -> PathBuf {
        self.root.join("bin/busybox")
    }

    /// The same kernel with another initramfs.
    pub(crate) fn with_initrd(&self, initrd: PathBuf) -> Self {
        Self {
            initrd,
            ..self.clone()
        }
    }
}

pub(crate) fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The versioned kernel package `linux-image-amd64` points at.
fn kernel_package() -> Result<String, String> {
    let deps = run(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    deps.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_owned)
        .ok_or_else(|| format!("no kernel package among the dependencies of linux-image-amd64: {deps}"))
}

/// The `.deb` of `package` in `dir`, downloaded if missing.
pub(crate) fn deb(dir: &Path, package: &str) -> Result<PathBuf, String> {
    let find = || {
        std::fs::read_dir(dir).ok().and_then(|entries| {
            entries.filter_map(Result::ok).map(|e| e.path()).find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
            })
        })
    };
    if let Some(found) = find() {
        return Ok(found);
    }
    run(Command::new("apt-get")
        .current_dir(dir)
        .args(["download", package]))?;
    find().ok_or_else(|| format!("apt-get download {package} left no .deb in {}", dir.display()))
}

/// Refreshes the package lists once (stale or missing lists make
/// `apt-cache` and `apt-get download` fail), as root or through sudo.
pub(crate) fn update_package_lists() -> Result<(), String> {
    let root = run(Command::new("id").arg("-u")).is_ok_and(|u| u.trim() == "0");
    let mut cmd = if root {
        Command::new("apt-get")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.arg("apt-get");
        sudo
    };
    run(cmd.args(["update", "-q"])).map(|_| ())
}

/// The kernel and busybox packages in `dir`, downloaded if missing.
fn packages(dir: &Path) -> Result<(String, [PathBuf; 2]), String> {
    let kernel_pkg = kernel_package()?;
    let debs = [deb(dir, &kernel_pkg)?, deb(dir, "busybox-static")?];
    Ok((kernel_pkg, debs))
}

fn build(dir: &Path) -> Result<LinuxGuest, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (kernel_pkg, debs) = match packages(dir) {
        Ok(found) => found,
        Err(first) => {
            eprintln!("guest packages not at hand ({first}); refreshing the package lists");
            update_package_lists()?;
            packages(dir)?
        }
    };
    let release = kernel_pkg
        .strip_prefix("linux-image-")
        .unwrap_or(&kernel_pkg)
        .to_owned();
    let packages: Vec<String> = debs
        .iter()
        .filter_map(|d| d.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
        .collect();
    // The initramfs is named after what went into it, so a change rebuilds it.
    let video = video_frames();
    let tag = fnv1a(&[format!("{packages:?}{ROOT_MODULES:?}{INIT}").as_bytes(), &video].concat());
    let initrd = dir.join(format!("initrd-{tag:016x}.cpio"));
    let root = dir.join(format!("root-{release}"));
    let kernel = root.join(format!("boot/vmlinuz-{release}"));
    if !kernel.is_file() || !root.join("bin/busybox").is_file() {
        std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        for d in &debs {
            run(Command::new("dpkg-deb").arg("-x").arg(d).arg(&root))?;
        }
    }
    if !initrd.is_file() {
        let modules = root.join(format!("lib/modules/{release}/kernel"));
        let archive = initramfs(
            &root.join("bin/busybox"),
            &modules,
            &ROOT_MODULES,
            INIT,
            &[("video", &video)],
        )?;
        let partial = initrd.with_extension("partial");
        std::fs::write(&partial, archive).map_err(|e| format!("{}: {e}", partial.display()))?;
        std::fs::rename(&partial, &initrd).map_err(|e| format!("{}: {e}", initrd.display()))?;
    }
    Ok(LinuxGuest {
        kernel,
        initrd,
        release,
        packages,
        root,
    })
}

/// An initramfs: static busybox, the init script `init`, the modules
/// `roots` with what they depend on under `mods/`, their load order in
/// `mods/order`, and `files` (name, contents) at the root.
pub(crate) fn initramfs(
    busybox: &Path,
    modules: &Path,
    roots: &[&str],
    init: &str,
    files: &[(&str, &[u8])],
) -> Result<Vec<u8>, String> {
    let order = load_order(modules, roots)?;
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut cpio = Cpio::default();
    for d in ["bin", "dev", "proc", "sys", "mods"] {
        cpio.dir(d);
    }
    cpio.file("bin/busybox", 0o755, &read(busybox)?);
    cpio.file("init", 0o755, init.as_bytes());
    let mut names = String::new();
    for (name, path) in &order {
        cpio.file(&format!("mods/{name}.ko"), 0o644, &read(path)?);
        names.push_str(name);
        names.push('\n');
    }
    cpio.file("mods/order", 0o644, names.as_bytes());
    for (name, contents) in files {
        cpio.file(name, 0o644, contents);
    }
    Ok(cpio.finish())
}

/// `roots` and everything they depend on (the `depends=` of each module's
/// `.modinfo`), dependencies first.
pub(crate) fn load_order(modules: &Path, roots: &[&str]) -> Result<Vec<(String, PathBuf)>, String> {
    let mut files = Vec::new();
    collect_modules(modules, &mut files);
    let find = |name: &str| {
        let want = format!("{}.ko", name.replace('-', "_"));
        files
            .iter()
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.replace('-', "_") == want)
            })
            .cloned()
            .ok_or_else(|| format!("module {name} not found under {}", modules.display()))
    };
    let mut order: Vec<(String, PathBuf)> = Vec::new();
    let mut stack: Vec<(String, bool)> = roots.iter().rev().map(|m| ((*m).to_owned(), false)).collect();
    while let Some((name, expanded)) = stack.pop() {
        if order.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let path = find(&name)?;
        if expanded {
            order.push((name, path));
            continue;
        }
        if stack.len() > 64 {
            return Err(format!("module dependencies of {roots:?} do not end"));
        }
        stack.push((name, true));
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for dep in module_depends(&bytes) {
            stack.push((dep, false));
        }
    }
    Ok(order)
}

fn collect_modules(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            collect_modules(&path, out);
        } else if path.extension().is_some_and(|e| e == "ko") {
            out.push(path);
        }
    }
}

/// The `depends=` entry of a module's `.modinfo` strings.
fn module_depends(module: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = module.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let value = &module[at + key.len()..];
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end])
        .split(',')
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A `newc` (SVR4, no CRC) cpio archive, the format the kernel unpacks.
#[derive(Default)]
pub(crate) struct Cpio {
    data: Vec<u8>,
    inode: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, body: &[u8]) {
        self.inode += 1;
        let header = format!(
            "070701{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
            self.inode,
            mode,
            0,
            0,
            1,
            0,
            body.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        self.data.extend_from_slice(header.as_bytes());
        self.data.extend_from_slice(name.as_bytes());
        self.data.push(0);
        self.pad();
        self.data.extend_from_slice(body);
        self.pad();
    }

    fn pad(&mut self) {
        while self.data.len() % 4 != 0 {
            self.data.push(0);
        }
    }

    pub(crate) fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, &[]);
    }

    pub(crate) fn file(&mut self, name: &str, permissions: u32, body: &[u8]) {
        self.entry(name, 0o100_000 | permissions, body);
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.data
    }
}

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_entries_are_aligned_and_end_with_the_trailer() {
        let mut c = Cpio::default();
        c.dir("bin");
        c.file("init", 0o755, b"#!/bin/sh\n");
        let data = c.finish();
        assert_eq!(&data[..6], b"070701");
        assert_eq!(data.len() % 4, 0);
        let trailer = b"TRAILER!!!\0";
        assert!(data.windows(trailer.len()).any(|w| w == trailer));
        // The file's size field (7th) holds its length in hex.
        let second = data
            .windows(6)
            .enumerate()
            .filter(|(_, w)| *w == b"070701")
            .nth(1)
            .unwrap()
            .0;
        assert_eq!(&data[second + 6 + 6 * 8..second + 6 + 7 * 8], b"0000000A");
    }

    #[test]
    fn modinfo_depends_are_read() {
        let module = b"junk\0license=GPL\0depends=ttm,drm_kms_helper,drm\0vermagic=6.1\0";
        assert_eq!(module_depends(module), ["ttm", "drm_kms_helper", "drm"]);
        assert!(module_depends(b"\0depends=\0").is_empty());
        assert!(module_depends(b"nothing").is_empty());
    }
}
