//! The host's connections to a VM's guest agent: the hybrid vsock dial
//! plus the Hello, and one request on a control connection of its own.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rpc_proto::client::Client;
use rpc_proto::msg::{Reply, Request, Role};

use crate::error::{Error, Result};

/// Who we are in every Hello.
pub const CLIENT: &str = concat!("rpc-runv ", env!("CARGO_PKG_VERSION"));
/// How long a request to a running agent may take (a guest `create` pulls
/// nothing, but runs the container's createContainer hooks).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long dialling a running agent may take.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A guest-side failure of container `id`, as rpc-runv reports it.
pub(crate) fn guest(id: &str) -> impl Fn(rpc_proto::Error) -> Error + '_ {
    move |e| Error::Guest { id: id.to_string(), msg: e.to_string() }
}

/// A connection of `role` to the agent behind `uds`, past its Welcome;
/// retried until `deadline` while the guest boots. rpc-proto's error, for
/// its own callers (`open_stdio`, a `RemoteProcess`'s redial).
pub fn connect(uds: &Path, role: Role, deadline: Instant) -> rpc_proto::Result<Client> {
    let s = rpc_proto::hvsock::dial(uds, rpc_proto::guest::AGENT_PORT, deadline)?;
    Ok(Client::connect(s, role, CLIENT, deadline)?.0)
}

/// [`connect`] for container `id`, its failure named as the guest's.
pub fn dial(id: &str, uds: &Path, role: Role, deadline: Instant) -> Result<Client> {
    connect(uds, role, deadline).map_err(guest(id))
}

/// How a `RemoteProcess` opens a control connection when it needs one
/// (signals, resizes): anew, with a fresh deadline each time.
pub fn redial(uds: PathBuf) -> rpc_proto::remote::Dial {
    Box::new(move || connect(&uds, Role::Control, Instant::now() + DIAL_TIMEOUT))
}

/// Sends `req` to container `id`'s agent on a control connection of its
/// own and returns the reply.
pub fn call(id: &str, uds: &Path, req: &Request) -> Result<Reply> {
    let mut c = dial(id, uds, Role::Control, Instant::now() + DIAL_TIMEOUT)?;
    c.call(req, CALL_TIMEOUT).map_err(guest(id))
}
