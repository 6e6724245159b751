//! `spice-bench`: runs the side-by-side benchmark and reports medians and
//! ratios ours/C. Usually started by `cargo xtask bench`, which builds our
//! library first and passes `--lib-dir`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Parser;
use spice_bench::guest::{self as guest_bench, GuestResults, GuestScenario, GUEST_SCENARIOS};
use spice_bench::host::{self, Library};
use spice_bench::procfs::{self, Machine};
use spice_bench::report::{self, Report, ScenarioResults};
use spice_bench::run::{self, RunConfig, RunResult, SCENARIOS};

/// Side-by-side benchmark of our libspice-server.so.1 against Debian's C library.
#[derive(Debug, Parser)]
#[command(name = "spice-bench")]
struct Args {
    /// Short scenarios, one run each (correctness, not timing: the figures
    /// are printed, but goals are judged only with at least 3 runs per library).
    #[arg(long)]
    quick: bool,
    /// Alternating runs per library and scenario [default: 5, or 1 with --quick].
    #[arg(long)]
    runs: Option<usize>,
    /// Directory holding our libspice-server.so.1 [default: build it with cargo xtask capi].
    #[arg(long)]
    lib_dir: Option<PathBuf>,
    /// Only these scenarios (comma separated): terminal, slideshow, video,
    /// clock, and the real guest's console-scroll, console-idle,
    /// console-video, xorg-x11perf.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Alternating runs per library of the real-guest scenarios [default: 5, or 1 with --quick]:
    /// how long a TCG guest takes for the same work moves by up to 40% between
    /// runs on a shared machine, and its QEMU threads' CPU with it.
    #[arg(long)]
    guest_runs: Option<usize>,
    /// Skip the host-alone runs (no client).
    #[arg(long)]
    no_baseline: bool,
    /// Count the encodings on the display channel (one more run per library
    /// through a proxy) [default: on for full runs].
    #[arg(long)]
    image_stats: Option<bool>,
    /// Replace the figures in this Markdown file [default: BENCHMARKS.md after
    /// a full run of every scenario with the host's defaults].
    #[arg(long)]
    write_md: Option<PathBuf>,
    /// Do not touch BENCHMARKS.md.
    #[arg(long)]
    no_write: bool,
    /// Where to write every run as JSON [default: target/bench/results[-quick].json].
    #[arg(long)]
    json: Option<PathBuf>,
    /// Extra argument for the host, repeatable (for example
    /// `--host-arg=--compression --host-arg=lz`).
    #[arg(long = "host-arg", allow_hyphen_values = true)]
    host_args: Vec<String>,
    /// Extra host argument for our library's runs only, repeatable: compares
    /// a setting of ours with the C library's defaults (for example
    /// `--ours-host-arg=--video-codecs --ours-host-arg=gstreamer:vp8` against
    /// C's MJPEG stream).
    #[arg(long = "ours-host-arg", allow_hyphen_values = true)]
    ours_host_args: Vec<String>,
}

/// Host-alone runs per library and scenario (at most; never more than `--runs`).
const ALONE_RUNS: usize = 3;

