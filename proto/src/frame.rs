//! The wire format: `len: u32 LE` (the bytes after it, [`MIN_FRAME`]..=
//! [`MAX_FRAME`]) · `kind: u8` · `id: u32 LE` · body (UTF-8 JSON of the
//! kind's enum).
//!
//! [`FrameReader`] is incremental: it takes bytes as partial reads give
//! them, checks `len` before it allocates anything, and allocates exactly
//! the body's size. Reading a fd, it never reads past the frame it is in:
//! after a stream connection's Welcome (or Hello) come raw stdio bytes,
//! which belong to whoever takes the fd over.

use std::io::Write;
use std::os::fd::AsFd;
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::msg::{ErrorBody, Event, Kind, Reply, Request, MAX_FRAME, MIN_FRAME};

/// The length prefix, the kind and the id: what comes before a body.
pub const HEADER: usize = 9;

/// The name of a kind, as error messages say it.
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Request => "request",
        Kind::Reply => "reply",
        Kind::Event => "event",
        Kind::Error => "error",
    }
}

/// One complete frame; its body not yet decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    pub id: u32,
    pub body: Vec<u8>,
}

impl Frame {
    /// The body as a [`Request`] (an error unless this is a request frame).
    pub fn request(&self) -> Result<Request> {
        self.decode(Kind::Request)
    }

    /// The body as a [`Reply`] (an error unless this is a reply frame).
    pub fn reply(&self) -> Result<Reply> {
        self.decode(Kind::Reply)
    }

    /// The body as an [`Event`] (an error unless this is an event frame).
    pub fn event(&self) -> Result<Event> {
        self.decode(Kind::Event)
    }

    /// The body as an [`ErrorBody`] (an error unless this is an error frame).
    pub fn error(&self) -> Result<ErrorBody> {
        self.decode(Kind::Error)
    }

    /// The frame's bytes on the wire.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        encode_raw(self.kind, self.id, &self.body)
    }

    fn decode<T: DeserializeOwned>(&self, want: Kind) -> Result<T> {
        if self.kind != want {
            return Err(Error::UnexpectedKind { want: kind_name(want), got: kind_name(self.kind), id: self.id });
        }
        // serde_json keeps its recursion limit (128) on: a deeply nested
        // body is an error, not a stack overflow.
        serde_json::from_slice(&self.body).map_err(|source| Error::Json { kind: kind_name(want), source })
    }
}

/// The bytes of a frame of `kind` and `id` whose body is `body`'s JSON.
pub fn encode(kind: Kind, id: u32, body: &impl Serialize) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(body).map_err(|source| Error::Encode { kind: kind_name(kind), source })?;
    encode_raw(kind, id, &json)
}

