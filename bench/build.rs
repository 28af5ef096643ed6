//! Compiles `c/port_loop.c`, the C side of the C API's port-check row,
//! with the system C compiler against libioacct's committed header. Its call
//! of `ioacct_port_check8` binds to the function the `libioacct` dependency
//! exports: the library's code, called from C.

fn main() {
    println!("cargo:rerun-if-changed=c/port_loop.c");
    println!("cargo:rerun-if-changed=../accountant/capi/include/ioacct.h");
    cc::Build::new()
        .file("c/port_loop.c")
        .include("../accountant/capi/include")
        .opt_level(2)
        .warnings_into_errors(true)
        .compile("ioacct_bench_c");
}
