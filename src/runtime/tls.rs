//! wss:// (cargo feature `tls`): the certificates of a TLS listener ([`TlsConfig`]: PEM files,
//! SNI, a ready `rustls::ServerConfig`), swapped while the server runs
//! (`ServerHandle::reload_tls`), and a TLS connection's byte pump ([`TlsConn`]): ciphertext from
//! the socket through rustls into the worker's read block, queued frames through rustls into
//! one vectored write.
//!
//! rustls runs with the *ring* crypto provider: it builds from crates.io with only the C
//! compiler Rust already needs (aws-lc-rs would also need cmake), and it covers TLS 1.2 and 1.3
//! with ECDSA, Ed25519 and RSA certificates. ALPN offers `http/1.1`.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::UnbufferedServerConnection;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::Error;
use crate::runtime::outqueue::OutQueue;

/// The certificates a TLS listener presents, and its rustls settings.
///
/// ```no_run
/// # fn main() -> Result<(), volley::Error> {
/// use volley::TlsConfig;
/// let tls = TlsConfig::from_pem_files("cert.pem", "key.pem")?
///     // Another certificate for clients that ask for chat.example.org (SNI).
///     .with_sni_pem_files("chat.example.org", "chat-cert.pem", "chat-key.pem")?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<rustls::ServerConfig>,
    /// The certificates this config was built from (None for `from_rustls`), kept so that
    /// `with_sni_*` can add one.
    certs: Option<Certs>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("alpn", &self.config.alpn_protocols.len())
            .field("sni_names", &self.certs.as_ref().map(|c| c.by_name.len()))
            .finish_non_exhaustive()
    }
}

/// The default certificate and those chosen by SNI name (lowercase).
#[derive(Clone, Debug)]
struct Certs {
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let by_name = hello
            .server_name()
            .and_then(|n| self.by_name.get(&n.to_ascii_lowercase()));
        Some(by_name.unwrap_or(&self.default).clone())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(what: impl fmt::Display) -> Error {
    Error::Tls(what.to_string())
}

/// A certificate chain and its private key (PKCS#8, PKCS#1 RSA or SEC1 EC), from PEM.
fn certified_key(chain: &[u8], key: &[u8]) -> Result<Arc<CertifiedKey>, Error> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain)
        .collect::<Result<_, _>>()
        .map_err(|e| tls_error(format!("certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(tls_error("certificate chain: no CERTIFICATE in the PEM"));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key).map_err(|e| tls_error(format!("private key: {e}")))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| tls_error(format!("private key: {e}")))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match()
        .map_err(|e| tls_error(format!("the key does not match the certificate: {e}")))?;
    Ok(Arc::new(ck))
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path)
        .map_err(|e| Error::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display()))))
}

impl TlsConfig {
    /// A certificate chain (leaf first) and its private key from PEM files.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        Self::from_pem(&read(cert_chain.as_ref())?, &read(key.as_ref())?)
    }

    /// A certificate chain (leaf first) and its private key as PEM text.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<Self, Error> {
        Self::from_certs(Certs {
            default: certified_key(cert_chain, key)?,
            by_name: HashMap::new(),
        })
    }

    /// Present this certificate to clients that ask for `name` by SNI (others get the default).
    pub fn with_sni_pem(self, name: &str, cert_chain: &[u8], key: &[u8]) -> Result<Self, Error> {
        let mut certs = self.certs.ok_or_else(|| {
            tls_error("SNI certificates cannot be added to a TlsConfig made from_rustls")
        })?;
        certs
            .by_name
            .insert(name.to_ascii_lowercase(), certified_key(cert_chain, key)?);
        Self::from_certs(certs)
    }

    /// [`TlsConfig::with_sni_pem`] from files.
    pub fn with_sni_pem_files(
        self,
        name: &str,
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        let (chain, key) = (read(cert_chain.as_ref())?, read(key.as_ref())?);
        self.with_sni_pem(name, &chain, &key)
    }

    /// Use a ready rustls configuration as it is (its ALPN protocols should include
    /// `http/1.1` or be empty).
    pub fn from_rustls(config: Arc<rustls::ServerConfig>) -> Self {
        TlsConfig {
            config,
            certs: None,
        }
    }

    /// The rustls configuration new connections get.
    pub fn rustls_config(&self) -> &Arc<rustls::ServerConfig> {
        &self.config
    }

    fn from_certs(certs: Certs) -> Result<Self, Error> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(certs.clone()));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig {
            config: Arc::new(config),
            certs: Some(certs),
        })
    }
}

