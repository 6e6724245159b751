//! The fuzz oracle on its seeds, on mutations of them, and on random inputs.

use spice_qxl::fuzzing::{fuzz_limits, fuzz_parse, fuzz_seeds, fuzz_slots, FUZZ_BASE};
use spice_qxl::{parse_command, Command, CommandExt, DrawOp, FakeMemory, Guest};

/// xorshift64*: deterministic, no dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Random bytes with plausible pointers (into the input, in the group the
/// command uses), small counts and `-1`s sprinkled past the 16 control bytes.
fn random_input(rng: &mut Rng) -> Vec<u8> {
    let len = 4 + rng.below(1024) as usize;
    let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    // A 4-aligned command past the control bytes, mostly valid types and generations.
    let offset = (16 + 4 * rng.below(len as u64 / 4)) as u16;
    data[..2].copy_from_slice(&offset.to_le_bytes());
    data[2] = rng.below(7) as u8;
    data[3] = (rng.next() as u8) & 0x07 | if rng.below(8) == 0 { 8 } else { 0 };
    let group1 = data[3] & 4 != 0;
    for _ in 0..rng.below(len as u64 / 4 + 1) {
        let at = 16 + rng.below(len as u64 / 4) as usize * 4;
        let target = rng.below(len as u64);
        let pointer = if group1 {
            (1 << 56) | (1 << 48) | target
        } else {
            FUZZ_BASE + target
        };
        let bytes = match rng.below(6) {
            0 => 0u32.to_le_bytes().to_vec(),
            1 => (rng.below(64) as u32).to_le_bytes().to_vec(),
            2 => u32::MAX.to_le_bytes().to_vec(),
            _ => pointer.to_le_bytes().to_vec(),
        };
        if at + bytes.len() <= len {
            data[at..at + bytes.len()].copy_from_slice(&bytes);
        }
    }
    data
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(data.len() as u64) as usize;
        data[at] = match rng.below(3) {
            0 => data[at] ^ (1 << rng.below(8)),
            1 => rng.next() as u8,
            _ => [0, 1, 0x7f, 0x80, 0xff][rng.below(5) as usize],
        };
    }
    if rng.below(8) == 0 {
        data.truncate(rng.below(data.len() as u64) as usize);
    }
    data
}

#[test]
fn seeds_parse_cleanly() {
    let seeds = fuzz_seeds();
    assert!(seeds.len() >= 7);
    for seed in &seeds {
        fuzz_parse(seed);
    }
}

/// The draw seeds are accepted, and between them reach every parsed draw
/// type that has operands to follow (so mutations explore those parsers).
#[test]
fn draw_seeds_reach_stroke_text_and_composite() {
    let mut ops = Vec::new();
    for seed in fuzz_seeds().iter().filter(|s| s[2] == 1) {
        let memory = FakeMemory::from_bytes(FUZZ_BASE, seed.clone());
        let slots = fuzz_slots(seed.len());
        let guest = Guest::new(&slots, &memory).with_limits(fuzz_limits());
        let ext = CommandExt {
            data: FUZZ_BASE + u64::from(u16::from_le_bytes([seed[0], seed[1]])),
            cmd_type: 1,
            group_id: 0,
            flags: u32::from(seed[3] & 3),
        };
        match parse_command(&guest, &ext).command {
            Ok(Command::Draw(d)) => ops.push(d.op),
            other => panic!("draw seed rejected: {other:?}"),
        }
    }
    assert!(ops.iter().any(|op| matches!(op, DrawOp::Copy(_))));
    assert!(ops
        .iter()
        .any(|op| matches!(op, DrawOp::Stroke(s) if s.path.len() == 2 && s.attr.style.len() == 2)));
    assert!(ops
        .iter()
        .any(|op| matches!(op, DrawOp::Text(t) if t.glyphs.len() == 3)));
    assert!(ops.iter().any(
        |op| matches!(op, DrawOp::Composite(c) if c.mask.is_some() && c.mask_transform.is_some() && c.src.cache_me())
    ));
}

#[test]
fn twenty_thousand_random_inputs() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        fuzz_parse(&random_input(&mut rng));
    }
}

#[test]
fn twenty_thousand_mutated_seeds() {
    let seeds = fuzz_seeds();
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for i in 0..20_000 {
        fuzz_parse(&mutate(&mut rng, &seeds[i % seeds.len()]));
    }
}

#[test]
fn degenerate_inputs() {
    for len in 0..64 {
        fuzz_parse(&vec![0; len]);
        fuzz_parse(&vec![0xff; len]);
    }
}
