//! The host's blocking client of an agent connection: the Hello/Welcome
//! handshake, request/reply calls (pipelined by id), events. Every read
//! and write has a deadline (poll on a non-blocking fd): an agent that
//! never answers, or stops reading, cannot hang the host.
//!
//! Errors are bare (`guest: <msg>` for an agent's error, the request and
//! id for a timeout); the caller adds which agent and which step.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::PollFlags;
use nix::sys::socket::MsgFlags;

use crate::error::{Error, Result};
use crate::frame::{encode, poll_until, Frame, FrameReader};
use crate::msg::{ErrorBody, ErrorCode, Event, Kind, Reply, Request, Role, PROTO};

/// The id of every connection's Hello (and so of its Welcome); calls
/// count from 1.
pub const HELLO_ID: u32 = 0;

/// How long the host waits for a Welcome after connecting (design §6).
pub const WELCOME_TIMEOUT: Duration = Duration::from_secs(5);
/// How long it waits for a reply ([`reply_timeout`]: Create gets more).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long it waits for Create's reply (the guest rpc-runc's create).
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(60);

/// The reply deadline of a request (design §6).
pub fn reply_timeout(req: &Request) -> Duration {
    match req {
        Request::Create { .. } => CREATE_TIMEOUT,
        _ => REPLY_TIMEOUT,
    }
}

/// Events kept while a reply is awaited; more is a misbehaving agent
/// (control connections carry none in protocol 1).
const MAX_EVENTS: usize = 1024;

/// What the agent said in its Welcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The version both speak.
    pub proto: u32,
    /// The agent's own version string.
    pub agent: String,
    /// The optional requests it serves.
    pub features: Vec<String>,
}

/// The bytes of the Hello a client of `role` sends first (also what the
/// VMM's links send on the host's behalf).
pub fn hello_bytes(role: Role, client_name: &str) -> Result<Vec<u8>> {
    let hello = Request::Hello { proto: [PROTO, PROTO], role, client: client_name.to_string() };
    encode(Kind::Request, HELLO_ID, &hello)
}

/// The name of a request's type as on the wire (`start`), for messages.
pub fn request_name(req: &Request) -> String {
    match serde_json::to_value(req) {
        Ok(v) => v.get("type").and_then(|t| t.as_str()).unwrap_or("request").to_string(),
        Err(_) => "request".to_string(),
    }
}

/// A connection to the agent after its Welcome.
#[derive(Debug)]
pub struct Client {
    fd: OwnedFd,
    /// The file status flags before we made the fd non-blocking, given
    /// back by [`Client::into_fd`].
    flags: OFlag,
    reader: FrameReader,
    next_id: u32,
    /// Requests sent whose reply has not been taken.
    outstanding: HashSet<u32>,
    /// Replies (or errors) that arrived while another id was awaited.
    early: HashMap<u32, Frame>,
    /// Events that arrived while a reply was awaited.
    events: VecDeque<Event>,
}

impl Client {
    /// Sends the Hello for `role` on a connected stream and waits for the
    /// Welcome by `deadline`. The fd is non-blocking while the Client
    /// holds it.
    pub fn connect(stream: impl Into<OwnedFd>, role: Role, client_name: &str, deadline: Instant) -> Result<(Client, Welcome)> {
        let fd: OwnedFd = stream.into();
        let flags = fcntl(&fd, FcntlArg::F_GETFL).map_err(|e| Error::errno("reading the connection's flags", e))?;
        let flags = OFlag::from_bits_truncate(flags);
        fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map_err(|e| Error::errno("making the connection non-blocking", e))?;
        let mut client = Client {
            fd,
            flags,
            reader: FrameReader::new(),
            next_id: HELLO_ID + 1,
            outstanding: HashSet::new(),
            early: HashMap::new(),
            events: VecDeque::new(),
        };
        let hello = hello_bytes(role, client_name)?;
        client.write_all(&hello, deadline, "Hello")?;
        let frame = client.reader.read_until(client.fd.as_fd(), deadline, || "Welcome".to_string())?;
        let welcome = welcome_of(&frame)?;
        Ok((client, welcome))
    }

    /// Sends `req` and waits up to `timeout` for its reply. An error frame
    /// is [`Error::Agent`]; a reply to no request sent is [`Error::WrongId`].
    pub fn call(&mut self, req: &Request, timeout: Duration) -> Result<Reply> {
        let deadline = Instant::now() + timeout;
        let id = self.send(req, deadline)?;
        self.recv(id, &request_name(req), deadline)
    }

    /// Sends `req` without waiting: its id, for [`Client::recv`].
    pub fn send(&mut self, req: &Request, deadline: Instant) -> Result<u32> {
        let id = self.next_id;
        // Ids wrap past u32::MAX skipping the Hello's.
        self.next_id = self.next_id.checked_add(1).unwrap_or(HELLO_ID + 1);
        let bytes = encode(Kind::Request, id, req)?;
        self.write_all(&bytes, deadline, &request_name(req))?;
        self.outstanding.insert(id);
        Ok(id)
    }

