//! `ioacct`: check guest configurations against a host's resource map.

fn main() {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code = ioacct_check::cli::run(std::env::args_os(), &mut stdout.lock(), &mut stderr.lock());
    std::process::exit(code);
}
