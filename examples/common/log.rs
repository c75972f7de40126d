//! A minimal stderr logger for the examples: level from `VOLLEY_LOG` (error, warn, info, debug,
//! trace; default info). Applications use whatever `log` backend they like.

use log::{Level, Log, Metadata, Record};

struct Stderr(Level);

impl Log for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= self.0
    }
    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("[{:<5} {}] {}", r.level(), r.target(), r.args());
        }
    }
    fn flush(&self) {}
}

/// Install the logger once.
pub fn init() {
    let level = match std::env::var("VOLLEY_LOG").unwrap_or_default().as_str() {
        "error" => Level::Error,
        "warn" => Level::Warn,
        "debug" => Level::Debug,
        "trace" => Level::Trace,
        "off" => return,
        _ => Level::Info,
    };
    let logger: &'static Stderr = Box::leak(Box::new(Stderr(level)));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level.to_level_filter());
    }
}
