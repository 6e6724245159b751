//! Micro-benchmarks: MB/s and ratio per codec on the same synthetic images.
//! Run with `cargo test --release -p spice-codec -- --ignored --nocapture bench`.

use crate::test_images;
use std::time::{Duration, Instant};

/// Runs `f` until about `budget` has passed; returns the best time of one run.
fn time(budget: Duration, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    let mut best = Duration::MAX;
    let mut runs = 0;
    while runs < 3 || start.elapsed() < budget {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
        runs += 1;
    }
    best
}

fn report(codec: &str, name: &str, raw: usize, packed: usize, enc: Duration, dec: Duration) {
    let mbs = |d: Duration| raw as f64 / d.as_secs_f64() / 1e6;
    println!(
        "{codec:<10} {name:<22} ratio {:>7.2}  encode {:>8.1} MB/s  decode {:>8.1} MB/s  ({raw} -> {packed} bytes)",
        raw as f64 / packed as f64,
        mbs(enc),
        mbs(dec),
    );
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_lz_and_lz4() {
    use crate::{lz, lz4, DecodeLimits};
    let budget = Duration::from_millis(300);
    let limits = DecodeLimits::default();
    for img in test_images::bench() {
        let r = img.as_ref();
        let mut out = Vec::new();
        let mut enc = lz::LzEncoder::new();
        let t_enc = time(budget, || {
            out.clear();
            enc.encode_rgb32(&r, &mut out).unwrap();
        });
        let t_dec = time(budget, || {
            lz::decode(&out, &limits).unwrap();
        });
        report("lz rgb32", &img.name, img.bytes(), out.len(), t_enc, t_dec);

        // LZ_PLT (8 bit) when the image has at most 256 colours: the time
        // includes palettizing; the palette's bytes are counted.
        if let Some(p) = lz::palettize(&r, 256) {
            let mut out = Vec::new();
            let t_enc = time(budget, || {
                out.clear();
                let p = lz::palettize(&r, 256).unwrap();
                enc.encode_plt8(img.width, img.height, &p.indices, &mut out)
                    .unwrap();
            });
            let t_dec = time(budget, || {
                let d = lz::decode(&out, &limits).unwrap();
                d.palette_to_rgb32(&p.palette).unwrap();
            });
            let packed = out.len() + 10 + 4 * p.palette.len();
            report("lz plt8", &img.name, img.bytes(), packed, t_enc, t_dec);
        }

        let mut out = Vec::new();
        let mut enc = lz4::Lz4Encoder::new();
        let t_enc = time(budget, || {
            out.clear();
            enc.encode(&r, lz4::FMT_32BIT, &mut out).unwrap();
        });
        let t_dec = time(budget, || {
            lz4::decode(&out, img.width, img.height, &limits).unwrap();
        });
        report("lz4", &img.name, img.bytes(), out.len(), t_enc, t_dec);
    }
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_jpeg() {
    use crate::jpeg;
    let budget = Duration::from_millis(300);
    for img in test_images::bench() {
        let r = img.as_ref();
        let mut out = Vec::new();
        let t_enc = time(budget, || {
            out.clear();
            jpeg::encode_rgb32(&r, jpeg::DEFAULT_QUALITY, &mut out).unwrap();
        });
        // An independent decoder (spice-gtk uses libjpeg), for scale only.
        let t_dec = time(budget, || {
            jpeg_decoder::Decoder::new(&out[..]).decode().unwrap();
        });
        report("jpeg q85", &img.name, img.bytes(), out.len(), t_enc, t_dec);
    }
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_i420() {
    use crate::yuv::{self, ChromaSiting, I420Layout, Matrix};
    let budget = Duration::from_millis(300);
    for img in test_images::bench() {
        let r = img.as_ref();
        if r.width % 2 != 0 || r.height % 2 != 0 {
            continue;
        }
        let mut out = vec![0; I420Layout::new(r.width, r.height).size];
        for siting in [ChromaSiting::Centered, ChromaSiting::HorizontallyCosited] {
            let t = time(budget, || {
                yuv::bgrx_to_i420(&r, Matrix::Bt709, siting, &mut out).unwrap();
            });
            let mbs = img.bytes() as f64 / t.as_secs_f64() / 1e6;
            println!(
                "i420 {:<20} {:<22} {mbs:>8.1} MB/s",
                format!("{siting:?}"),
                img.name
            );
        }
    }
}
