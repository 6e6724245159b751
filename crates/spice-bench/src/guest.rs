//! The real-guest benchmark: unmodified QEMU 7.2 with a Linux guest
//! (Debian's kernel on the qxl DRM driver, its console on fbcon; one vCPU,
//! TCG; [`spice_interop::guest::LinuxGuest`]), or with a Debian desktop
//! (Xorg on xserver-xorg-video-qxl drawing natively, twm, xterm;
//! [`spice_interop::xorg_guest::XorgGuest`]) running x11perf, against our
//! library and Debian's, alternating, with spice-gtk watching.
//!
//! QEMU runs with `-name debug-threads=on`, so its threads carry names: the
//! main loop (the process's first thread, which holds the big QEMU lock),
//! `SPICE Worker`, `CPU 0/TCG`. Per run, from the guest command's start until
//! the client has shown the result: CPU seconds per QEMU thread and of the
//! client process, the display channel's bytes, the client's
//! `display-invalidate` signals, the latency from the guest's last change to
//! the client's last invalidate, and the client's final picture (its CRC-32,
//! which for the scroll is the same in every run when the libraries agree).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};
use spice_interop::desktop::Desktop;
use spice_interop::gtk::SpiceGtk;
use spice_interop::guest::LinuxGuest;
use spice_interop::qemu::{Library as QemuLibrary, Qemu};

use crate::host::Library;

/// A guest scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestScenario {
    /// Name in the report.
    pub name: &'static str,
    /// What it shows.
    pub description: &'static str,
    /// The guest's command, full run.
    pub command: &'static str,
    /// The guest's command, quick run.
    pub quick_command: &'static str,
    /// Whether the console's cursor blinks (off for an exact final picture).
    pub cursor: bool,
    /// QEMU's `-spice` options for the console guest.
    pub spice: &'static str,
    /// Which guest runs it.
    pub guest: GuestKind,
}

/// The guests of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestKind {
    /// The Linux console on fbcon (DRAW_COPY of bitmaps only).
    Console,
    /// Xorg's qxl driver: fills, copies between surfaces, copy-bits,
    /// composite, text — what the canvas renders.
    Xorg,
}

/// Every guest scenario.
pub const GUEST_SCENARIOS: [GuestScenario; 4] = [
    GuestScenario {
        name: "console-scroll",
        description: "the guest prints log lines on its console as fast as it can (fbcon on qxl)",
        command: "scroll 4000",
        quick_command: "scroll 300",
        cursor: false,
        spice: "disable-ticketing=on",
        guest: GuestKind::Console,
    },
    GuestScenario {
        name: "console-idle",
        description: "the guest's console sits idle with its cursor blinking",
        command: "idle 30",
        quick_command: "idle 3",
        cursor: true,
        spice: "disable-ticketing=on",
        guest: GuestKind::Console,
    },
    GuestScenario {
        name: "console-video",
        description: "the guest plays a 20 s video into its framebuffer at 25 frames a second (photographic 1024x160 frames written with dd, as a framebuffer player does), QEMU's streaming-video=filter on both libraries",
        // Paced as a player paces a video, the guest takes the same 20 s
        // with either library however fast TCG runs that minute: unpaced,
        // the same frames took the guest 10 to 16 s from run to run, and
        // every per-second cost (QEMU's main loop, the stream's frames, the
        // client's decoding) followed the guest's time, not the library.
        command: "video 500 25",
        quick_command: "video 40 25",
        cursor: false,
        spice: "disable-ticketing=on,streaming-video=filter",
        guest: GuestKind::Console,
    },
    GuestScenario {
        name: "xorg-x11perf",
        description: "x11perf on the Xorg desktop (qxl driver, native drawing), a fixed number of repetitions: rectangles, window copies, scrolling, core text, segments",
        // A fixed number of repetitions: the same work for both libraries
        // (timed runs calibrate to the server's speed), so the guest
        // command's time is the throughput.
        command: "x11perf -repeat 1 -reps 200 -rect10 -rect100 -copywinwin100 -copypixwin100 -scroll100 -f8text -seg100",
        quick_command: "x11perf -repeat 1 -reps 300 -rect100 -scroll100",
        cursor: false,
        spice: "disable-ticketing=on",
        guest: GuestKind::Xorg,
    },
];