/// A TLS listener's current configuration: read at every accept, replaced by a reload.
#[derive(Debug)]
pub(crate) struct TlsListener {
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl TlsListener {
    pub fn new(config: TlsConfig) -> Self {
        TlsListener {
            current: RwLock::new(config.config),
        }
    }

    /// New handshakes use `config` from now on; established connections keep theirs.
    pub fn reload(&self, config: TlsConfig) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config.config;
    }

    /// A server-side TLS state for a socket just accepted.
    pub fn accept(&self) -> Result<Box<TlsConn>, rustls::Error> {
        let config = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Ok(Box::new(TlsConn::new(UnbufferedServerConnection::new(
            config,
        )?)))
    }
}

/// A TLS connection: rustls's unbuffered server connection (keys and handshake state only) and
/// the buffers it needs, each allocated only while it holds something. An idle connection keeps
/// none: that is what brings it to ~3.3 KiB (the buffered `ServerConnection` keeps a 4 KiB
/// receive buffer for good).
pub(crate) struct TlsConn {
    conn: UnbufferedServerConnection,
    /// Ciphertext read and not yet processed: part of a record.
    input: Vec<u8>,
    /// Records to send (handshake messages, alerts, encrypted frames) the socket has not taken.
    output: Vec<u8>,
    /// Decrypted plaintext that did not fit the caller's buffer, from `plain_at` on.
    plain: Vec<u8>,
    plain_at: usize,
    /// Our close_notify is queued.
    notified: bool,
    /// The peer's close_notify arrived (or the connection is closed): the end of the stream.
    eof: bool,
}

impl fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConn")
            .field("handshaking", &self.conn.is_handshaking())
            .field("input", &self.input.len())
            .field("output", &self.output.len())
            .finish_non_exhaustive()
    }
}

/// Plaintext encrypted per round of [`TlsConn::write_out`] before the records go out: bounds
/// the ciphertext held for a slow peer (the queue itself is bounded by `max_outbound_bytes`).
const ENCRYPT_BATCH: usize = 64 << 10;
/// Ciphertext read from the socket per read (a full record and then some).
const READ_CHUNK: usize = 17 << 10;

fn invalid(e: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

thread_local! {
    /// Each worker thread's buffer for ciphertext: TLS reads land here and are decrypted in
    /// place, so a connection needs a buffer of its own only for a record cut by a read.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Free a buffer that holds nothing any more.
fn release(buf: &mut Vec<u8>) {
    if buf.is_empty() && buf.capacity() > 0 {
        *buf = Vec::new();
    }
}

/// Append what `encode` writes to `out`, growing `out` as much as it asks.
fn append<E>(
    out: &mut Vec<u8>,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, E>,
    required: impl Fn(&E) -> Option<usize>,
) -> Result<(), E> {
    let start = out.len();
    out.resize(start + 1024, 0);
    loop {
        match encode(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(e) => match required(&e) {
                Some(size) => out.resize(start + size, 0),
                None => {
                    out.truncate(start);
                    return Err(e);
                }
            },
        }
    }
}

fn encode_size(e: &EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
            Some(*required_size)
        }
        _ => None,
    }
}

fn encrypt_size(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
            Some(*required_size)
        }
        _ => None,
    }
}

impl TlsConn {
    fn new(conn: UnbufferedServerConnection) -> Self {
        TlsConn {
            conn,
            input: Vec::new(),
            output: Vec::new(),
            plain: Vec::new(),
            plain_at: 0,
            notified: false,
            eof: false,
        }
    }

