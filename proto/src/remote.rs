//! A process behind an agent, as runtime-core's proxy relays it
//! ([`runtime_core::proxy::Inner`]): its stdio are stream connections,
//! its end is the `Exit` event on its Wait connection (the proxy's
//! wake fd), signals and terminal sizes go as requests on a control
//! connection that a caller-given closure dials when first needed.
//!
//! A Wait connection that closes (or breaks) without an `Exit` means the
//! process is lost (the VM died): `exit` then fails and the proxy's
//! status is `proxy::LOST`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use runtime_core::error::Error as CoreError;
use runtime_core::proxy::{Exit, Inner, Stdio};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::frame::FrameReader;
use crate::msg::{Event, Kind, Request, Role, Which};

/// How long a Signal or Resize may take before the proxy gives up on it
/// (the design's reply deadline).
pub const CALL_TIMEOUT: Duration = crate::client::REPLY_TIMEOUT;

/// Dials a new control connection (Hello done) to the agent.
pub type Dial = Box<dyn FnMut() -> Result<Client>>;

/// A process (a container's init, or an exec) behind an agent.
pub struct RemoteProcess {
    container: String,
    exec: Option<String>,
    stdio: Option<Stdio>,
    /// The Wait connection, non-blocking, past its Welcome.
    wait: OwnedFd,
    reader: FrameReader,
    exit: Option<Exit>,
    control: Option<Client>,
    dial: Dial,
    timeout: Duration,
}

impl std::fmt::Debug for RemoteProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteProcess")
            .field("container", &self.container)
            .field("exec", &self.exec)
            .field("wait", &self.wait)
            .field("exit", &self.exit)
            .finish_non_exhaustive()
    }
}

impl RemoteProcess {
    /// Process `exec` (None: the init) of `container`: `stdio` its stream
    /// connections' fds (or the caller's own fds when the process holds
    /// them directly), `wait` its Wait connection after the Welcome,
    /// `dial` how to open a control connection for signals and resizes.
    pub fn new(container: &str, exec: Option<&str>, stdio: Stdio, wait: Client, dial: Dial) -> Result<RemoteProcess> {
        let wait = wait.into_fd()?;
        let flags = fcntl(&wait, FcntlArg::F_GETFL).map_err(|e| Error::errno("reading the wait connection's flags", e))?;
        fcntl(&wait, FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK))
            .map_err(|e| Error::errno("making the wait connection non-blocking", e))?;
        Ok(RemoteProcess {
            container: container.to_string(),
            exec: exec.map(str::to_string),
            stdio: Some(stdio),
            wait,
            reader: FrameReader::new(),
            exit: None,
            control: None,
            dial,
            timeout: CALL_TIMEOUT,
        })
    }

    /// Another deadline for Signal and Resize calls.
    pub fn with_timeout(mut self, timeout: Duration) -> RemoteProcess {
        self.timeout = timeout;
        self
    }

    /// The process, for messages: `c1` or `c1 exec e1`.
    fn name(&self) -> String {
        match &self.exec {
            Some(e) => format!("{} exec {e}", self.container),
            None => self.container.clone(),
        }
    }

    /// Without blocking: the Exit if it came, None if nothing (complete)
    /// came yet; closed or broken without one is an error.
    fn poll_exit(&mut self) -> Result<Option<Exit>> {
        if let Some(x) = self.exit {
            return Ok(Some(x));
        }
        while let Some(f) = self.reader.read_from(&self.wait)? {
            if f.kind == Kind::Error {
                return Err(crate::client::agent_error(f.error()?));
            }
            match f.event()? {
                Event::Exit { status, signal } => {
                    let x = match signal {
                        Some(s) => Exit::Signal(s),
                        None => Exit::Code(status),
                    };
                    self.exit = Some(x);
                    return Ok(Some(x));
                }
                // Not for a Wait connection; harmless.
                Event::Oom { .. } => {}
            }
        }
        Ok(None)
    }

    /// Sends `req` on the control connection, dialled on first use and
    /// once more if the one we had broke.
    fn call(&mut self, req: Request) -> Result<()> {
        let mut retried = false;
        loop {
            let mut c = match self.control.take() {
                Some(c) => c,
                None => (self.dial)()?,
            };
            match c.call(&req, self.timeout) {
                Ok(_) => {
                    self.control = Some(c);
                    return Ok(());
                }
                // The agent's answer: a real failure, the connection is fine.
                Err(e @ Error::Agent { .. }) => {
                    self.control = Some(c);
                    return Err(e);
                }
                // A connection that broke (the agent restarted it, a
                // previous call timed out half-way): one fresh try.
                Err(e) if retried => return Err(e),
                Err(_) => retried = true,
            }
        }
    }

    fn core_error(&self, what: &str, e: Error) -> CoreError {
        CoreError::Container(format!("{what} {}: {e}", self.name()))
    }
}

impl Inner for RemoteProcess {
    fn stdio(&mut self) -> Stdio {
        self.stdio.take().unwrap_or_default()
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.wait.as_fd().as_raw_fd())
    }

    fn exit(&mut self) -> runtime_core::error::Result<Option<Exit>> {
        self.poll_exit().map_err(|e| match e {
            Error::Closed => CoreError::Container(format!("the agent closed the wait connection of {} without its exit", self.name())),
            e => self.core_error("waiting for", e),
        })
    }

    fn signal(&mut self, sig: i32) -> runtime_core::error::Result<()> {
        let req = Request::Signal { id: self.container.clone(), exec_id: self.exec.clone(), sig, all: false };
        self.call(req).map_err(|e| self.core_error(&format!("signal {sig} to"), e))
    }

    fn resize(&mut self, rows: u16, cols: u16) -> runtime_core::error::Result<()> {
        let req = Request::Resize { id: self.container.clone(), exec_id: self.exec.clone(), rows, cols };
        self.call(req).map_err(|e| self.core_error("resizing the terminal of", e))
    }
}

/// Opens the stream connections of process `exec` (None: the init) of
/// `container` through `dial` (a connection of the given role, past its
/// Welcome): stdin, stdout and stderr, or with a terminal one tty
/// connection as stdin and stdout (two handles of it).
pub fn open_stdio(dial: &mut dyn FnMut(Role) -> Result<Client>, container: &str, exec: Option<&str>, terminal: bool) -> Result<Stdio> {
    let mut stream = |which: Which| -> Result<OwnedFd> {
        let role = Role::Stream { container: container.to_string(), exec: exec.map(str::to_string), which };
        dial(role)?.into_fd()
    };
    if terminal {
        let tty = stream(Which::Tty)?;
        let out = tty.try_clone().map_err(|e| Error::io("duplicating the tty connection", e))?;
        return Ok(Stdio { stdin: Some(tty), stdout: Some(out), stderr: None, terminal: true });
    }
    Ok(Stdio {
        stdin: Some(stream(Which::Stdin)?),
        stdout: Some(stream(Which::Stdout)?),
        stderr: Some(stream(Which::Stderr)?),
        terminal: false,
    })
}
