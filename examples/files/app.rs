//! The files application: a volley [`Factory`] (`FilesApp`) that serves the page and accepts
//! WebSocket upgrades on `/ws`, and the per-connection [`Handler`] (`Session`) that stores
//! uploads in a directory and sends files back.
//!
//! Where volley does the work:
//! - **streaming receive**: every message over 64 KiB reaches `Session::on_chunk` in pieces as
//!   its bytes arrive (`Config::streaming`), each written to the part file and hashed at once,
//!   so an upload costs the server a read buffer, whatever the size of the file or of the
//!   messages it comes in (the page sends 1 MiB slices; one message of 2 GiB works the same);
//! - **paced sending**: a download is read from disk only as fast as the socket takes it:
//!   `Session::pump` stops while `ctx.buffered_amount()` is over 4 MiB and resumes from
//!   `on_drain`.
//!
//! The disk work is done on the worker thread, between socket events: fine for local disks
//! (a write of a chunk to the page cache takes microseconds); an application on slow storage
//! would hand the chunks to a thread of its own.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

// Serving the page's files, shared with the chat example.
#[path = "../common/page.rs"]
mod page;

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use volley::{
    Chunk, CloseCode, CloseFrame, Config, Context, DeflateMode, Error, Factory, Handler, Message,
    Request, Response, Streaming, Upgrade,
};

// The page, embedded at compile time: one binary, no build step.
const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");
/// A document with a folded corner, so the tab has an icon (and asks for nothing missing).
const FAVICON_SVG: &str = concat!(
    r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><path fill="#0f766e" "##,
    r##"d="M7 2h12l8 8v18a2 2 0 0 1-2 2H7a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2zm11 1v8h8z"/></svg>"##,
);
/// Messages larger than this reach `on_chunk` in pieces; smaller ones come whole.
pub const STREAM_OVER: usize = 64 << 10;
/// The page sends uploads in binary messages of this size, and downloads come in messages of
/// this size (so the page can show their progress: a browser hands over a message only whole).
pub const PIECE: usize = 1 << 20;
/// A download stops reading from disk while this much waits for the socket.
const HIGH_WATER: usize = 4 << 20;

/// The application's settings.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// Where uploads are stored (and downloads read from).
    pub dir: PathBuf,
    /// The largest upload accepted, in bytes.
    pub max_size: u64,
}

impl FilesConfig {
    /// `base` with what the application needs from volley.
    pub fn server_config(&self, base: Config) -> Config {
        // Anything over 64 KiB is streamed, up to the largest file (one message may carry a
        // whole file), so whole messages are small and the limit on them can be too.
        let streaming = Streaming::over(STREAM_OVER).max_size(self.max_size);
        base.streaming(Some(streaming))
            .max_message_size(STREAM_OVER)
            // Files are mostly compressed already, and compression would cost CPU on both ends
            // for nothing: declined.
            .deflate(DeflateMode::Off)
    }
}

/// The application, shared by the worker threads: serves the page, accepts upgrades on `/ws`.
#[derive(Debug, Clone)]
pub struct FilesApp {
    config: Arc<FilesConfig>,
}

impl FilesApp {
    /// Serve `config.dir` (which must exist).
    pub fn new(config: FilesConfig) -> Self {
        FilesApp {
            config: Arc::new(config),
        }
    }
}

impl Factory for FilesApp {
    type Handler = Session;

    fn upgrade(&self, req: &Request<'_>) -> Upgrade<Session> {
        if req.path() != "/ws" {
            return Upgrade::reject(404, "the WebSocket is at /ws\n");
        }
        // Only pages served by this server may connect (the Origin's host:port must be the
        // Host): another site must not upload through its visitors' browsers.
        if let Some(origin) = req.origin() {
            let authority = origin.split_once("://").map(|(_, a)| a);
            if authority.is_none() || authority != req.header("host") {
                log::warn!("{}: refused origin {origin:?}", req.peer_addr());
                return Upgrade::reject(403, "origin not allowed\n");
            }
        }
        Upgrade::accept(Session {
            config: self.config.clone(),
            upload: None,
            download: None,
        })
    }