fn shell(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn progress(r: &RunResult) {
    let ms = |l: Option<f64>| l.map_or_else(|| "—".into(), |l| format!("{l:.0} ms"));
    let (latency, handover) = (ms(r.latency_ms), ms(r.handover_latency_ms));
    eprintln!(
        "  {:<9} {:<4}: cpu {:.2} s ({:.2} s scenario, library {}), display {:.2} MB ({:.2} MB scenario), \
         latency {handover} from hand-over ({latency} from drawing), exact {}, peak {:.1} MB{}",
        r.scenario,
        r.lib,
        r.cpu_s,
        r.cpu_scenario_s,
        r.library_cpu_s
            .map_or_else(|| "—".into(), |s| format!("{s:.3} s")),
        r.display_bytes as f64 / 1e6,
        r.display_bytes_scenario as f64 / 1e6,
        r.exact,
        r.peak_kib as f64 / 1024.0,
        r.error
            .as_ref()
            .map(|e| format!(", FAILED: {e}"))
            .unwrap_or_default()
    );
}

fn main() -> Result<()> {
    let args = Args::parse();
    let root = host::workspace_root();
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 5 }).max(1);
    let wanted = |name: &str| args.scenarios.is_empty() || args.scenarios.iter().any(|s| s == name);
    for name in &args.scenarios {
        if run::scenario(name).is_none() && !GUEST_SCENARIOS.iter().any(|g| g.name == name) {
            bail!("no scenario {name:?}");
        }
    }
    let scenarios: Vec<&'static run::Scenario> = SCENARIOS.iter().filter(|s| wanted(s.name)).collect();
    let guest_scenarios: Vec<&'static GuestScenario> =
        GUEST_SCENARIOS.iter().filter(|s| wanted(s.name)).collect();
    let guest_runs = args.guest_runs.unwrap_or(if args.quick { 1 } else { 5 }).max(1);
    let image_stats = args.image_stats.unwrap_or(!args.quick);
    let write_md = if args.no_write {
        None
    } else if let Some(p) = &args.write_md {
        Some(p.clone())
    } else if !args.quick
        && args.scenarios.is_empty()
        && args.host_args.is_empty()
        && args.ours_host_args.is_empty()
    {
        Some(root.join("BENCHMARKS.md"))
    } else {
        None
    };

    let machine = Machine::read();
    let started = std::time::Instant::now();
    let date = shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let ours_dir = match &args.lib_dir {
        Some(d) => d.clone(),
        None => host::build_our_library()?,
    };
    let ours = Library::ours(&ours_dir);
    let c = Library::debian();
    for lib in [&ours, &c] {
        lib.file()
            .with_context(|| format!("{}: no {} in {}", lib.name, host::SONAME, lib.dir.display()))?;
    }
    let out_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("bench");
    let binary = host::compile_host(&out_dir)?;
    eprintln!(
        "spice-bench: {} run(s) per library, scenarios {:?}; ours = {}, C = {}",
        runs,
        scenarios.iter().map(|s| s.name).collect::<Vec<_>>(),
        ours.file()?.display(),
        c.file()?.display()
    );

    let mut results = Vec::new();
    for scenario in scenarios {
        let mut config = RunConfig::new(scenario, args.quick);
        config.host_args = args.host_args.clone();
        // Our library's runs get the `--ours-host-arg`s too.
        let config_for = |lib: &Library| {
            let mut config = config.clone();
            if lib.name == ours.name {
                config.host_args.extend(args.ours_host_args.iter().cloned());
            }
            config
        };
        let mut sr = ScenarioResults::new(scenario);
        eprintln!("{}: {}", scenario.name, scenario.description);
        for i in 0..runs {
            let order = if i % 2 == 0 { [&ours, &c] } else { [&c, &ours] };
            for lib in order {
                let r = match run::run_with_client(&binary, lib, &config_for(lib), false) {
                    Ok((r, _)) => r,
                    Err(e) => RunResult {
                        lib: lib.name.clone(),
                        scenario: scenario.name.to_owned(),
                        error: Some(format!("{e:#}")),
                        ..RunResult::default()
                    },
                };
                progress(&r);
                sr.runs.entry(lib.name.clone()).or_default().push(r);
            }
            // The host-alone baseline is subtracted from every run's CPU, so
            // it gets a median of its own: one run of it is as noisy as any
            // other run, and small library figures would be mostly its noise.
            if !args.no_baseline && i < ALONE_RUNS {
                for lib in order {
                    match run::run_alone(&binary, lib, &config_for(lib)) {
                        Ok(cpu) => {
                            eprintln!(
                                "  {:<9} {:<4}: host alone {cpu:.2} s CPU",
                                scenario.name, lib.name
                            );
                            sr.alone.entry(lib.name.clone()).or_default().push(cpu);
                        }
                        Err(e) => {
                            eprintln!("  {:<9} {:<4}: host alone FAILED: {e:#}", scenario.name, lib.name)
                        }
                    }
                }
            }
        }
        if image_stats {
            for lib in [&ours, &c] {
                match run::run_with_client(&binary, lib, &config_for(lib), true) {
                    Ok((r, Some(stats))) => {
                        sr.images.insert(lib.name.clone(), stats);
                        if let Some(quality) = r.quality {
                            sr.quality.insert(lib.name.clone(), quality);
                        }
                    }
                    Ok((_, None)) => {}
                    Err(e) => eprintln!("  {:<9} {:<4}: proxy run FAILED: {e:#}", scenario.name, lib.name),
                }
            }
        }
        results.push(sr);
    }

    let mut guest_results = Vec::new();
    for scenario in guest_scenarios {
        eprintln!("{} (real guest): {}", scenario.name, scenario.description);
        let mut gr = GuestResults {
            scenario,
            runs: Default::default(),
        };
        for i in 0..guest_runs {
            let order = if i % 2 == 0 { [&ours, &c] } else { [&c, &ours] };
            for lib in order {
                let r = guest_bench::run(lib, scenario, args.quick);
                eprintln!(
                    "  {:<14} {:<4}: QEMU main {:.2} s, worker {:.2} s, vCPU {:.2} s, client {:.2} s, \
                     display {:.2} MB, {} invalidates, guest {:.1} s, latency {}{}",
                    r.scenario,
                    r.lib,
                    r.thread("main"),
                    r.thread("worker"),
                    r.thread("vcpu"),
                    r.client_cpu_s,
                    r.display_bytes as f64 / 1e6,
                    r.invalidates,
                    r.guest_s,
                    r.latency_ms.map_or_else(|| "—".into(), |l| format!("{l:.0} ms")),
                    r.error
                        .as_ref()
                        .map(|e| format!(", FAILED: {e}"))
                        .unwrap_or_default()
                );
                gr.runs.entry(lib.name.clone()).or_default().push(r);
            }
        }
        guest_results.push(gr);
    }

    let versions = format!(
        "C library: Debian libspice-server1 {}; client: spice-gtk {}",
        procfs::debian_package_version("libspice-server1").unwrap_or_else(|| "?".into()),
        procfs::debian_package_version("gir1.2-spiceclientglib-2.0").unwrap_or_else(|| "?".into())
    );
    let report = Report {
        machine,
        quick: args.quick,
        runs,
        date,
        minutes: started.elapsed().as_secs_f64() / 60.0,
        commit: shell(
            "git",
            &["-C", &root.to_string_lossy(), "describe", "--always", "--dirty"],
        )
        .unwrap_or_default(),
        versions,
        scenarios: results,
        guest: guest_results,
    };
    let md = report.markdown();
    println!("{md}");
    let json_path = args.json.clone().unwrap_or_else(|| {
        out_dir.join(if args.quick {
            "results-quick.json"
        } else {
            "results.json"
        })
    });
    std::fs::write(&json_path, serde_json::to_string_pretty(&report.to_json())?)?;
    eprintln!("spice-bench: every run in {}", json_path.display());
    if let Some(path) = write_md {
        report::write_into(&path, &md)?;
        eprintln!("spice-bench: figures written into {}", path.display());
    }
    if !report.all_exact() {
        bail!("some runs did not show the last frame pixel-exact (see above)");
    }
    Ok(())
}
