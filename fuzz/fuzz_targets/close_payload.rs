//! Fuzz target `close_payload`: see `checks::close_payload` for what it checks.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::close_payload(data));