    /// Waits by `deadline` for the reply to request `id` (`what` names it
    /// in a timeout). Replies to other outstanding requests are kept for
    /// their own `recv`; events for [`Client::next_event`].
    pub fn recv(&mut self, id: u32, what: &str, deadline: Instant) -> Result<Reply> {
        if !self.outstanding.contains(&id) {
            return Err(Error::NotPending(id));
        }
        let frame = match self.early.remove(&id) {
            Some(f) => f,
            None => loop {
                let f = self.reader.read_until(self.fd.as_fd(), deadline, || format!("reply to {what} (id {id})"))?;
                match f.kind {
                    Kind::Event => {
                        if self.events.len() >= MAX_EVENTS {
                            return Err(Error::Overflow { what: "events", limit: MAX_EVENTS });
                        }
                        self.events.push_back(f.event()?)
                    }
                    Kind::Reply | Kind::Error if f.id == id => break f,
                    Kind::Reply | Kind::Error if self.outstanding.contains(&f.id) && !self.early.contains_key(&f.id) => {
                        self.early.insert(f.id, f);
                    }
                    Kind::Reply | Kind::Error => return Err(Error::WrongId { got: f.id, want: id }),
                    Kind::Request => {
                        return Err(Error::UnexpectedKind { want: "reply", got: "request", id: f.id });
                    }
                }
            },
        };
        self.outstanding.remove(&id);
        match frame.kind {
            Kind::Error => Err(agent_error(frame.error()?)),
            _ => frame.reply(),
        }
    }

    /// The next event, by `deadline`: None once the agent closed the
    /// connection (between frames), [`Error::Timeout`] at the deadline.
    pub fn next_event(&mut self, deadline: Instant) -> Result<Option<Event>> {
        if let Some(e) = self.events.pop_front() {
            return Ok(Some(e));
        }
        let f = match self.reader.read_until(self.fd.as_fd(), deadline, || "event".to_string()) {
            Ok(f) => f,
            Err(Error::Closed) => return Ok(None),
            Err(e) => return Err(e),
        };
        match f.kind {
            Kind::Event => Ok(Some(f.event()?)),
            Kind::Error => Err(agent_error(f.error()?)),
            k => Err(Error::UnexpectedKind { want: "event", got: crate::frame::kind_name(k), id: f.id }),
        }
    }

    /// The connection, e.g. a stream's after its Welcome: raw bytes from
    /// here on (none of them read yet), its blocking mode as it came.
    pub fn into_fd(self) -> Result<OwnedFd> {
        fcntl(&self.fd, FcntlArg::F_SETFL(self.flags)).map_err(|e| Error::errno("restoring the connection's flags", e))?;
        Ok(self.fd)
    }

    fn write_all(&self, mut bytes: &[u8], deadline: Instant, what: &str) -> Result<()> {
        let start = Instant::now();
        while !bytes.is_empty() {
            match send(self.fd.as_fd(), bytes) {
                Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    if !poll_until(self.fd.as_fd(), PollFlags::POLLOUT, deadline)? {
                        return Err(Error::Timeout {
                            what: format!("room to send {what}"),
                            after: deadline.saturating_duration_since(start),
                        });
                    }
                }
                Err(e) => return Err(Error::errno(format!("sending {what}"), e)),
            }
        }
        Ok(())
    }
}

impl AsFd for Client {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// send(2) with MSG_NOSIGNAL on a socket (a closed peer is EPIPE, not a
/// SIGPIPE that kills us); write(2) on anything else.
pub(crate) fn send(fd: BorrowedFd<'_>, bytes: &[u8]) -> nix::Result<usize> {
    match nix::sys::socket::send(fd.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
        Err(Errno::ENOTSOCK) => nix::unistd::write(fd, bytes),
        r => r,
    }
}

/// The error an agent's error frame means.
pub fn agent_error(body: ErrorBody) -> Error {
    match body.code {
        ErrorCode::Version => Error::Version { agent: version_of(&body.msg), ours: PROTO },
        code => Error::Agent { code, msg: body.msg },
    }
}

/// The agent's version out of its version error (server.rs says `agent
/// speaks protocol N`); else its whole message.
fn version_of(msg: &str) -> String {
    const KEY: &str = "agent speaks protocol ";
    let Some(rest) = msg.find(KEY).and_then(|at| msg.get(at + KEY.len()..)) else {
        return msg.to_string();
    };
    let end = rest.find([',', ' ', ';']).unwrap_or(rest.len());
    rest.get(..end).unwrap_or(rest).to_string()
}

/// The Welcome in the first frame an agent sent (a VMM's event loop that
/// reads it with a [`FrameReader`] itself): an error frame, another id,
/// another reply or another version are errors.
pub fn welcome_of(frame: &Frame) -> Result<Welcome> {
    if frame.kind == Kind::Error {
        return Err(agent_error(frame.error()?));
    }
    if frame.id != HELLO_ID {
        return Err(Error::WrongId { got: frame.id, want: HELLO_ID });
    }
    match frame.reply()? {
        Reply::Welcome { proto, agent, features } => {
            if proto != PROTO {
                return Err(Error::Version { agent: proto.to_string(), ours: PROTO });
            }
            Ok(Welcome { proto, agent, features })
        }
        other => Err(Error::UnexpectedReply { what: "Hello".into(), got: format!("{other:?}") }),
    }
}