/// What one guest run measured.
#[derive(Debug, Clone, Default)]
pub struct GuestRun {
    /// Library name (`ours`, `C`).
    pub lib: String,
    /// Scenario name.
    pub scenario: String,
    /// CPU seconds per QEMU thread kind: `main`, `worker`, `vcpu`, `other`.
    pub threads: BTreeMap<String, f64>,
    /// Wakeups (voluntary context switches) per QEMU thread kind.
    pub wakeups: BTreeMap<String, u64>,
    /// CPU seconds of the client process.
    pub client_cpu_s: f64,
    /// Display channel bytes during the scenario.
    pub display_bytes: u64,
    /// The client's `display-invalidate` signals during the scenario.
    pub invalidates: u64,
    /// How long the guest command took.
    pub guest_s: f64,
    /// From the guest's command done to the client's last invalidate.
    pub latency_ms: Option<f64>,
    /// CRC-32 of the client's final picture.
    pub final_crc: Option<u64>,
    /// Lines QEMU printed about a server bug.
    pub server_bugs: usize,
    /// Why the run failed, if it did.
    pub error: Option<String>,
}

impl GuestRun {
    /// CPU seconds of one thread kind.
    pub fn thread(&self, kind: &str) -> f64 {
        self.threads.get(kind).copied().unwrap_or_default()
    }

    /// `cpu_s` seconds of CPU as milliseconds per second of the guest
    /// command's time (none for a run without one).
    pub fn per_guest_s(&self, cpu_s: f64) -> Option<f64> {
        (self.guest_s > 0.0).then(|| cpu_s * 1000.0 / self.guest_s)
    }

    /// Wakeups of one thread kind.
    pub fn wakeups(&self, kind: &str) -> f64 {
        self.wakeups.get(kind).copied().unwrap_or_default() as f64
    }

    /// As JSON, for the results file.
    pub fn to_json(&self) -> Value {
        json!({
            "lib": self.lib,
            "scenario": self.scenario,
            "threads": self.threads,
            "wakeups": self.wakeups,
            "client_cpu_s": self.client_cpu_s,
            "display_bytes": self.display_bytes,
            "invalidates": self.invalidates,
            "guest_s": self.guest_s,
            "latency_ms": self.latency_ms,
            "final_crc": self.final_crc,
            "server_bugs": self.server_bugs,
            "error": self.error,
        })
    }
}

/// The kind of a QEMU thread: the process's first thread is the main loop;
/// the others by the names `-name debug-threads=on` gives them.
fn thread_kind(pid: u32, tid: u32, name: &str) -> &'static str {
    if tid == pid {
        "main"
    } else if name == "SPICE Worker" {
        "worker"
    } else if name.starts_with("CPU ") {
        "vcpu"
    } else {
        "other"
    }
}

/// CPU seconds and wakeups per QEMU thread kind. "other" is the process's
/// total less the named kinds, so threads that ended (a stream's encoder
/// thread ends with its stream) still count; it is precise to the clock
/// tick (10 ms), the named kinds to the microsecond.
fn thread_usage(pid: u32) -> (BTreeMap<String, f64>, BTreeMap<String, u64>) {
    let mut cpu: BTreeMap<String, f64> = BTreeMap::new();
    let mut wakeups = BTreeMap::new();
    for (tid, name) in crate::procfs::threads(pid) {
        let kind = thread_kind(pid, tid, &name).to_owned();
        *cpu.entry(kind.clone()).or_default() +=
            crate::procfs::thread_cpu_seconds(pid, tid).unwrap_or_default();
        *wakeups.entry(kind).or_default() += crate::procfs::thread_wakeups(pid, tid).unwrap_or_default();
    }
    if let Some(total) = crate::procfs::cpu_seconds(pid) {
        let named: f64 = cpu
            .iter()
            .filter(|(kind, _)| kind.as_str() != "other")
            .map(|(_, seconds)| seconds)
            .sum();
        cpu.insert("other".to_owned(), (total - named).max(0.0));
    }
    (cpu, wakeups)
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_default()
}