    /// Read plaintext into `out` like `Read::read` on the socket: `Ok(0)` at the end of the
    /// stream (the peer's close_notify or FIN), `WouldBlock` when the socket has nothing more.
    /// Handshake records are answered into the output (the caller flushes, see
    /// [`TlsConn::has_output`]). A TLS error sends its alert (best effort) and comes back as
    /// `InvalidData`.
    ///
    /// Ciphertext is read into the worker thread's scratch buffer and decrypted there in place;
    /// only the part of a record a read leaves over is kept by the connection (`input`).
    pub fn read<S: Read + Write>(&mut self, stream: &mut S, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.plain_at < self.plain.len() {
                let n = (self.plain.len() - self.plain_at).min(out.len());
                out[..n].copy_from_slice(&self.plain[self.plain_at..self.plain_at + n]);
                self.plain_at += n;
                if self.plain_at == self.plain.len() {
                    self.plain = Vec::new();
                    self.plain_at = 0;
                }
                return Ok(n);
            }
            if self.eof {
                return Ok(0);
            }
            let result = if self.input.is_empty() {
                SCRATCH.with(|scratch| {
                    let mut scratch = scratch.borrow_mut();
                    if scratch.len() < READ_CHUNK {
                        scratch.resize(READ_CHUNK, 0);
                    }
                    let n = stream.read(&mut scratch[..])?;
                    if n == 0 {
                        return Ok(None);
                    }
                    let (written, used) = self.process(&mut scratch[..n], out)?;
                    // A record cut by the read: its start waits in the connection.
                    self.input.extend_from_slice(&scratch[used..n]);
                    Ok(Some(written))
                })
            } else {
                let mut input = std::mem::take(&mut self.input);
                let have = input.len();
                input.resize(have + READ_CHUNK, 0);
                let r = match stream.read(&mut input[have..]) {
                    Ok(0) => {
                        input.truncate(have);
                        Ok(None)
                    }
                    Ok(n) => {
                        input.truncate(have + n);
                        self.process(&mut input, out).map(|(written, used)| {
                            input.drain(..used);
                            Some(written)
                        })
                    }
                    Err(e) => {
                        input.truncate(have);
                        Err(e)
                    }
                };
                release(&mut input);
                self.input = input;
                r
            };
            match result {
                Ok(None) => return Ok(0),
                Ok(Some(0)) => continue,
                Ok(Some(n)) => return Ok(n),
                Err(e) => {
                    if e.kind() == io::ErrorKind::InvalidData {
                        // The alert goes out now: the connection closes on this error.
                        let _ = stream.write(&self.output);
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Run rustls over `input` (decrypting in place): handshake messages go to the output,
    /// application data into `out` (the rest into `plain`). Returns the bytes written into
    /// `out` and the bytes of `input` used (what is left is the start of a record).
    fn process(&mut self, input: &mut [u8], out: &mut [u8]) -> io::Result<(usize, usize)> {
        let mut written = 0;
        let mut used = 0;
        loop {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut input[used..]);
            let state = match state {
                Ok(state) => state,
                Err(e) => {
                    self.queue_alert(&mut input[used..]);
                    return Err(invalid(e));
                }
            };
            let mut blocked = false;
            match state {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        let record = record.map_err(invalid)?;
                        // Each record's bytes are discarded with the status's own.
                        discard += record.discard;
                        let payload = record.payload;
                        let k = payload.len().min(out.len() - written);
                        out[written..written + k].copy_from_slice(&payload[..k]);
                        written += k;
                        self.plain.extend_from_slice(&payload[k..]);
                    }
                }
                ConnectionState::EncodeTlsData(mut data) => {
                    append(&mut self.output, |o| data.encode(o), encode_size).map_err(invalid)?;
                }
                // Queued in `output`: the flush sends it.
                ConnectionState::TransmitTlsData(data) => data.done(),
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    self.eof = true;
                    blocked = true;
                }
                ConnectionState::BlockedHandshake | ConnectionState::WriteTraffic(_) => {
                    blocked = true;
                }
                // No early data is accepted; anything else new: stop here.
                _ => blocked = true,
            }
            used += discard;
            if blocked {
                return Ok((written, used));
            }
        }
    }