    fn http(&self, req: &Request<'_>) -> Response {
        page::serve(
            req,
            &[
                ("/", "text/html; charset=utf-8", INDEX_HTML),
                ("/index.html", "text/html; charset=utf-8", INDEX_HTML),
                ("/app.js", "text/javascript; charset=utf-8", APP_JS),
                ("/style.css", "text/css; charset=utf-8", STYLE_CSS),
                ("/favicon.svg", "image/svg+xml", FAVICON_SVG),
                ("/favicon.ico", "image/svg+xml", FAVICON_SVG),
            ],
        )
    }
}

/// What the page sends, as JSON text messages.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientMsg {
    /// Store a file: `size` bytes follow in binary messages, whose SHA-256 is `sha256` (hex).
    Upload {
        name: String,
        size: u64,
        sha256: String,
    },
    /// Abandon the upload under way: its part file is deleted.
    Cancel,
    /// Send a stored file back.
    Download { name: String },
    /// The stored files.
    List,
}

/// An upload under way.
#[derive(Debug)]
struct Upload {
    name: String,
    size: u64,
    /// The SHA-256 the page announced, lowercase hex.
    expected: String,
    file: File,
    part: PartFile,
    hasher: Sha256,
    received: u64,
    /// `received` when the last progress message went out.
    acked: u64,
    started: Instant,
}

/// The file an upload is written to until complete; deleted when dropped unless kept (renamed
/// to its final name): on a cancel, a failure, a closed connection and a panic alike.
#[derive(Debug)]
struct PartFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = fs::remove_file(&self.path) {
                log::warn!("cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

/// A download under way.
#[derive(Debug)]
struct Download {
    name: String,
    file: File,
    remaining: u64,
    hasher: Sha256,
}

/// One connection: at most one upload and one download at a time.
#[derive(Debug)]
pub struct Session {
    config: Arc<FilesConfig>,
    upload: Option<Upload>,
    download: Option<Download>,
}

impl Handler for Session {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        log::debug!("{}: connected", ctx.peer_addr());
        let hello = json!({
            "type": "hello",
            "max_size": self.config.max_size,
            "piece": PIECE,
            "files": list_files(&self.config.dir),
        });
        let _ = ctx.send_text(&hello.to_string());
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        match msg.as_text() {
            // Binary messages up to 64 KiB (the last slice of a file, small files) come whole.
            None => self.data(ctx, msg.as_bytes(), true),
            Some(text) => match serde_json::from_str::<ClientMsg>(text) {
                Ok(m) => self.command(ctx, m),
                Err(e) => send_error(ctx, "request", &format!("bad message: {e}")),
            },
        }
    }

    fn on_chunk(&mut self, ctx: &mut Context<'_>, chunk: Chunk) {
        if chunk.is_text() {
            // A text message over 64 KiB: not a control message of ours.
            if chunk.is_first() {
                ctx.close(CloseCode::TOO_BIG, "control messages are small");
            }
            return;
        }
        self.data(ctx, chunk.as_bytes(), chunk.is_last());
    }

    fn on_drain(&mut self, ctx: &mut Context<'_>) {
        self.pump(ctx);
    }

    fn on_error(&mut self, ctx: &mut Context<'_>, err: Error) {
        log::info!("{}: {err}", ctx.peer_addr());
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, frame: CloseFrame) {
        if let Some(up) = self.upload.take() {
            log::info!(
                "{}: closed ({}) during the upload of {:?} at {} of {} bytes: deleted",
                ctx.peer_addr(),
                frame.code,
                up.name,
                up.received,
                up.size
            );
        }
    }
}

impl Session {
    fn command(&mut self, ctx: &mut Context<'_>, msg: ClientMsg) {
        match msg {
            ClientMsg::Upload { name, size, sha256 } => {
                if let Err(e) = self.start_upload(ctx, name, size, sha256) {
                    send_error(ctx, "upload", &e);
                }
            }
            ClientMsg::Cancel => {
                let received = self.upload.take().map_or(0, |up| {
                    log::info!(
                        "{}: cancelled {:?} at {} of {} bytes",
                        ctx.peer_addr(),
                        up.name,
                        up.received,
                        up.size
                    );
                    up.received
                });
                // Dropping the upload deleted its part file.
                send(ctx, json!({"type": "cancelled", "received": received}));
            }
            ClientMsg::Download { name } => {
                if let Err(e) = self.start_download(ctx, name) {
                    send_error(ctx, "download", &e);
                }
            }
            ClientMsg::List => {
                let files = list_files(&self.config.dir);
                send(ctx, json!({"type": "list", "files": files}));
            }
        }
    }

