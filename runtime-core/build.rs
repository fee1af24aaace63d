//! Link libseccomp statically (Debian's libseccomp-dev ships libseccomp.a):
//! the runtime then has no shared-library dependency beyond libc and maps
//! only the pages of libseccomp it uses.
fn main() {
    let dirs = ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib", "/usr/lib/aarch64-linux-gnu"];
    let found = std::env::var("LIBSECCOMP_LIB_PATH")
        .ok()
        .into_iter()
        .chain(dirs.iter().map(|s| s.to_string()))
        .find(|d| std::path::Path::new(d).join("libseccomp.a").exists());
    match found {
        Some(d) => {
            println!("cargo:rustc-link-search=native={d}");
            println!("cargo:rerun-if-changed={d}/libseccomp.a");
        }
        None => {
            println!("cargo:warning=libseccomp.a not found: install libseccomp-dev (or set LIBSECCOMP_LIB_PATH)");
            // Looked for again on the next build: installing the package
            // afterwards must not leave this answer cached.
            for d in dirs {
                println!("cargo:rerun-if-changed={d}/libseccomp.a");
            }
        }
    }
    println!("cargo:rerun-if-env-changed=LIBSECCOMP_LIB_PATH");
}
