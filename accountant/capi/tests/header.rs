//! The committed header `include/ioacct.h` is what cbindgen generates from
//! the crate now; `IOACCT_BLESS=1` rewrites it.

use std::path::Path;

#[test]
fn committed_header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut fresh);
    let path = dir.join("include/ioacct.h");
    if std::env::var_os("IOACCT_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write include/ioacct.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/ioacct.h is stale: regenerate it with \
         `IOACCT_BLESS=1 cargo test -p libioacct --test header` and commit it"
    );
}