    fn start_upload(
        &mut self,
        ctx: &mut Context<'_>,
        name: String,
        size: u64,
        sha256: String,
    ) -> Result<(), String> {
        if self.upload.is_some() {
            return Err("an upload is under way: cancel it first".into());
        }
        check_name(&name)?;
        if size > self.config.max_size {
            return Err(format!(
                "{name} is {size} bytes, over the limit of {}",
                self.config.max_size
            ));
        }
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("sha256: 64 hex digits".into());
        }
        // A hidden name no upload can take (names cannot start with a dot), unique per
        // connection: two uploads of the same name do not mix.
        let path = self.config.dir.join(format!(".{name}.{}.part", ctx.id()));
        let file = File::create_new(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        log::info!("{}: receiving {name:?}, {size} bytes", ctx.peer_addr());
        self.upload = Some(Upload {
            name: name.clone(),
            size,
            expected: sha256.to_ascii_lowercase(),
            file,
            part: PartFile { path, keep: false },
            hasher: Sha256::new(),
            received: 0,
            acked: 0,
            started: Instant::now(),
        });
        send(ctx, json!({"type": "ready", "name": name}));
        if size == 0 {
            self.finish_upload(ctx);
        }
        Ok(())
    }

    /// The next bytes of the upload, from a whole message or a chunk of one (`end`: the
    /// message's last bytes).
    fn data(&mut self, ctx: &mut Context<'_>, bytes: &[u8], end: bool) {
        let Some(up) = self.upload.as_mut() else {
            // Slices the page had sent before it saw a cancel or an error go: dropped.
            return;
        };
        if up.received + bytes.len() as u64 > up.size {
            self.upload = None;
            return send_error(ctx, "upload", "more bytes than announced: upload abandoned");
        }
        if let Err(e) = up.file.write_all(bytes) {
            log::warn!("{}: writing {:?}: {e}", ctx.peer_addr(), up.name);
            self.upload = None;
            return send_error(ctx, "upload", &format!("cannot store the file: {e}"));
        }
        up.hasher.update(bytes);
        up.received += bytes.len() as u64;
        if up.received == up.size {
            self.finish_upload(ctx);
        } else if end || up.received - up.acked >= PIECE as u64 {
            // The page counts these: they are its progress bar and its flow control.
            up.acked = up.received;
            send(ctx, json!({"type": "progress", "received": up.received}));
        }
    }