/// The bytes of a frame whose body is already encoded.
pub fn encode_raw(kind: Kind, id: u32, body: &[u8]) -> Result<Vec<u8>> {
    let len = (HEADER - 4) as u64 + body.len() as u64;
    if len > u64::from(MAX_FRAME) {
        return Err(Error::TooLong(len));
    }
    // Checked above: len fits in u32.
    let len = len as u32;
    if len < MIN_FRAME {
        return Err(Error::TooShort(len));
    }
    let mut out = Vec::with_capacity(4 + len as usize);
    out.extend_from_slice(&len.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Assembles frames from bytes as they come. After an error the
/// connection is unusable (the stream is out of step): close it.
#[derive(Debug, Default)]
pub struct FrameReader {
    hdr: [u8; HEADER],
    hdr_got: usize,
    /// Allocated (to the body's exact size) once the header is checked.
    body: Vec<u8>,
    body_got: usize,
}

/// What one read of a fd gave.
enum Step {
    Frame(Frame),
    /// Bytes taken, the frame not complete yet.
    More,
    /// Nothing to read now (EAGAIN).
    Empty,
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Whether part of a frame has arrived (a close now is mid-frame).
    pub fn in_frame(&self) -> bool {
        self.hdr_got > 0
    }

    /// The bytes a frame in progress holds (the body's allocation
    /// included): never more than `4 + MAX_FRAME`.
    pub fn held(&self) -> usize {
        HEADER + self.body.capacity()
    }

    /// The frame's size on the wire, for a mid-frame close's message.
    fn frame_size(&self) -> usize {
        if self.hdr_got < 4 {
            HEADER
        } else {
            4 + u32::from_le_bytes([self.hdr[0], self.hdr[1], self.hdr[2], self.hdr[3]]) as usize
        }
    }

    fn got(&self) -> usize {
        self.hdr_got + self.body_got
    }

    /// Takes bytes from `data` until one frame is complete: how many bytes
    /// it took and the frame if one completed. Bytes after that frame are
    /// left to the caller (the next call, or a raw stream).
    pub fn push(&mut self, data: &[u8]) -> Result<(usize, Option<Frame>)> {
        let mut taken = 0;
        if self.hdr_got < HEADER {
            let n = fill(self.hdr.get_mut(self.hdr_got..).unwrap_or_default(), data);
            self.hdr_got += n;
            taken = n;
            self.check_header()?;
        }
        if self.hdr_got == HEADER {
            let rest = data.get(taken..).unwrap_or_default();
            let n = fill(self.body.get_mut(self.body_got..).unwrap_or_default(), rest);
            self.body_got += n;
            taken += n;
        }
        Ok((taken, self.complete()))
    }

    /// Takes all of `data`: the frames it completes, in order.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<Vec<Frame>> {
        let mut frames = Vec::new();
        while !data.is_empty() {
            let (n, frame) = self.push(data)?;
            data = data.get(n..).unwrap_or_default();
            frames.extend(frame);
        }
        Ok(frames)
    }

    /// At the peer's EOF: fine between frames, [`Error::MidFrame`] inside one.
    pub fn finish(&self) -> Result<()> {
        if self.in_frame() {
            return Err(Error::MidFrame { got: self.got(), want: self.frame_size() });
        }
        Ok(())
    }

    /// Reads a non-blocking fd until a frame is complete (Some) or it has
    /// nothing more now (None). EOF between frames is [`Error::Closed`],
    /// inside one [`Error::MidFrame`]. Never reads past the frame.
    pub fn read_from(&mut self, fd: impl AsFd) -> Result<Option<Frame>> {
        loop {
            match self.read_step(fd.as_fd())? {
                Step::Frame(f) => return Ok(Some(f)),
                Step::More => continue,
                Step::Empty => return Ok(None),
            }
        }
    }

    /// One read(2) (after a poll said readable): the frame if it completed.
    pub(crate) fn read_once(&mut self, fd: std::os::fd::BorrowedFd<'_>) -> Result<Option<Frame>> {
        match self.read_step(fd)? {
            Step::Frame(f) => Ok(Some(f)),
            Step::More | Step::Empty => Ok(None),
        }
    }

    /// One read(2) of at most what the frame in progress needs.
    fn read_step(&mut self, fd: std::os::fd::BorrowedFd<'_>) -> Result<Step> {
        // Exactly the rest of the header, or of the body: never past the frame.
        let res = if self.hdr_got < HEADER {
            nix::unistd::read(fd, self.hdr.get_mut(self.hdr_got..).unwrap_or_default())
        } else {
            nix::unistd::read(fd, self.body.get_mut(self.body_got..).unwrap_or_default())
        };
        let n = match res {
            Ok(n) => n,
            Err(Errno::EINTR) => return Ok(Step::More),
            Err(Errno::EAGAIN) => return Ok(Step::Empty),
            Err(e) => return Err(Error::errno("reading a frame", e)),
        };
        if n == 0 {
            self.finish()?;
            return Err(Error::Closed);
        }
        if self.hdr_got < HEADER {
            self.hdr_got += n;
            self.check_header()?;
        } else {
            self.body_got += n;
        }
        Ok(match self.complete() {
            Some(f) => Step::Frame(f),
            None => Step::More,
        })
    }

    /// Checks the length as soon as its 4 bytes are in, the kind once the
    /// header is; then allocates the body.
    fn check_header(&mut self) -> Result<()> {
        if self.hdr_got >= 4 {
            let len = u32::from_le_bytes([self.hdr[0], self.hdr[1], self.hdr[2], self.hdr[3]]);
            if len > MAX_FRAME {
                return Err(Error::TooLong(u64::from(len)));
            }
            if len < MIN_FRAME {
                return Err(Error::TooShort(len));
            }
        }
        if self.hdr_got >= 5 && Kind::from_u8(self.hdr[4]).is_none() {
            return Err(Error::UnknownKind(self.hdr[4]));
        }
        if self.hdr_got == HEADER && self.body.is_empty() {
            let len = u32::from_le_bytes([self.hdr[0], self.hdr[1], self.hdr[2], self.hdr[3]]);
            // len was checked against MIN_FRAME (> HEADER - 4) above.
            self.body = vec![0; len as usize - (HEADER - 4)];
            self.body_got = 0;
        }
        Ok(())
    }

    /// The frame, once header and body are all in; the reader is then
    /// ready for the next one.
    fn complete(&mut self) -> Option<Frame> {
        if self.hdr_got < HEADER || self.body_got < self.body.len() {
            return None;
        }
        let kind = Kind::from_u8(self.hdr[4])?;
        let id = u32::from_le_bytes([self.hdr[5], self.hdr[6], self.hdr[7], self.hdr[8]]);
        let body = std::mem::take(&mut self.body);
        self.hdr_got = 0;
        self.body_got = 0;
        Some(Frame { kind, id, body })
    }
}

/// Copies what fits of `src` to the start of `dst`: how many bytes.
fn fill(dst: &mut [u8], src: &[u8]) -> usize {
    let n = dst.len().min(src.len());
    dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s);
    n
}

