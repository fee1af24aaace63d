//! rpc-runc: the runc equivalent. Native namespaces and cgroups; the
//! lifecycle and the CLI live in runtime-core.

use runtime_core::cli::{main as cli_main, Identity};
use runtime_core::native::Native;

fn main() {
    let id =
        Identity { name: "rpc-runc", version: env!("CARGO_PKG_VERSION"), commit: env!("RPC_GIT_COMMIT"), default_root: "/run/rpc-runc" };
    std::process::exit(cli_main(&id, &Native));
}