    fn finish_upload(&mut self, ctx: &mut Context<'_>) {
        let Some(mut up) = self.upload.take() else {
            return;
        };
        let sha256 = hex(&up.hasher.finalize_reset());
        let ok = sha256 == up.expected;
        let secs = up.started.elapsed().as_secs_f64();
        let mut reply = json!({
            "type": "stored", "name": up.name, "size": up.size, "sha256": sha256, "ok": ok,
        });
        if ok {
            let target = self.config.dir.join(&up.name);
            // Not fsynced: the worker thread would wait for the disk. An application that
            // promises durability syncs on a thread of its own before answering.
            match fs::rename(&up.part.path, &target) {
                Ok(()) => up.part.keep = true,
                Err(e) => {
                    reply["ok"] = false.into();
                    reply["error"] = format!("cannot store the file: {e}").into();
                }
            }
        } else {
            reply["error"] = "SHA-256 mismatch: the file was not stored".into();
        }
        log::info!(
            "{}: {} {:?}: {} bytes in {secs:.2} s ({:.0} MiB/s), SHA-256 {sha256}",
            ctx.peer_addr(),
            if up.part.keep { "stored" } else { "refused" },
            up.name,
            up.size,
            up.size as f64 / (1 << 20) as f64 / secs.max(1e-6),
        );
        send(ctx, reply);
    }

    fn start_download(&mut self, ctx: &mut Context<'_>, name: String) -> Result<(), String> {
        if self.download.is_some() {
            return Err("a download is under way".into());
        }
        check_name(&name)?;
        let path = self.config.dir.join(&name);
        let file = File::open(&path).map_err(|e| format!("{name}: {e}"))?;
        let meta = file.metadata().map_err(|e| format!("{name}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{name}: not a file"));
        }
        log::info!(
            "{}: sending {name:?}, {} bytes",
            ctx.peer_addr(),
            meta.len()
        );
        send(
            ctx,
            json!({"type": "file", "name": name, "size": meta.len()}),
        );
        self.download = Some(Download {
            name,
            file,
            remaining: meta.len(),
            hasher: Sha256::new(),
        });
        self.pump(ctx);
        Ok(())
    }

    /// Send the download's next pieces until 4 MiB wait for the socket (then `on_drain` calls
    /// again), and its SHA-256 after the last one.
    fn pump(&mut self, ctx: &mut Context<'_>) {
        while ctx.buffered_amount() < HIGH_WATER {
            let Some(down) = self.download.as_mut() else {
                return;
            };
            if down.remaining == 0 {
                let sha256 = hex(&down.hasher.finalize_reset());
                log::info!("{}: sent {:?}", ctx.peer_addr(), down.name);
                self.download = None;
                send(ctx, json!({"type": "sent", "sha256": sha256}));
                return;
            }
            let n = down.remaining.min(PIECE as u64) as usize;
            let mut buf = vec![0; n];
            if let Err(e) = down.file.read_exact(&mut buf) {
                self.download = None;
                return send_error(ctx, "download", &format!("cannot read the file: {e}"));
            }
            down.hasher.update(&buf);
            down.remaining -= n as u64;
            if ctx.send(Message::binary(buf)).is_err() {
                self.download = None; // closing, or over the outbound limit
                return;
            }
        }
        ctx.notify_drain();
    }
}

fn send(ctx: &mut Context<'_>, msg: Value) {
    let _ = ctx.send_text(&msg.to_string());
}

/// An error about `what`: "upload", "download" (the one under way, or a request for one) or
/// "request" (a message that could not be read).
fn send_error(ctx: &mut Context<'_>, what: &str, text: &str) {
    send(ctx, json!({"type": "error", "for": what, "text": text}));
}

/// A file name, not a path: no separators, no leading dot (hidden files, `..`, part files).
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bad file name {name:?}: 1-255 bytes, no / \\ or leading dot"
        ))
    }
}

/// The stored files (not the hidden part files), by name.
fn list_files(dir: &Path) -> Vec<Value> {
    let mut files: Vec<(String, u64)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let meta = e.metadata().ok()?;
            (meta.is_file() && check_name(&name).is_ok()).then_some((name, meta.len()))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|(name, size)| json!({"name": name, "size": size}))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a.txt", "photo 1.jpg", "résumé.pdf", "x..y"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "..\\x",
            "a\nb",
            &"x".repeat(256),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0, 0xab, 0x7f]), "00ab7f");
    }
}
