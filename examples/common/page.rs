//! How the examples with a web page (chat, files) serve its files: `GET` of a known path gets
//! the file with headers that keep the page to its own files and server; another path gets 404,
//! another method 405.

use volley::{Request, Response};

/// The page loads nothing but its own files and talks only to its own server.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The response to `req` from `files`: `(path, content type, body)` for each path served.
pub fn serve(req: &Request<'_>, files: &[(&str, &str, &'static str)]) -> Response {
    if req.method() != "GET" {
        return Response::new(405)
            .header("Allow", "GET")
            .body("method not allowed\n");
    }
    match files.iter().find(|(path, _, _)| *path == req.path()) {
        Some(&(_, content_type, body)) => Response::ok(content_type, body)
            .header("Cache-Control", "no-cache")
            .header("X-Content-Type-Options", "nosniff")
            .header("Content-Security-Policy", CSP),
        None => Response::not_found(),
    }
}
