//! volley-loadtest: see loadtest/README.md.
fn main() {
    eprintln!("volley-loadtest: not built yet");
    std::process::exit(2);
}
