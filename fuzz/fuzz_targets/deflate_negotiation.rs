//! Fuzz target `deflate_negotiation`: see `checks::deflate_negotiation` for what it checks.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::deflate_negotiation(data));
