//! A real Debian 12 desktop guest for QEMU: Xorg on the
//! `xserver-xorg-video-qxl` driver (over the kernel's qxl DRM driver) with
//! twm, an xterm, xclock and xeyes, `spice-vdagentd` and the session's
//! `spice-vdagent`, taking commands over the serial port
//! (`guest/xorg/session.sh` lists them).
//!
//! Built once from Debian's packages without installing anything on the
//! host (the crate's `rootfs` module): the packages' closure unpacked into one
//! directory, made an ext4 image for a read-only virtio-blk disk (under TCG
//! a block device's page cache is the quickest root; 9p costs a round trip
//! per file access), and a small initramfs (the same kernel as
//! [`LinuxGuest`]) that loads the modules and switches to it. Everything is
//! kept in `target/guest/`, named after a hash of the package versions and
//! the scripts, so a change to either rebuilds it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use crate::guest::{fnv1a, initramfs, LinuxGuest};
use crate::rootfs;

/// Stage one, in the initramfs.
const INIT: &str = include_str!("../guest/xorg/init.sh");
/// Stage two, on the root disk.
const SESSION: &str = include_str!("../guest/xorg/session.sh");

/// What the guest runs; their dependencies come along.
const PACKAGES: &[&str] = &[
    "busybox-static",
    "xserver-xorg-core",
    "xserver-xorg-video-qxl",
    "xserver-xorg-input-evdev",
    "x11-xkb-utils",
    "xterm",
    "twm",
    "x11-apps",
    "xfonts-base",
    "x11-xserver-utils",
    "xdotool",
    "xsel",
    "spice-vdagent",
];

/// Kernel modules the initramfs loads (their dependencies first): the qxl
/// DRM driver, virtio (PCI, the agent's serial port, the root disk), ext4
/// and the crc32c its checksums ask for (no modprobe to load it on demand),
/// evdev and the PS/2 mouse for Xorg's input, uinput for the agent's
/// absolute pointer.
const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_console",
    "virtio_blk",
    "crc32c_generic",
    "ext4",
    "qxl",
    "evdev",
    "psmouse",
    "uinput",
];

/// A bootable X guest.
#[derive(Debug, Clone)]
pub struct XorgGuest {
    /// Debian's kernel with this guest's initramfs.
    pub linux: LinuxGuest,
    /// The root file system (ext4).
    pub image: PathBuf,
    /// The image's size in bytes.
    pub image_bytes: u64,
    /// The Debian packages in it (file names of the `.deb`s).
    pub packages: Vec<String>,
}

impl XorgGuest {
    /// Builds the guest once per process (or reuses one built before).
    /// Panics with what went wrong: without Debian's packages there is no
    /// real guest to test with.
    pub fn get() -> &'static XorgGuest {
        static GUEST: OnceLock<XorgGuest> = OnceLock::new();
        GUEST.get_or_init(|| {
            let dir = crate::qemu::workspace_root().join("target/guest");
            let started = Instant::now();
            let guest = build(&dir).unwrap_or_else(|e| panic!("cannot build the Xorg test guest: {e}"));
            eprintln!(
                "Xorg guest: {} packages, {} MiB image, ready in {:?}",
                guest.packages.len(),
                guest.image_bytes >> 20,
                started.elapsed()
            );
            guest
        })
    }

    /// QEMU's arguments for this guest with `smp` vCPUs: the root disk
    /// (read-only, so guests can share it), qxl, the agent's port.
    pub fn qemu_args(&self, smp: u32) -> Vec<String> {
        [
            "-m",
            "1024",
            "-smp",
            &smp.to_string(),
            "-vga",
            "qxl",
            "-drive",
            &format!("file={},if=virtio,format=raw,readonly=on", self.image.display()),
            "-device",
            "virtio-serial-pci",
            "-chardev",
            "spicevmc,id=vdagent,name=vdagent",
            "-device",
            "virtserialport,chardev=vdagent,name=com.redhat.spice.0",
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

fn build(dir: &Path) -> Result<XorgGuest, String> {
    let kernel = LinuxGuest::get();
    let debs_dir = dir.join("debs");
    let names = match rootfs::closure(PACKAGES) {
        Ok(names) => names,
        Err(first) => {
            eprintln!("guest packages not at hand ({first}); refreshing the package lists");
            crate::guest::update_package_lists()?;
            rootfs::closure(PACKAGES)?
        }
    };
    let debs = rootfs::download(&debs_dir, &names)?;
    let packages: Vec<String> = debs
        .iter()
        .filter_map(|d| d.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect();
    // Named after what went in, so a new package version or script rebuilds.
    let tag = fnv1a(format!("{packages:?}{SESSION}{:?}", kernel.packages).as_bytes());
    let image = dir.join(format!("xorg-{tag:016x}.ext4"));
    if !image.is_file() {
        let root = dir.join(format!("xorg-{tag:016x}.root"));
        rootfs::unpack(&debs, &root)?;
        rootfs::fix_up(&root)?;
        let session = root.join("spice-test/session.sh");
        std::fs::create_dir_all(root.join("spice-test"))
            .map_err(|e| format!("{}: {e}", session.display()))?;
        std::fs::write(&session, SESSION).map_err(|e| format!("{}: {e}", session.display()))?;
        rootfs::ext4_image(&root, &image)?;
        // The image holds it all; the tree would only take room.
        let _ = std::fs::remove_dir_all(&root);
    }
    let image_bytes = std::fs::metadata(&image)
        .map_err(|e| format!("{}: {e}", image.display()))?
        .len();
    let initrd_tag = fnv1a(format!("{INIT}{MODULES:?}{:?}", kernel.packages).as_bytes());
    let initrd = dir.join(format!("xorg-initrd-{initrd_tag:016x}.cpio"));
    if !initrd.is_file() {
        let archive = initramfs(&kernel.busybox(), &kernel.modules(), MODULES, INIT, &[])?;
        let partial = initrd.with_extension("partial");
        std::fs::write(&partial, archive).map_err(|e| format!("{}: {e}", partial.display()))?;
        std::fs::rename(&partial, &initrd).map_err(|e| format!("{}: {e}", initrd.display()))?;
    }
    Ok(XorgGuest {
        linux: kernel.with_initrd(initrd),
        image,
        image_bytes,
        packages,
    })
}