    /// After an error, rustls has an alert to send: encode it into the output. `input` is the
    /// buffer of the failed call: rustls's handshake deframer remembers how far into it it got
    /// (a handshake message joined from several records stays in the caller's buffer), so
    /// every call must see the same bytes (an empty slice there would be out of its range).
    ///
    /// One call only: rustls hands a queued alert out before it looks at the input again, and
    /// a second look would fail again and try a second fatal alert (which rustls asserts
    /// against). The connection closes right after, so nothing more is needed.
    fn queue_alert(&mut self, input: &mut [u8]) {
        let UnbufferedStatus { state, .. } = self.conn.process_tls_records(input);
        if let Ok(ConnectionState::EncodeTlsData(mut data)) = state {
            let _ = append(&mut self.output, |o| data.encode(o), encode_size);
        }
    }

    /// Encrypt `queue` and write the records, as much as the socket takes. Returns the
    /// ciphertext bytes written; `Ok` with [`TlsConn::has_output`] true means it would block.
    pub fn write_out<S: Write>(
        &mut self,
        queue: &mut OutQueue,
        stream: &mut S,
    ) -> io::Result<usize> {
        let mut total = 0;
        loop {
            while !self.output.is_empty() {
                match stream.write(&self.output) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        total += n;
                        self.output.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            release(&mut self.output);
            if queue.is_empty() {
                return Ok(total);
            }
            if !self.encrypt(queue)? {
                return Ok(total); // still handshaking: frames wait
            }
        }
    }

    /// Encrypt up to [`ENCRYPT_BATCH`] of `queue` into the output; `false` if the handshake is
    /// not done (nothing encrypted).
    fn encrypt(&mut self, queue: &mut OutQueue) -> io::Result<bool> {
        loop {
            // The pending input, not an empty slice: see `queue_alert`.
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut self.input);
            let state = state.map_err(invalid)?;
            if discard > 0 {
                // Not expected (what is pending is part of a record), but keep rustls's view.
                return Err(invalid("unexpected TLS input while writing"));
            }
            match state {
                ConnectionState::WriteTraffic(mut traffic) => {
                    let output = &mut self.output;
                    queue.drain_into(ENCRYPT_BATCH, |b| {
                        append(output, |o| traffic.encrypt(b, o), encrypt_size).map_err(invalid)?;
                        Ok(b.len())
                    })?;
                    return Ok(true);
                }
                ConnectionState::EncodeTlsData(mut data) => {
                    append(&mut self.output, |o| data.encode(o), encode_size).map_err(invalid)?;
                }
                ConnectionState::TransmitTlsData(data) => data.done(),
                _ => return Ok(false),
            }
        }
    }

    /// Encrypted bytes not yet taken by the socket.
    pub fn pending_output(&self) -> usize {
        self.output.len()
    }

    /// Whether anything waits to go out: queued frames or records (handshake messages,
    /// alerts, encrypted frames).
    pub fn has_output(&self, queue: &OutQueue) -> bool {
        !queue.is_empty() || !self.output.is_empty()
    }

    /// Queue a close_notify alert, once (before our side of the socket shuts down); `true` if
    /// it was queued now.
    pub fn close_notify(&mut self) -> bool {
        if self.notified {
            return false;
        }
        self.notified = true;
        // The pending input, not an empty slice: see `queue_alert`.
        let UnbufferedStatus { state, .. } = self.conn.process_tls_records(&mut self.input);
        if let Ok(ConnectionState::WriteTraffic(mut traffic)) = state {
            let _ = append(
                &mut self.output,
                |o| traffic.queue_close_notify(o),
                encrypt_size,
            );
            return true;
        }
        false
    }
}
