//! rpc-runv: containers in micro-VMs, with runtime-core's CLI.

fn main() {
    eprintln!("rpc-runv: not built yet");
    std::process::exit(1);
}
