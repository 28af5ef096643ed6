//! `cargo xtask`: the one front door. Dispatches to one module per task.
fn main() {
    eprintln!("xtask: not yet");
    std::process::exit(2);
}
