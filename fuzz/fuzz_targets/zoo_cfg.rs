#![no_main]
// The property lives in the library (zkscale::fuzzing), so tests/fuzz_regressions.rs replays
// the same check on every crasher kept.
libfuzzer_sys::fuzz_target!(|data: &[u8]| zkscale::fuzzing::zoo_cfg(data));