/// Writes one frame to a blocking writer (a UnixStream, a File).
pub fn write_frame(w: &mut impl Write, kind: Kind, id: u32, body: &impl Serialize) -> Result<()> {
    let bytes = encode(kind, id, body)?;
    w.write_all(&bytes).map_err(|e| Error::io("writing a frame", e))?;
    w.flush().map_err(|e| Error::io("writing a frame", e))
}

/// Reads one frame from `fd` (blocking or not) by the deadline; never
/// reads past it. A peer that sends nothing, or half a frame, gets
/// [`Error::Timeout`] at the deadline.
pub fn read_frame(fd: impl AsFd, deadline: Instant) -> Result<Frame> {
    read_frame_for(fd.as_fd(), deadline, || "frame".to_string())
}

/// [`read_frame`], the timeout saying `what()` was waited for.
pub(crate) fn read_frame_for(fd: std::os::fd::BorrowedFd<'_>, deadline: Instant, what: impl Fn() -> String) -> Result<Frame> {
    FrameReader::new().read_until(fd, deadline, what)
}

impl FrameReader {
    /// Polls and reads `fd` until a frame is complete or `deadline`
    /// passes; a partial frame stays in the reader for the next call.
    pub(crate) fn read_until(&mut self, fd: std::os::fd::BorrowedFd<'_>, deadline: Instant, what: impl Fn() -> String) -> Result<Frame> {
        let start = Instant::now();
        loop {
            if !wait_readable(fd, deadline)? {
                return Err(Error::Timeout { what: what(), after: deadline.saturating_duration_since(start) });
            }
            if let Some(f) = self.read_once(fd)? {
                return Ok(f);
            }
        }
    }
}

/// Polls `fd` for input until `deadline`: false when it passed first.
/// Readable includes EOF and errors (the read then says which).
pub(crate) fn wait_readable(fd: std::os::fd::BorrowedFd<'_>, deadline: Instant) -> Result<bool> {
    poll_until(fd, PollFlags::POLLIN, deadline)
}

