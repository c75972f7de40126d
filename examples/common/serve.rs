//! How the examples serve: until Ctrl-C or SIGTERM, or until the server fails.

/// Serve until Ctrl-C or SIGTERM (every connection is then closed with 1001 after what is
/// queued for it) or until the server fails: then print why, as `name: error`, and exit 1.
pub fn until_signal(server: volley::Server, name: &str) {
    #[cfg(unix)]
    let result = server.run_until_signal();
    #[cfg(not(unix))]
    let result = server.run();
    if let Err(e) = result {
        eprintln!("{name}: {e}");
        std::process::exit(1);
    }
}