/// The client's display bytes, invalidate count and clock (µs, CLOCK_MONOTONIC).
fn client_stats(gtk: &mut SpiceGtk) -> Result<(u64, u64, u64)> {
    gtk.send(json!({"cmd": "stats"}));
    let stats = gtk
        .wait(Duration::from_secs(10), |v| v["event"] == "stats")
        .ok_or_else(|| anyhow!("no stats from the client"))?;
    let bytes = stats["channels"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "DisplayChannel"))
        .map(|c| u64_of(c, "total_read_bytes"))
        .unwrap_or_default();
    Ok((bytes, u64_of(&stats, "invalidates"), u64_of(&stats, "t_us")))
}

fn checksum(gtk: &mut SpiceGtk) -> Option<u64> {
    gtk.send(json!({"cmd": "checksum"}));
    let v = gtk.wait(Duration::from_secs(10), |v| {
        v["event"] == "checksum" || v["event"] == "error"
    })?;
    v["crc"].as_u64()
}

/// Waits until the client got no new invalidate for `every` (checked every
/// `every`), or `max` passed.
fn wait_quiet(gtk: &mut SpiceGtk, every: Duration, max: Duration) -> Result<()> {
    let deadline = Instant::now() + max;
    let mut last = None;
    loop {
        std::thread::sleep(every);
        let (_, invalidates, _) = client_stats(gtk)?;
        if last == Some(invalidates) || Instant::now() >= deadline {
            return Ok(());
        }
        last = Some(invalidates);
    }
}

/// One run of `scenario` with `lib`.
pub fn run(lib: &Library, scenario: &GuestScenario, quick: bool) -> GuestRun {
    let mut result = GuestRun {
        lib: lib.name.clone(),
        scenario: scenario.name.to_owned(),
        ..GuestRun::default()
    };
    if let Err(e) = run_into(lib, scenario, quick, &mut result) {
        result.error = Some(format!("{e:#}"));
    }
    result
}

