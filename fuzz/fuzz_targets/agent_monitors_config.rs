#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spice_fuzzing::oracles::agent_monitors_config(data));
