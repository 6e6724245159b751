//! A Debian root file system assembled from packages without installing
//! anything on the host: the packages' dependency closure (one alternative
//! per dependency, virtual packages skipped), fetched with `apt-get
//! download` and unpacked with `dpkg-deb -x` into one directory, which
//! becomes an ext4 image (`mke2fs -d`) for a guest's virtio-blk disk.
//!
//! Maintainer scripts do not run; [`fix_up`] does by hand the little of
//! their work a guest needs (users, `/bin/sh`, the core fonts' index).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::guest::run;

/// Packages whose dependencies are not followed and which are left out:
/// what only maintainer scripts, package management, documentation or
/// hardware OpenGL need (Xorg on qxl renders in software, without DRI
/// drivers and LLVM), and what a guest without udev or PAM logins never
/// runs.
const LEFT_OUT: &[&str] = &[
    "adduser",
    "adwaita-icon-theme",
    "cpp",
    "dconf-gsettings-backend",
    "debconf",
    "dpkg",
    "groff-base",
    "gtk-update-icon-cache",
    "init-system-helpers",
    "keyboard-configuration",
    "libgl1-mesa-dri",
    "libllvm15",
    "libpam-modules",
    "lsb-base",
    "man-db",
    "menu",
    "passwd",
    "perl-base",
    "procps",
    "shared-mime-info",
    "sysvinit-utils",
    "tar",
    "udev",
    "usrmerge",
];

/// The dependency groups of each package in `apt-cache depends` output:
/// for every package block, the first real (non-virtual) alternative of
/// each `Depends`/`PreDepends` group. Provider lines (indented four spaces
/// under a virtual package) are ignored.
pub(crate) fn parse_depends(output: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
    // The alternatives of the group being read (a group ends at a line
    // without the `|` marker).
    let mut group: Vec<String> = Vec::new();
    for line in output.lines() {
        if !line.starts_with(' ') {
            let name = line.trim();
            if !name.is_empty() {
                blocks.push((name.to_owned(), Vec::new()));
            }
            continue;
        }
        if line.starts_with("    ") {
            continue;
        }
        let entry = line.trim_start();
        let (alternative, entry) = match entry.strip_prefix('|') {
            Some(rest) => (true, rest),
            None => (false, entry),
        };
        let Some((kind, name)) = entry.split_once(':') else {
            continue;
        };
        if kind != "Depends" && kind != "PreDepends" {
            continue;
        }
        let name = name.trim();
        let name = name.split(':').next().unwrap_or(name);
        group.push(name.to_owned());
        if !alternative {
            let chosen = group.iter().find(|n| !n.starts_with('<')).cloned();
            group.clear();
            if let (Some(chosen), Some((_, deps))) = (chosen, blocks.last_mut()) {
                deps.push(chosen);
            }
        }
    }
    blocks
}

/// `roots` and everything they depend on, but for [`LEFT_OUT`], sorted.
pub(crate) fn closure(roots: &[&str]) -> Result<Vec<String>, String> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut todo: BTreeSet<String> = roots.iter().map(|r| (*r).to_owned()).collect();
    while !todo.is_empty() {
        let batch: Vec<String> = std::mem::take(&mut todo)
            .into_iter()
            .filter(|p| !seen.contains(p) && !LEFT_OUT.contains(&p.as_str()))
            .collect();
        if batch.is_empty() {
            break;
        }
        seen.extend(batch.iter().cloned());
        let out = run(Command::new("apt-cache")
            .args([
                "depends",
                "--no-recommends",
                "--no-suggests",
                "--no-conflicts",
                "--no-breaks",
                "--no-replaces",
                "--no-enhances",
            ])
            .args(&batch))?;
        let blocks = parse_depends(&out);
        for wanted in &batch {
            if !blocks.iter().any(|(name, _)| name == wanted) {
                return Err(format!("apt-cache knows no package {wanted}"));
            }
        }
        todo.extend(blocks.into_iter().flat_map(|(_, deps)| deps));
    }
    Ok(seen.into_iter().collect())
}

/// The `.deb` of `package` in `dir`, if downloaded.
fn find_deb(dir: &Path, package: &str) -> Option<PathBuf> {
    let prefix = format!("{package}_");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
}

/// The `.deb` files of `packages` in `dir`, downloading the missing ones in
/// one `apt-get download`.
pub(crate) fn download(dir: &Path, packages: &[String]) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let missing: Vec<&String> = packages.iter().filter(|p| find_deb(dir, p).is_none()).collect();
    if !missing.is_empty() {
        eprintln!(
            "downloading {} Debian packages into {}",
            missing.len(),
            dir.display()
        );
        run(Command::new("apt-get")
            .current_dir(dir)
            .arg("download")
            .args(&missing))?;
    }
    packages
        .iter()
        .map(|p| {
            find_deb(dir, p).ok_or_else(|| format!("apt-get download {p} left no .deb in {}", dir.display()))
        })
        .collect()
}