/// Polls `fd` for `events` until `deadline`: false when it passed first.
pub(crate) fn poll_until(fd: std::os::fd::BorrowedFd<'_>, events: PollFlags, deadline: Instant) -> Result<bool> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Round up so that a deadline 0.3 ms away is not a busy loop of
        // zero-timeout polls; poll's timeout is an i32 of milliseconds.
        let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd, events)];
        match nix::poll::poll(&mut fds, timeout) {
            Ok(0) => {
                if Instant::now() >= deadline {
                    return Ok(false);
                }
            }
            Ok(_) => {
                let got = fds[0].revents().unwrap_or(PollFlags::empty());
                if got.contains(PollFlags::POLLNVAL) {
                    return Err(Error::errno("polling a connection", Errno::EBADF));
                }
                return Ok(true);
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::errno("polling a connection", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{ErrorCode, Role, PROTO};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    fn hello() -> Request {
        Request::Hello { proto: [PROTO, PROTO], role: Role::Control, client: "test".into() }
    }

    #[test]
    fn encode_then_read_in_every_chunking() {
        let mut wire = encode(Kind::Request, 7, &hello()).expect("encode");
        wire.extend(encode(Kind::Error, 8, &ErrorBody { code: ErrorCode::Busy, msg: "x".into() }).expect("encode"));
        for chunk in 1..wire.len() {
            let mut r = FrameReader::new();
            let mut frames = Vec::new();
            for c in wire.chunks(chunk) {
                frames.extend(r.feed(c).expect("feed"));
            }
            r.finish().expect("ends between frames");
            assert_eq!(frames.len(), 2, "chunk {chunk}");
            assert_eq!(frames[0].id, 7);
            assert_eq!(frames[0].request().expect("request"), hello());
            assert_eq!(frames[1].error().expect("error").code, ErrorCode::Busy);
            assert_eq!(frames[0].to_bytes().expect("re-encode"), wire[..frames[0].body.len() + 4 + 5]);
        }
    }

    #[test]
    fn push_stops_at_the_end_of_a_frame() {
        let mut wire = encode(Kind::Reply, 1, &Reply::Ok).expect("encode");
        let n = wire.len();
        wire.extend_from_slice(b"raw stdout bytes");
        let (taken, f) = FrameReader::new().push(&wire).expect("push");
        assert_eq!(taken, n);
        assert_eq!(f.expect("frame").reply().expect("reply"), Reply::Ok);
    }

    #[test]
    fn oversized_length_is_refused_before_allocating() {
        let mut r = FrameReader::new();
        let e = r.feed(&u32::MAX.to_le_bytes()).expect_err("too long");
        assert_eq!(e.to_string(), "frame of 4294967295 bytes over the 4 MiB limit");
        assert_eq!(r.held(), HEADER);
        let e = FrameReader::new().feed(&[3, 0, 0, 0]).expect_err("too short");
        assert_eq!(e.to_string(), "frame of 3 bytes under the 9-byte minimum");
        let e = FrameReader::new().feed(&[9, 0, 0, 0, 9]).expect_err("kind");
        assert_eq!(e.to_string(), "unknown frame kind 9");
    }

    #[test]
    fn encode_refuses_over_the_limit() {
        let big = "x".repeat(MAX_FRAME as usize);
        let e = encode(Kind::Event, 0, &big).expect_err("too long");
        assert!(matches!(e, Error::TooLong(n) if n > u64::from(MAX_FRAME)), "{e}");
    }

    #[test]
    fn bad_json_and_wrong_kind_are_errors() {
        let f = Frame { kind: Kind::Reply, id: 1, body: b"{\"type\":\"nope\"}".to_vec() };
        let e = f.reply().expect_err("unknown type");
        assert!(e.to_string().starts_with("bad JSON in a reply frame: unknown variant `nope`"), "{e}");
        let e = f.event().expect_err("kind");
        assert_eq!(e.to_string(), "expected a event frame, got a reply frame (id 1)");
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let f = Frame { kind: Kind::Request, id: 1, body: deep.into_bytes() };
        assert!(f.request().is_err());
    }

    #[test]
    fn close_mid_frame_says_how_far_it_got() {
        let (a, mut b) = UnixStream::pair().expect("pair");
        let wire = encode(Kind::Reply, 1, &Reply::Created { guest_pid: 1234567 }).expect("encode");
        b.write_all(&wire[..12]).expect("write");
        drop(b);
        let e = read_frame(&a, Instant::now() + Duration::from_secs(5)).expect_err("mid-frame");
        assert_eq!(e.to_string(), format!("closed the connection mid-frame (12 of {} bytes)", wire.len()));
        let (a, b) = UnixStream::pair().expect("pair");
        drop(b);
        let e = read_frame(&a, Instant::now() + Duration::from_secs(5)).expect_err("closed");
        assert!(matches!(e, Error::Closed), "{e}");
    }

    #[test]
    fn read_frame_honours_its_deadline_on_half_a_frame() {
        let (a, mut b) = UnixStream::pair().expect("pair");
        let wire = encode(Kind::Reply, 1, &Reply::Pong).expect("encode");
        b.write_all(&wire[..6]).expect("write");
        let t = Instant::now();
        let e = read_frame(&a, t + Duration::from_millis(300)).expect_err("timeout");
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(1300), "{took:?}");
    }

    #[test]
    fn read_from_a_nonblocking_fd_leaves_the_bytes_after_the_frame() {
        let (a, mut b) = UnixStream::pair().expect("pair");
        a.set_nonblocking(true).expect("nonblock");
        let mut r = FrameReader::new();
        assert!(r.read_from(&a).expect("empty").is_none());
        let wire = encode(Kind::Event, 0, &Event::Exit { status: 137, signal: Some(9) }).expect("encode");
        b.write_all(&wire[..3]).expect("write");
        assert!(r.read_from(&a).expect("partial").is_none());
        assert!(r.in_frame());
        b.write_all(&wire[3..]).expect("write");
        b.write_all(b"after").expect("write");
        let f = r.read_from(&a).expect("read").expect("frame");
        assert_eq!(f.event().expect("event"), Event::Exit { status: 137, signal: Some(9) });
        let mut rest = [0u8; 16];
        let n = nix::unistd::read(&a, &mut rest).expect("read rest");
        assert_eq!(&rest[..n], b"after");
    }

    #[test]
    fn write_frame_then_read_frame() {
        let (a, mut b) = UnixStream::pair().expect("pair");
        write_frame(&mut b, Kind::Request, 3, &Request::Ping).expect("write");
        let f = read_frame(&a, Instant::now() + Duration::from_secs(5)).expect("read");
        assert_eq!((f.kind, f.id), (Kind::Request, 3));
        assert_eq!(f.request().expect("request"), Request::Ping);
    }
}
