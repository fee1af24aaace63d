//! rpc-runv: containers in micro-VMs, with runtime-core's CLI. Exec'd as
//! `rpc-runv-vm` (the exec step of a container's host side) it is the
//! VM's supervisor instead.

use runtime_core::cli::{main as cli_main, Identity};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.first().is_some_and(|a| a == rpc_runv::supervisor::ARGV0) {
        std::process::exit(rpc_runv::supervisor::main(&args));
    }
    // Where this binary was installed (the agent initramfs sits beside it),
    // found before runtime-core re-executes through a sealed view of it.
    if std::env::var_os(rpc_runv::hypervisor::binaries::ENV_HOME).is_none() {
        if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.to_path_buf())) {
            std::env::set_var(rpc_runv::hypervisor::binaries::ENV_HOME, dir);
        }
    }
    let id = Identity { name: "rpc-runv", version: env!("CARGO_PKG_VERSION"), commit: "", default_root: "/run/rpc-runv" };
    std::process::exit(cli_main(&id, &rpc_runv::backend::MicroVm::new()));
}