/// Unpacks every package into `root` (created empty).
pub(crate) fn unpack(debs: &[PathBuf], root: &Path) -> Result<(), String> {
    if root.exists() {
        std::fs::remove_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
    }
    std::fs::create_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
    for deb in debs {
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(root))?;
    }
    Ok(())
}

fn write(path: &Path, contents: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, contents).map_err(|e| format!("{}: {e}", path.display()))
}

/// What the maintainer scripts would have done that the guest needs: a root
/// user (X clients and xterm look the user up), a machine id, `/bin/sh` (busybox), the
/// core fonts' `fonts.dir` (`mkfontdir`, run from the root itself through
/// its own dynamic loader so the host needs no X packages) and
/// `fonts.alias` (the packages' alias files, as `update-fonts-alias` joins
/// them), and the mount points the guest's init uses.
pub(crate) fn fix_up(root: &Path) -> Result<(), String> {
    write(&root.join("etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\n")?;
    write(&root.join("etc/group"), b"root:x:0:\n")?;
    // D-Bus clients (spice-vdagent's GTK) want a machine id; a fixed one.
    write(
        &root.join("etc/machine-id"),
        b"5370696365546573744775657374303a\n",
    )?;
    let sh = root.join("bin/sh");
    if std::fs::symlink_metadata(&sh).is_err() {
        std::os::unix::fs::symlink("busybox", &sh).map_err(|e| format!("{}: {e}", sh.display()))?;
    }
    for dir in ["proc", "sys", "dev", "tmp", "run", "var", "root", "home"] {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let fonts = root.join("usr/share/fonts/X11");
    // (lib64's loader is an absolute link, to the host's.)
    let loader = root.join("lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
    let libs = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"]
        .map(|d| root.join(d).display().to_string())
        .join(":");
    let entries = std::fs::read_dir(&fonts).map_err(|e| format!("{}: {e}", fonts.display()))?;
    for dir in entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| has_fonts(p))
    {
        // mkfontdir is a script for `mkfontscale -b -s -l`.
        run(Command::new(&loader)
            .arg("--library-path")
            .arg(&libs)
            .arg(root.join("usr/bin/mkfontscale"))
            .args(["-b", "-s", "-l", "-e"])
            .arg(root.join("usr/share/fonts/X11/encodings"))
            .arg(&dir))?;
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let aliases = root.join(format!("etc/X11/fonts/{name}"));
        let mut joined = Vec::new();
        if let Ok(files) = std::fs::read_dir(&aliases) {
            let mut files: Vec<PathBuf> = files.filter_map(Result::ok).map(|e| e.path()).collect();
            files.sort();
            for f in files
                .iter()
                .filter(|f| f.extension().is_some_and(|e| e == "alias"))
            {
                joined.extend(std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?);
            }
        }
        if !joined.is_empty() {
            write(&dir.join("fonts.alias"), &joined)?;
        }
    }
    Ok(())
}

/// Whether `dir` holds bitmap fonts.
fn has_fonts(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".pcf.gz")))
    })
}

/// Bytes the files under `dir` take, in 4 KiB blocks.
fn disk_usage(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => 4096 + disk_usage(&e.path()),
            Ok(m) => m.len().div_ceil(4096) * 4096 + 256,
            Err(_) => 0,
        })
        .sum()
}

/// An ext4 image of `root` (no journal: the guest mounts it read-only),
/// owned by root in the guest, with room for the file system's own
/// metadata. Returns its size in bytes.
pub(crate) fn ext4_image(root: &Path, image: &Path) -> Result<u64, String> {
    let size = (disk_usage(root) * 5 / 4 + (64 << 20)).div_ceil(1 << 20) << 20;
    let partial = image.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    run(Command::new("mke2fs")
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-O",
            "^has_journal",
            "-E",
            "root_owner=0:0",
            "-L",
            "spice-guest",
            "-d",
        ])
        .arg(root)
        .arg(&partial)
        .arg(format!("{}k", size >> 10)))
    .map_err(|e| format!("{e} (mke2fs is in e2fsprogs)"))?;
    std::fs::rename(&partial, image).map_err(|e| format!("{}: {e}", image.display()))?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_pick_the_first_real_alternative_and_skip_virtual_packages() {
        let out = "\
xterm
  Depends: xbitmaps
 |Depends: <debconf-2.0>
  Depends: debconf
  Depends: <perl:any>
    perl-base
  Depends: libc6
  Recommends: x11-utils
 |PreDepends: libfoo
  PreDepends: libbar
twm
  Depends: libice6
";
        let blocks = parse_depends(out);
        assert_eq!(
            blocks,
            vec![
                (
                    "xterm".to_owned(),
                    vec![
                        "xbitmaps".to_owned(),
                        "debconf".to_owned(),
                        "libc6".to_owned(),
                        "libfoo".to_owned()
                    ]
                ),
                ("twm".to_owned(), vec!["libice6".to_owned()]),
            ]
        );
    }
}
