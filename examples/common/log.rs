//! The examples' logger: `env_logger`, so the level is set the conventional way, with `RUST_LOG`
//! (`RUST_LOG=debug`, `RUST_LOG=volley=debug,warn`, ...; default `info`). `VOLLEY_LOG` (older
//! scripts) is still read when `RUST_LOG` is unset. Applications use whatever `log` backend
//! they like; volley only uses the `log` facade.

/// Install the logger once.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("VOLLEY_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let _ = env_logger::Builder::new()
        .parse_filters(&filter)
        .format_timestamp(None)
        .try_init();
}
