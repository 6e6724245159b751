//! Replays the committed fuzzing corpus and regressions on stable, and shows that
//! random and truncated inputs never break an oracle.
//!
//! A corpus directory that is missing or empty fails the test: the corpus is
//! part of the test suite, not an optional extra.

use std::path::{Path, PathBuf};

use spice_fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every file of `dir`, sorted by name, or `None` if `dir` does not exist.
fn read_dir_files(dir: &Path) -> Option<Vec<(PathBuf, Vec<u8>)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("reading {}: {e}", dir.display()),
    };
    let mut files: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
                .path()
        })
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            (path, bytes)
        })
        .collect();
    files.sort();
    Some(files)
}

/// Runs `oracle` on `input`, naming the input if it panics.
fn replay(oracle: fn(&[u8]), what: &dyn std::fmt::Display, input: &[u8]) {
    if std::panic::catch_unwind(|| oracle(input)).is_err() {
        panic!(
            "oracle panicked on {what} ({} bytes): {}",
            input.len(),
            hex(input)
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The committed corpus of each target, plus its regressions, plus its seeds.
fn inputs_of(target: &str) -> Vec<(String, Vec<u8>)> {
    let corpus_dir = fuzz_dir().join("corpus").join(target);
    let corpus = read_dir_files(&corpus_dir)
        .unwrap_or_else(|| panic!("corpus directory {} is missing", corpus_dir.display()));
    assert!(
        !corpus.is_empty(),
        "corpus directory {} is empty",
        corpus_dir.display()
    );
    let regressions = read_dir_files(&fuzz_dir().join("regressions").join(target)).unwrap_or_default();
    corpus
        .into_iter()
        .chain(regressions)
        .map(|(path, bytes)| (path.display().to_string(), bytes))
        .chain(
            spice_fuzzing::seeds::for_target(target)
                .into_iter()
                .map(|(name, bytes)| (format!("built-in seed {name}"), bytes)),
        )
        .collect()
}

#[test]
fn corpus_and_regressions_replay_cleanly() {
    for (target, oracle) in TARGETS {
        let inputs = inputs_of(target);
        for (what, bytes) in &inputs {
            replay(*oracle, what, bytes);
        }
        println!("{target}: replayed {} inputs", inputs.len());
    }
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

const RANDOM_INPUTS: usize = 20_000;

#[test]
fn random_bytes_never_break_an_oracle() {
    for (i, (target, oracle)) in TARGETS.iter().enumerate() {
        let mut rng = Rng(0x5EED_0000 + i as u64);
        let corpus = inputs_of(target);
        for n in 0..RANDOM_INPUTS {
            // Mostly short inputs, some long enough to cross a whole link exchange.
            let len = if n % 8 == 0 { rng.below(600) } else { rng.below(48) };
            // Half of them behind a valid prefix, so random bytes reach the later
            // states (a random link stream rarely gets past the magic).
            let mut input = Vec::new();
            if n % 2 == 1 {
                let (_, base) = &corpus[rng.below(corpus.len())];
                input.extend_from_slice(&base[..rng.below(base.len() + 1)]);
            }
            input.extend(rng.bytes(len));
            replay(*oracle, &format_args!("{target} random input #{n}"), &input);
        }
        println!("{target}: {RANDOM_INPUTS} random inputs");
    }
}

const MAX_PREFIXES: usize = 96;

fn prefix_lengths(len: usize) -> impl Iterator<Item = usize> {
    let step = len.div_ceil(MAX_PREFIXES).max(1);
    (0..len)
        .step_by(step)
        .chain(len.saturating_sub(4).max(1)..len)
        .filter(move |&l| l < len)
}

#[test]
fn truncated_and_mutated_inputs_never_break_an_oracle() {
    for (i, (target, oracle)) in TARGETS.iter().enumerate() {
        let mut rng = Rng(0xC0FF_EE00 + i as u64);
        let inputs = inputs_of(target);
        let mut runs = 0usize;
        for (what, bytes) in &inputs {
            // Prefixes: a read cut anywhere in short inputs, at up to
            // `MAX_PREFIXES` evenly spread points (and the last few bytes) in
            // long ones, so a large corpus stays quick in debug builds.
            for len in prefix_lengths(bytes.len()) {
                replay(*oracle, &format_args!("{what} truncated to {len}"), &bytes[..len]);
                runs += 1;
            }
            // A few random byte flips and a random suffix.
            for round in 0..8 {
                let mut mutated = bytes.clone();
                if !mutated.is_empty() {
                    for _ in 0..=rng.below(3) {
                        let at = rng.below(mutated.len());
                        mutated[at] ^= 1 << rng.below(8);
                    }
                }
                let extra = rng.below(16);
                mutated.extend(rng.bytes(extra));
                replay(*oracle, &format_args!("{what} mutation {round}"), &mutated);
                runs += 1;
            }
        }
        println!("{target}: {runs} truncated or mutated inputs");
    }
}