fn run_into(lib: &Library, scenario: &GuestScenario, quick: bool, result: &mut GuestRun) -> Result<()> {
    let library = if lib.name == "C" {
        QemuLibrary::Debian
    } else {
        QemuLibrary::Rust(lib.dir.clone())
    };
    let (mut qemu, mut gtk) = match scenario.guest {
        GuestKind::Console => boot_console(&library, scenario)?,
        GuestKind::Xorg => {
            let desktop = Desktop::boot_with(&library, 1, &["-name", "bench,debug-threads=on"], "");
            (desktop.qemu, desktop.gtk)
        }
    };
    let client_pid = gtk.pid();
    gtk.wait(Duration::from_secs(60), |v| v["event"] == "primary-create")
        .ok_or_else(|| anyhow!("no surface in the client"))?;
    // Let the connection settle (first picture, net test).
    std::thread::sleep(Duration::from_secs(2));

    let (bytes_before, inval_before, _) = client_stats(&mut gtk)?;
    let (threads_before, wakeups_before) = thread_usage(qemu.pid());
    let client_before = crate::procfs::live_threads_cpu_seconds(client_pid);
    let command = if quick {
        scenario.quick_command
    } else {
        scenario.command
    };
    let word = command.split_whitespace().next().unwrap_or_default();
    let started = Instant::now();
    qemu.serial_send(command);
    // Every scenario finishes within a minute on a loaded machine (C's
    // slowest x11perf took 49 s): five minutes means a guest that hung.
    let limit = Duration::from_secs(300);
    if qemu.serial_wait(&format!("GUEST DONE {word}"), limit).is_none() {
        // What a hang looked like, for whoever reads the log.
        let serial = qemu.serial_log();
        let tail: Vec<&str> = serial.lines().rev().take(40).collect();
        eprintln!(
            "{} library: the guest did not finish {command:?} within {limit:?}; last serial lines:\n{}\nQEMU's threads:\n{}",
            lib.name,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            qemu.threads_report()
        );
        return Err(anyhow!("the guest did not finish {command:?} within {limit:?}"));
    }
    let done = Instant::now();
    result.guest_s = done.duration_since(started).as_secs_f64();
    // Map the client's clock onto ours around one stats call.
    let asked = Instant::now();
    let (_, _, client_now_us) = client_stats(&mut gtk)?;
    let answered = Instant::now();
    let client_done_us = client_now_us
        .saturating_sub((answered.duration_since(done) + asked.duration_since(done)).as_micros() as u64 / 2);
    // Settled: no new invalidate for a second (the idle cursor blinks every 200 ms:
    // there the end of the guest command is the end).
    if scenario.cursor {
        std::thread::sleep(Duration::from_millis(100));
        client_stats(&mut gtk)?;
    } else {
        wait_quiet(&mut gtk, Duration::from_secs(1), Duration::from_secs(60))?;
    }
    let (threads_after, wakeups_after) = thread_usage(qemu.pid());
    let client_after = crate::procfs::live_threads_cpu_seconds(client_pid);
    let (bytes_after, inval_after, _) = client_stats(&mut gtk)?;
    for (kind, after) in &threads_after {
        let before = threads_before.get(kind).copied().unwrap_or_default();
        // "other" is a total (clock ticks) less the named threads
        // (microseconds): with nothing else running, its two readings
        // differ by tick rounding only, which may be below zero.
        result.threads.insert(kind.clone(), (after - before).max(0.0));
    }
    for (kind, after) in &wakeups_after {
        let before = wakeups_before.get(kind).copied().unwrap_or_default();
        result.wakeups.insert(kind.clone(), after.saturating_sub(before));
    }
    result.client_cpu_s = client_after - client_before;
    result.display_bytes = bytes_after.saturating_sub(bytes_before);
    result.invalidates = inval_after.saturating_sub(inval_before);
    if !scenario.cursor {
        gtk.send(json!({"cmd": "stats"}));
        let crc = checksum(&mut gtk);
        result.final_crc = crc;
        // The last invalidate's time: a watch on the current picture reports it.
        if let Some(crc) = crc {
            gtk.send(json!({"cmd": "watch", "crc": crc, "timeout": 5}));
            if let Some(m) = gtk.wait(Duration::from_secs(15), |v| v["event"] == "frame-match") {
                let last_us = u64_of(&m, "t_last_invalidate_us");
                result.latency_ms = Some(last_us.saturating_sub(client_done_us) as f64 / 1000.0);
            }
        }
        if scenario.guest == GuestKind::Xorg {
            // The desktop's xclock shows when x11perf ended, which differs
            // per run: after the measurements, the guest's clock goes to one
            // fixed minute and every window repaints (as the
            // `xorg_desktop_equal` test does), and that picture is compared.
            qemu.serial_send("sh date -s '2024-01-01 10:08:00' >/dev/null; xrefresh");
            qemu.serial_wait("GUEST DONE sh", Duration::from_secs(60))
                .ok_or_else(|| anyhow!("the guest did not set its clock"))?;
            wait_quiet(&mut gtk, Duration::from_secs(2), Duration::from_secs(60))?;
            result.final_crc = checksum(&mut gtk);
        }
    }
    result.server_bugs = qemu.stderr().matches("spice-server bug").count();
    qemu.serial_send("off");
    gtk.send(json!({"cmd": "quit"}));
    if result.server_bugs > 0 && lib.name != "C" {
        bail!("QEMU reported {} server bugs", result.server_bugs);
    }
    Ok(())
}

/// Boots the console guest and connects spice-gtk to it.
fn boot_console(library: &QemuLibrary, scenario: &GuestScenario) -> Result<(Qemu, SpiceGtk)> {
    let guest = LinuxGuest::get();
    let mut append = guest.append().to_owned();
    if !scenario.cursor {
        append.push_str(" vt.global_cursor_default=0");
    }
    let mut qemu = Qemu::start_linux(
        library,
        guest,
        &append,
        scenario.spice,
        &[
            "-vga",
            "qxl",
            "-m",
            "256",
            "-smp",
            "1",
            "-name",
            "bench,debug-threads=on",
        ],
    );
    qemu.assert_library();
    qemu.serial_wait("GUEST READY", Duration::from_secs(240))
        .ok_or_else(|| anyhow!("the guest did not come up: {}", qemu.serial_log()))?;
    let mut gtk = SpiceGtk::start();
    gtk.send(json!({
        "cmd": "connect",
        "uri": format!("spice://{}:{}", qemu.addr.ip(), qemu.addr.port()),
        "quiet": true,
    }));
    Ok((qemu, gtk))
}

/// One row of the real-guest table: medians of both libraries.
#[derive(Debug, Clone, Copy)]
pub struct GuestRow {
    /// What is measured.
    pub metric: &'static str,
    /// Our median.
    pub ours: Option<f64>,
    /// The C library's median.
    pub c: Option<f64>,
    /// Digits after the point; `None`: three significant digits.
    pub digits: Option<usize>,
    /// The goal on the ratio ours/C, if any.
    pub goal: Option<f64>,
}

