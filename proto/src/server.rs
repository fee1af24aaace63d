//! The agent's side of a connection, for a poll/epoll loop on
//! non-blocking fds: frames in through a [`FrameReader`], the Hello
//! checked (version range, role) and answered, requests decoded (an
//! unknown type is `unsupported`, bad JSON `invalid`, never a panic),
//! replies, events and errors queued in a bounded [`WriteQueue`].
//!
//! A connection whose Hello is refused gets its error frame and
//! [`Incoming::Close`]: flush, then close. After a stream's Hello the fd
//! carries raw bytes: the caller stops calling [`Session::read`] (nothing
//! past the Hello was read).

use std::collections::VecDeque;
use std::os::fd::AsFd;

use nix::errno::Errno;

use crate::client::send;
use crate::error::{Error, Result};
use crate::frame::{encode, kind_name, Frame, FrameReader};
use crate::msg::{ErrorBody, ErrorCode, Event, Kind, Reply, Request, Role, PROTO};

/// The versions this agent speaks, `[min, max]`.
pub const AGENT_PROTO: [u32; 2] = [PROTO, PROTO];

/// A Hello accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeted {
    pub role: Role,
    /// Who is asking (the Hello's `client`), for logs.
    pub client: String,
    /// The version both speak.
    pub proto: u32,
}

/// What a read of a connection gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// The Hello, accepted; its Welcome is queued.
    Hello(Greeted),
    /// A request to serve; answer it with [`Session::reply`] or
    /// [`Session::error`] under `id`.
    Request { id: u32, req: Request },
    /// A request refused as it came (bad JSON, unknown type, a second
    /// Hello); its error is queued already. For the log.
    Refused { id: u32, error: ErrorBody },
    /// The connection is done for (a refused Hello, a broken frame):
    /// flush what is queued, then close it.
    Close(String),
}

/// The highest version both `ours` and the client's `[min, max]` speak,
/// or the `version` error naming both ranges.
pub fn negotiate(theirs: [u32; 2], ours: [u32; 2]) -> Result<u32, ErrorBody> {
    let lo = theirs[0].max(ours[0]);
    let hi = theirs[1].min(ours[1]);
    if lo <= hi {
        return Ok(hi);
    }
    let range = |r: [u32; 2]| if r[0] == r[1] { r[0].to_string() } else { format!("{}..={}", r[0], r[1]) };
    // client::agent_error reads the agent's version after "agent speaks
    // protocol ", up to the comma.
    let msg = format!("agent speaks protocol {}, client {}", range(ours), range(theirs));
    Err(ErrorBody { code: ErrorCode::Version, msg })
}

/// A request frame's message, or the error to answer it with: `invalid`
/// for another kind or bad JSON, `unsupported` for an unknown type.
pub fn decode_request(frame: &Frame) -> Result<Request, ErrorBody> {
    if frame.kind != Kind::Request {
        let msg = format!("expected a request frame, got a {} frame", kind_name(frame.kind));
        return Err(ErrorBody { code: ErrorCode::Invalid, msg });
    }
    match serde_json::from_slice::<Request>(&frame.body) {
        Ok(r) => Ok(r),
        Err(e) => {
            // serde names an unknown tag so: the one mistake that is a
            // newer host's request, not a broken one.
            let code =
                if e.to_string().starts_with("unknown variant `") && e.is_data() { ErrorCode::Unsupported } else { ErrorCode::Invalid };
            Err(ErrorBody { code, msg: format!("bad request: {e}") })
        }
    }
}

/// One connection's protocol state on the agent's side.
#[derive(Debug)]
pub struct Session {
    agent: String,
    features: Vec<String>,
    reader: FrameReader,
    /// Everything to send, bounded.
    pub out: WriteQueue,
    greeted: Option<Greeted>,
    /// The roles served (by [`role_name`]); None: all of them.
    roles: Option<Vec<&'static str>>,
}

/// A role's name as on the wire (`control`, `stream`, `wait`, `events`).
pub fn role_name(role: &Role) -> &'static str {
    match role {
        Role::Control => "control",
        Role::Stream { .. } => "stream",
        Role::Wait { .. } => "wait",
        Role::Events { .. } => "events",
    }
}

/// A Hello's role that cannot be served by anyone: an empty container or
/// exec id.
fn check_role(role: &Role) -> Result<(), String> {
    let (container, exec) = match role {
        Role::Control => return Ok(()),
        Role::Stream { container, exec, .. } | Role::Wait { container, exec } => (container, exec.as_deref()),
        Role::Events { container } => (container, None),
    };
    if container.is_empty() {
        return Err(format!("{} connection without a container id", role_name(role)));
    }
    if exec == Some("") {
        return Err(format!("{} connection of container {container:?} with an empty exec id", role_name(role)));
    }
    Ok(())
}

impl Session {
    /// A new connection of an agent whose version is `agent`, serving the
    /// optional requests `features`, queueing at most `queue_limit` bytes.
    pub fn new(agent: &str, features: &[&str], queue_limit: usize) -> Session {
        Session {
            agent: agent.to_string(),
            features: features.iter().map(|f| f.to_string()).collect(),
            reader: FrameReader::new(),
            out: WriteQueue::new(queue_limit),
            greeted: None,
            roles: None,
        }
    }

