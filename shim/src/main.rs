use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let argv0 = std::env::args().next().context("no argv[0]")?;
    if std::env::args().skip(1).any(|a| a == "-v" || a == "--version" || a == "-version") {
        println!("{argv0}:\n  Version: {}\n  Runtime: {}", env!("CARGO_PKG_VERSION"), shim::shim::binary_for(&argv0));
        return Ok(());
    }
    let runtime_id = shim::shim::runtime_id_for(&argv0);
    containerd_shim::run::<shim::shim::RpcShim>(&runtime_id, None);
    Ok(())
}
