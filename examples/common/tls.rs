//! The examples' TLS: certificates from PEM files (`TlsConfig::from_pem_files`), read again and
//! swapped in on SIGHUP (`ServerHandle::reload_tls`), the way servers reload certificates that
//! a renewal job has replaced. Needs the `tls` feature.

use std::path::PathBuf;

use volley::{ServerHandle, TlsConfig};

/// A certificate chain file and its key file.
#[derive(Debug, Clone)]
pub struct Pem {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pem {
    /// Read both files; exits with a message when they do not make a TLS configuration.
    pub fn load(&self) -> TlsConfig {
        TlsConfig::from_pem_files(&self.cert, &self.key).unwrap_or_else(|e| {
            eprintln!(
                "cannot use {} / {}: {e}",
                self.cert.display(),
                self.key.display()
            );
            std::process::exit(2);
        })
    }

    /// On every SIGHUP, read the files again and present the new certificates to new clients
    /// (a file that does not parse is logged and the old certificates stay).
    #[cfg(unix)]
    pub fn reload_on_sighup(self, server: ServerHandle) {
        let mut signals = match signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP]) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("no SIGHUP reload: {e}");
                return;
            }
        };
        std::thread::spawn(move || {
            for _ in signals.forever() {
                match TlsConfig::from_pem_files(&self.cert, &self.key) {
                    Ok(tls) => {
                        server.reload_tls(tls);
                    }
                    Err(e) => log::warn!("SIGHUP: keeping the old certificates: {e}"),
                }
            }
        });
    }
}