    /// Serves only these roles (by [`role_name`]): another is refused as
    /// `unsupported` (rpc-runlxc's exec server has no stream role).
    pub fn only_roles(mut self, roles: &[&'static str]) -> Session {
        self.roles = Some(roles.to_vec());
        self
    }

    /// The accepted Hello, once there was one.
    pub fn greeted(&self) -> Option<&Greeted> {
        self.greeted.as_ref()
    }

    /// Reads the non-blocking `fd` for the next frame: None when nothing
    /// complete is there yet. [`Error::Closed`] is the host's close
    /// between frames; other errors mean: close the connection.
    pub fn read(&mut self, fd: impl AsFd) -> Result<Option<Incoming>> {
        let frame = match self.reader.read_from(fd) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(None),
            Err(e @ (Error::TooLong(_) | Error::TooShort(_) | Error::UnknownKind(_))) => {
                // Out of step with the host: say why (best effort), then close.
                let msg = e.to_string();
                self.error(0, ErrorCode::Invalid, &msg)?;
                return Ok(Some(Incoming::Close(msg)));
            }
            Err(e) => return Err(e),
        };
        self.take(frame).map(Some)
    }

    /// A frame read some other way (a test, a fuzzer): what it means.
    pub fn take(&mut self, frame: Frame) -> Result<Incoming> {
        if self.greeted.is_none() {
            return self.hello(frame);
        }
        let id = frame.id;
        match decode_request(&frame) {
            Ok(Request::Hello { .. }) => {
                let error = ErrorBody { code: ErrorCode::Invalid, msg: "a second Hello on one connection".into() };
                self.error(id, error.code, &error.msg)?;
                Ok(Incoming::Refused { id, error })
            }
            Ok(req) => Ok(Incoming::Request { id, req }),
            Err(error) => {
                self.error(id, error.code, &error.msg)?;
                Ok(Incoming::Refused { id, error })
            }
        }
    }

    fn hello(&mut self, frame: Frame) -> Result<Incoming> {
        let id = frame.id;
        let refuse = |s: &mut Session, error: ErrorBody| -> Result<Incoming> {
            s.error(id, error.code, &error.msg)?;
            Ok(Incoming::Close(error.msg))
        };
        let (proto, role, client) = match decode_request(&frame) {
            Ok(Request::Hello { proto, role, client }) => (proto, role, client),
            Ok(other) => {
                let msg = format!("{} before Hello", crate::client::request_name(&other));
                return refuse(self, ErrorBody { code: ErrorCode::Invalid, msg });
            }
            Err(error) => return refuse(self, error),
        };
        let proto = match negotiate(proto, AGENT_PROTO) {
            Ok(v) => v,
            Err(error) => return refuse(self, error),
        };
        if let Err(msg) = check_role(&role) {
            return refuse(self, ErrorBody { code: ErrorCode::Invalid, msg });
        }
        if let Some(roles) = &self.roles {
            let name = role_name(&role);
            if !roles.contains(&name) {
                let msg = format!("{name} connections are not served here");
                return refuse(self, ErrorBody { code: ErrorCode::Unsupported, msg });
            }
        }
        let welcome = Reply::Welcome { proto, agent: self.agent.clone(), features: self.features.clone() };
        self.reply(id, &welcome)?;
        let greeted = Greeted { role, client, proto };
        self.greeted = Some(greeted.clone());
        Ok(Incoming::Hello(greeted))
    }

    /// Queues the reply to request `id`.
    pub fn reply(&mut self, id: u32, reply: &Reply) -> Result<()> {
        self.out.push(&encode(Kind::Reply, id, reply)?)
    }

    /// Queues an error answering request `id`. A message too long for a
    /// frame is cut (at a char boundary), never dropped.
    pub fn error(&mut self, id: u32, code: ErrorCode, msg: &str) -> Result<()> {
        const KEEP: usize = 64 << 10;
        let mut msg = msg;
        if msg.len() > KEEP {
            let mut end = KEEP;
            while !msg.is_char_boundary(end) {
                end -= 1;
            }
            msg = msg.get(..end).unwrap_or_default();
        }
        self.out.push(&encode(Kind::Error, id, &ErrorBody { code, msg: msg.to_string() })?)
    }

    /// Queues an event (id 0).
    pub fn event(&mut self, event: &Event) -> Result<()> {
        self.out.push(&encode(Kind::Event, 0, event)?)
    }

    /// Writes what is queued as far as `fd` takes it: true once empty.
    pub fn flush(&mut self, fd: impl AsFd) -> Result<bool> {
        self.out.flush(fd)
    }
}

/// Bytes waiting for a non-blocking fd, at most `limit` of them: a peer
/// that stops reading makes [`WriteQueue::push`] fail instead of the
/// agent's memory grow.
#[derive(Debug)]
pub struct WriteQueue {
    buf: VecDeque<u8>,
    limit: usize,
}

impl WriteQueue {
    pub fn new(limit: usize) -> WriteQueue {
        WriteQueue { buf: VecDeque::new(), limit }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// How many more bytes it takes.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.buf.len())
    }

    /// Queues all of `bytes`, or none of them past the limit.
    pub fn push(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.len() > self.room() {
            return Err(Error::QueueFull { queued: self.buf.len(), more: bytes.len(), limit: self.limit });
        }
        self.buf.extend(bytes);
        Ok(())
    }

    /// Writes until the queue is empty (true) or `fd` takes no more now
    /// (false). A closed peer is an error (EPIPE, no SIGPIPE).
    pub fn flush(&mut self, fd: impl AsFd) -> Result<bool> {
        let fd = fd.as_fd();
        while !self.buf.is_empty() {
            let (head, _) = self.buf.as_slices();
            match send(fd, head) {
                Ok(n) => {
                    self.buf.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return Ok(false),
                Err(e) => return Err(Error::errno("writing to the host", e)),
            }
        }
        Ok(true)
    }
}
