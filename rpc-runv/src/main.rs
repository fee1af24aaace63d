//! rpc-runv: containers in micro-VMs, with runtime-core's CLI. Exec'd as
//! `rpc-runv-vm` (the exec step of a container's host side) it is the
//! VM's supervisor instead.

use runtime_core::cli::{main as cli_main, Identity};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.first().is_some_and(|a| a == rpc_runv::supervisor::ARGV0) {
        std::process::exit(rpc_runv::supervisor::main(&args));
    }
    let id = Identity { name: "rpc-runv", version: env!("CARGO_PKG_VERSION"), commit: "", default_root: "/run/rpc-runv" };
    std::process::exit(cli_main(&id, &rpc_runv::backend::MicroVm::new()));
}
