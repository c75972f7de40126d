//! Files: upload a file from the browser over one WebSocket, with a progress bar and a Cancel
//! button, and download it back; the server streams uploads to disk in bounded memory and
//! checks their SHA-256. The showcase of streaming receive (`Config::streaming`,
//! `Handler::on_chunk`) and of sending paced by the socket (`buffered_amount`, `on_drain`).
//!
//! Run: `cargo run --release --example files` and open the printed address; pick a file (any
//! size up to `--max-size`), watch it go up, then press Download.
//! Flags (`--help`): `--host`, `--port` (default 127.0.0.1:8081, port 0 picks a free one),
//! `--dir DIR` (where files are stored; default a new directory under the system's temporary
//! one, printed at start), `--max-size BYTES` (largest upload, with K, M or G; default 2G).
//! `RUST_LOG=debug` shows connections come and go.
//!
//! What to look at: app.rs (the handler: `on_chunk` writes and hashes each piece as it arrives,
//! `pump` and `on_drain` pace a download), app.js (the page: hashing with
//! `crypto.subtle.digest`, sending 1 MiB slices paced by the server's acknowledgements).

#[path = "../common/log.rs"]
mod logger;
#[path = "../common/serve.rs"]
mod serve;

mod app;

use std::path::PathBuf;

use app::{FilesApp, FilesConfig};
use volley::{Config, Server};

const USAGE: &str = "\
usage: files [--host HOST] [--port PORT] [--dir DIR] [--max-size BYTES]

  --host HOST        address to listen on (default 127.0.0.1)
  --port PORT        port to listen on; 0 picks a free one (default 8081)
  --dir DIR          where uploads are stored, created if missing (default: a new
                     directory under the system's temporary one)
  --max-size BYTES   largest upload, e.g. 500M or 4G (default 2G)";

/// Everything the flags set.
struct Options {
    host: String,
    port: u16,
    dir: Option<PathBuf>,
    max_size: u64,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut opts = Options {
        host: "127.0.0.1".into(),
        port: 8081,
        dir: None,
        max_size: 2 << 30,
    };
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |what: &str| format!("{flag}: {what}, not {value:?}");
        match flag.as_str() {
            "--host" => opts.host = value,
            "--port" => opts.port = value.parse().map_err(|_| bad("a port number"))?,
            "--dir" => opts.dir = Some(value.into()),
            "--max-size" => opts.max_size = parse_size(&value).ok_or_else(|| bad("a size"))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(opts)
}

/// `123`, `64K`, `500M`, `2G` (powers of 1024).
fn parse_size(s: &str) -> Option<u64> {
    let (digits, shift) = match s.as_bytes().last()?.to_ascii_uppercase() {
        b'K' => (&s[..s.len() - 1], 10),
        b'M' => (&s[..s.len() - 1], 20),
        b'G' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

fn main() {
    logger::init();
    let opts = parse_args(std::env::args().skip(1)).unwrap_or_else(|e| {
        if e.is_empty() {
            println!("{USAGE}");
            std::process::exit(0);
        }
        eprintln!("files: {e}\n\n{USAGE}");
        std::process::exit(2);
    });
    let dir = opts.dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("volley-files-{}", std::process::id()))
    });
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("files: cannot create {}: {e}", dir.display());
        std::process::exit(1);
    }
    let config = FilesConfig {
        dir: dir.clone(),
        max_size: opts.max_size,
    };
    let addr = if opts.host.contains(':') {
        format!("[{}]:{}", opts.host, opts.port) // IPv6
    } else {
        format!("{}:{}", opts.host, opts.port)
    };
    let server = Server::builder()
        .config(config.server_config(Config::default()))
        .bind(addr)
        .start(FilesApp::new(config))
        .unwrap_or_else(|e| {
            eprintln!("files: cannot start: {e}");
            std::process::exit(1);
        });
    // Scripts (scripts/browser.sh) read the address from this line.
    println!(
        "files: open http://{}/ in a browser (files in {})",
        server.local_addr(),
        dir.display()
    );
    // Ctrl-C or SIGTERM: close every connection with 1001 after what is queued, then exit
    // (uploads cut short delete their part files).
    serve::until_signal(server, "files");
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("500m"), Some(500 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        for bad in ["", "G", "-1", "1.5G", "1T", "99999999999999G"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }
}
