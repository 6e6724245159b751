//! Builds the libjpeg shim (`csrc/jpeg.c`, see `src/jpeg.rs`).

fn main() {
    println!("cargo:rerun-if-changed=csrc/jpeg.c");
    cc::Build::new()
        .file("csrc/jpeg.c")
        .warnings(true)
        .compile("spice_capi_jpeg");
    println!("cargo:rustc-link-lib=jpeg");
}
