//! Lets the benchmark (which links the tch engine directly) find LibTorch at run time without LD_LIBRARY_PATH: an rpath to the
//! LibTorch it was built against (LIBTORCH, set by .cargo/config.toml to .deps/torch/torch).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let lib = std::path::Path::new(&dir).join("lib");
        let lib = lib.canonicalize().unwrap_or(lib);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