/// Every run of one guest scenario.
#[derive(Debug, Clone)]
pub struct GuestResults {
    /// The scenario.
    pub scenario: &'static GuestScenario,
    /// Runs per library name.
    pub runs: BTreeMap<String, Vec<GuestRun>>,
}

/// The row of the library's whole display work: the worker and the threads
/// it hands work to (our stream encoders; the C library encodes on its
/// worker).
const DISPLAY_WORK: &str = "SPICE Worker + other threads CPU s (all display work)";

/// Goals of the real-guest runs (ratios ours/C): QEMU's main thread (which
/// holds the big QEMU lock) gains nothing, the worker and the client spend
/// less, and scrolling text costs at most half the bytes. On a video the
/// worker and the display work as a whole, encoder threads included, cost
/// less than C's, the C hosts' goal on video: both libraries' workers
/// encode its frames with the same libjpeg, three quarters of their work,
/// and a worker that passed them to other threads would save nothing by
/// that alone.
fn goal(metric: &str, scenario: &str) -> Option<f64> {
    let video = scenario == "console-video";
    match metric {
        "QEMU main thread CPU s" => Some(1.1),
        "SPICE Worker CPU s" => Some(if video { 1.0 } else { 0.5 }),
        DISPLAY_WORK if video => Some(1.0),
        "client CPU s" => Some(1.0),
        "display MB" if scenario == "console-scroll" => Some(0.5),
        _ => None,
    }
}

impl GuestResults {
    fn median_of(&self, lib: &str, f: impl Fn(&GuestRun) -> Option<f64>) -> Option<f64> {
        let runs = self.runs.get(lib)?;
        let v: Vec<f64> = runs.iter().filter(|r| r.error.is_none()).filter_map(f).collect();
        crate::report::median(&v)
    }

