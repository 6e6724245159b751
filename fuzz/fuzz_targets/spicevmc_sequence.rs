#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spice_fuzzing::oracles::spicevmc_sequence(data));
