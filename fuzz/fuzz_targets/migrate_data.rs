#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spice_fuzzing::oracles::migrate_data(data));