    /// The rows of the report table.
    pub fn rows(&self) -> Vec<GuestRow> {
        type Metric = (&'static str, fn(&GuestRun) -> Option<f64>, Option<usize>);
        let metrics: [Metric; 15] = [
            ("QEMU main thread CPU s", |r| Some(r.thread("main")), Some(2)),
            ("SPICE Worker CPU s", |r| Some(r.thread("worker")), Some(2)),
            ("QEMU main thread wakeups", |r| Some(r.wakeups("main")), Some(0)),
            ("SPICE Worker wakeups", |r| Some(r.wakeups("worker")), Some(0)),
            ("vCPU thread CPU s", |r| Some(r.thread("vcpu")), Some(2)),
            (
                "other QEMU threads CPU s (ended ones too: our stream encoders)",
                |r| Some(r.thread("other")),
                Some(2),
            ),
            (
                DISPLAY_WORK,
                |r| Some(r.thread("worker") + r.thread("other")),
                Some(2),
            ),
            ("client CPU s", |r| Some(r.client_cpu_s), Some(2)),
            ("display MB", |r| Some(r.display_bytes as f64 / 1e6), None),
            (
                "client display-invalidate signals",
                |r| Some(r.invalidates as f64),
                Some(0),
            ),
            ("guest command s", |r| Some(r.guest_s), Some(1)),
            // The same console work takes a TCG guest 10 to 21 s from run to
            // run of either library, with its vCPU busy throughout, and
            // QEMU's main loop, the capped stream's frames and the client's
            // redraws all cost per second: these tell what a library costs
            // apart from how fast the guest happened to run.
            (
                "QEMU main thread CPU ms per guest s",
                |r| r.per_guest_s(r.thread("main")),
                Some(1),
            ),
            (
                "SPICE Worker CPU ms per guest s",
                |r| r.per_guest_s(r.thread("worker")),
                Some(1),
            ),
            (
                "client CPU ms per guest s",
                |r| r.per_guest_s(r.client_cpu_s),
                Some(1),
            ),
            ("latency ms, guest done to last update", |r| r.latency_ms, Some(0)),
        ];
        metrics
            .iter()
            .map(|(name, f, digits)| GuestRow {
                metric: name,
                ours: self.median_of("ours", f),
                c: self.median_of("C", f),
                digits: *digits,
                goal: goal(name, self.scenario.name),
            })
            .collect()
    }

    /// Whether both libraries have at least `min` runs without error (enough
    /// for goal verdicts).
    pub fn judged(&self, min: usize) -> bool {
        ["ours", "C"].iter().all(|lib| {
            self.runs
                .get(*lib)
                .is_some_and(|runs| runs.iter().filter(|r| r.error.is_none()).count() >= min)
        })
    }

    /// Whether every run ended on the same picture (scenarios without a
    /// blinking cursor): `(runs with the common CRC, runs)`.
    pub fn same_final_picture(&self) -> Option<(usize, usize)> {
        if self.scenario.cursor {
            return None;
        }
        let crcs: Vec<Option<u64>> = self.runs.values().flatten().map(|r| r.final_crc).collect();
        let first = crcs.iter().flatten().next().copied();
        let same = crcs.iter().filter(|c| **c == first && first.is_some()).count();
        Some((same, crcs.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lib: &str, guest_s: f64, main_s: f64) -> GuestRun {
        GuestRun {
            lib: lib.to_owned(),
            guest_s,
            threads: BTreeMap::from([("main".to_owned(), main_s)]),
            ..GuestRun::default()
        }
    }

    /// Per guest second, each run is divided by its own guest time before
    /// the median: a slow guest's larger total is not counted against its
    /// library.
    #[test]
    fn per_guest_second_rows_divide_each_run_by_its_own_guest_time() {
        let results = GuestResults {
            scenario: &GUEST_SCENARIOS[0],
            runs: BTreeMap::from([
                (
                    "ours".to_owned(),
                    vec![
                        run("ours", 20.0, 0.4),
                        run("ours", 10.0, 0.2),
                        run("ours", 0.0, 0.1),
                    ],
                ),
                ("C".to_owned(), vec![run("C", 10.0, 0.3)]),
            ]),
        };
        let rows = results.rows();
        let total = rows
            .iter()
            .find(|r| r.metric == "QEMU main thread CPU s")
            .unwrap();
        assert_eq!((total.ours, total.c), (Some(0.2), Some(0.3)));
        let per_s = rows
            .iter()
            .find(|r| r.metric == "QEMU main thread CPU ms per guest s")
            .unwrap();
        assert_eq!(
            per_s.ours,
            Some(20.0),
            "both timed runs of ours are 20 ms/s, the untimed one left out"
        );
        assert_eq!(per_s.c, Some(30.0));
        assert_eq!(per_s.goal, None, "the goals stay on the totals");
    }

    /// A video's display work counts the threads the worker hands frames
    /// to, judged against the C worker that encodes them itself; on a video
    /// the worker is judged below C's, on text at half.
    #[test]
    fn a_videos_display_work_counts_the_encoder_threads() {
        let with = |lib: &str, worker: f64, other: f64| GuestRun {
            lib: lib.to_owned(),
            guest_s: 20.0,
            threads: BTreeMap::from([("worker".to_owned(), worker), ("other".to_owned(), other)]),
            ..GuestRun::default()
        };
        let video = GUEST_SCENARIOS
            .iter()
            .find(|s| s.name == "console-video")
            .unwrap();
        let results = GuestResults {
            scenario: video,
            runs: BTreeMap::from([
                ("ours".to_owned(), vec![with("ours", 0.2, 0.3)]),
                ("C".to_owned(), vec![with("C", 0.4, 0.0)]),
            ]),
        };
        let rows = results.rows();
        let worker = rows.iter().find(|r| r.metric == "SPICE Worker CPU s").unwrap();
        assert_eq!(
            (worker.ours, worker.c, worker.goal),
            (Some(0.2), Some(0.4), Some(1.0))
        );
        let all = rows.iter().find(|r| r.metric == DISPLAY_WORK).unwrap();
        assert_eq!((all.ours, all.c, all.goal), (Some(0.5), Some(0.4), Some(1.0)));
        let scroll = GuestResults {
            scenario: &GUEST_SCENARIOS[0],
            runs: results.runs.clone(),
        };
        let rows = scroll.rows();
        let all = rows.iter().find(|r| r.metric == DISPLAY_WORK).unwrap();
        assert_eq!(all.goal, None, "judged on video only, where encoders run");
        let worker = rows.iter().find(|r| r.metric == "SPICE Worker CPU s").unwrap();
        assert_eq!(worker.goal, Some(0.5), "text: half of C's");
    }
}
