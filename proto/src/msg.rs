//! Every message of the protocol. Additive changes (new optional fields,
//! new request types announced in [`Reply::Welcome`]'s `features`) keep
//! [`PROTO`]; anything else bumps it. Unknown fields are ignored; an
//! unknown `type` is answered with an error of code
//! [`ErrorCode::Unsupported`], never a panic.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this build speaks.
pub const PROTO: u32 = 1;
/// The largest frame (its `len`) either side accepts; a larger length is
/// a protocol error and the connection is closed.
pub const MAX_FRAME: u32 = 4 << 20;
/// The smallest `len`: kind (1) + id (4) + a body of at least `{}`... and
/// a little more: any shorter frame is malformed.
pub const MIN_FRAME: u32 = 9;

/// A frame's kind byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Request = 1,
    Reply = 2,
    Event = 3,
    Error = 4,
}

impl Kind {
    pub fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Request),
            2 => Some(Kind::Reply),
            3 => Some(Kind::Event),
            4 => Some(Kind::Error),
            _ => None,
        }
    }
}

/// What a connection is for, named in its Hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    /// Requests and replies, pipelined by id.
    Control,
    /// After Welcome, raw bytes both ways: one stdio stream of a process
    /// (`exec` None: the container's init). EOF is a half-close.
    Stream { container: String, exec: Option<String>, which: Which },
    /// The agent sends one [`Event::Exit`] when the process ends (at once
    /// if it has), then closes. Lost without Exit = the process is lost.
    Wait { container: String, exec: Option<String> },
    /// [`Event::Oom`] (and the init's [`Event::Exit`]) as they happen.
    Events { container: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Which {
    Stdin,
    Stdout,
    Stderr,
    /// A terminal: both directions on one connection.
    Tty,
}

/// A namespace the agent takes from the pod's sandbox container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxNs {
    Ipc,
    Uts,
    Pid,
}

/// One guest network interface, matched by MAC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Iface {
    /// The guest's name for it (`eth0`).
    pub name: String,
    /// `aa:bb:cc:dd:ee:ff`, the host veth's.
    pub mac: String,
    pub mtu: u32,
    /// CIDR addresses (`10.88.0.5/16`).
    pub addrs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// CIDR, `default` for 0.0.0.0/0.
    pub dest: String,
    pub gateway: Option<String>,
    /// The interface's guest name.
    pub dev: String,
}

/// A request (kind 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// First frame of every connection: the versions the client speaks
    /// (`[min, max]`), the connection's role and who is asking.
    Hello {
        proto: [u32; 2],
        #[serde(flatten)]
        role: Role,
        client: String,
    },
    Ping,
    ConfigureNetwork {
        ifaces: Vec<Iface>,
        routes: Vec<Route>,
        /// resolv.conf lines, if the host has them to give.
        dns: Option<Vec<String>>,
    },
    /// `rpc-runc create` in the guest. `config` is the OCI config, already
    /// rewritten for the guest (root and bind sources under
    /// [`crate::guest::SHARED_DIR`], no network namespace, no host hooks).
    /// The process's stdio is its Stream connections, opened before or
    /// after (output waits in a pipe until one is there).
    Create {
        id: String,
        config: Value,
        /// The pod's sandbox (pause) container.
        sandbox: bool,
        /// Which namespaces to join from the sandbox container `sandbox_id`.
        #[serde(default)]
        ns_from_sandbox: Vec<SandboxNs>,
        sandbox_id: Option<String>,
        terminal: bool,
    },
    Start {
        id: String,
    },
    /// `rpc-runc exec` of `process` (an OCI Process) in container `id`.
    Exec {
        id: String,
        exec_id: String,
        process: Value,
        terminal: bool,
    },
    Signal {
        id: String,
        exec_id: Option<String>,
        sig: i32,
        all: bool,
    },
    Resize {
        id: String,
        exec_id: Option<String>,
        rows: u16,
        cols: u16,
    },
    CloseStdin {
        id: String,
        exec_id: Option<String>,
    },
    Stats {
        id: String,
    },
    /// `resources` is an OCI LinuxResources.
    Update {
        id: String,
        resources: Value,
    },
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    Pids {
        id: String,
    },
    Ps {
        id: String,
        args: Vec<String>,
    },
    Delete {
        id: String,
        force: bool,
    },
    /// Power the VM off once every reply is sent, with `status` on the
    /// status port.
    Shutdown {
        status: i32,
    },
}

/// A reply (kind 2) to the request of the same id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// To Hello: the version both speak, the agent's version, and the
    /// optional requests it serves.
    Welcome {
        proto: u32,
        agent: String,
        #[serde(default)]
        features: Vec<String>,
    },
    Ok,
    Pong,
    Created {
        guest_pid: i32,
    },
    Execed {
        guest_pid: i32,
    },
    Stats {
        stats: runtime_core::stats::Stats,
    },
    Pids {
        pids: Vec<i32>,
    },
    Ps {
        lines: Vec<String>,
    },
}

/// An event (kind 3, id 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The process ended: `status` as a shell reports it (the exit code,
    /// or 128 + the signal that killed it, `signal` then set).
    Exit { status: i32, signal: Option<i32> },
    /// The container's cgroup counted `count` OOM kills so far.
    Oom { count: u64 },
}

/// An error (kind 4) answering the request of the same id (or a Hello).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// The guest's own words (the guest rpc-runc's message kept as is).
    pub msg: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    NotFound,
    Invalid,
    Failed,
    Unsupported,
    Busy,
    /// No protocol version in common (the Hello's range vs the agent's).
    Version,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_is_flat_json() {
        let h = Request::Hello {
            proto: [1, 1],
            role: Role::Stream { container: "c".into(), exec: None, which: Which::Stdout },
            client: "rpc-runv 0.1".into(),
        };
        let j = serde_json::to_value(&h).expect("encode");
        assert_eq!(j["type"], "hello");
        assert_eq!(j["role"], "stream");
        assert_eq!(j["which"], "stdout");
        let back: Request = serde_json::from_value(j).expect("decode");
        assert_eq!(back, h);
    }

    #[test]
    fn unknown_fields_are_ignored_and_unknown_types_refused() {
        let r: Request = serde_json::from_str(r#"{"type":"start","id":"x","later":1}"#).expect("decode");
        assert_eq!(r, Request::Start { id: "x".into() });
        assert!(serde_json::from_str::<Request>(r#"{"type":"frobnicate"}"#).is_err());
    }
}
