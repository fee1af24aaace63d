//! [`Vm::run`]: the vCPU threads and the event loop, until the VM stops.
//! The host's stop signals come through a signalfd; the vCPU threads are
//! kicked out of KVM_RUN with a signal of their own when it stops.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;

use vmm_sys_util::epoll::{ControlOperation, EpollEvent, EventSet};
use vmm_sys_util::timerfd::TimerFd;

use super::{Vm, VmExit};
use crate::devices::virtio::console::{MAX_PORTS, PORT_TOKEN_BASE};
use crate::devices::virtio::vsock::{CONN_TOKEN, LISTEN_TOKEN};
use crate::lock;
use crate::vcpu::{self, Shared};
use crate::{Error, Result};

/// How long a listener that ran out of file descriptors stays out of the
/// event loop before it is tried again.
const LISTEN_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Stop signals the event loop turns into [`VmExit::Signal`].
const STOP_SIGNALS: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

impl Vm {
    /// Runs the VM until it stops; returns why. Blocks SIGTERM, SIGINT
    /// and SIGHUP in the calling thread (they stop the VM).
    pub fn run(mut self) -> Result<VmExit> {
        let sigfd = block_stop_signals()?;
        install_kick_handler()?;
        let stop_evt = self.stop_evt.try_clone().map_err(Error::io("eventfd"))?;
        let shared = Arc::new(Shared::new(stop_evt));

        let verbose = self.reporter.verbose();
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        for (id, vcpu) in self.vcpus.drain(..).enumerate() {
            let devices = self.devices.clone();
            let shared2 = shared.clone();
            let t = std::thread::Builder::new()
                .name(format!("vcpu{id}"))
                .spawn(move || {
                    unblock_kick_signal();
                    vcpu::run(id as u8, vcpu, devices, shared2, verbose)
                })
                .map_err(|e| Error::Thread(e.to_string()))?;
            threads.push(t);
        }

        let result = self.event_loop(&sigfd, &shared);
        if let Err(e) = &result {
            shared.stop(VmExit::VmmError(e.to_string()));
        }
        shared.stop(VmExit::VmmError("event loop ended".into()));
        kick_threads(&threads);
        for t in threads {
            if t.join().is_err() {
                return Err(Error::Thread("a vCPU thread panicked".into()));
            }
        }
        if let Ok(mut s) = self.devices.serial.lock() {
            s.flush();
        }
        // Output the clients have room for still reaches them; the rest
        // goes with the VM.
        if let Some((ports, _)) = &self.console {
            for p in ports {
                lock(p).flush();
            }
        }
        result?;
        let exit = shared.take_exit().unwrap_or_else(|| VmExit::VmmError("no exit reason".into()));
        let summary = self.reporter.summary();
        if !summary.is_empty() {
            eprintln!("rpc-vmm: guest faults: {summary}");
        }
        let host = self.reporter.host_summary();
        if !host.is_empty() {
            eprintln!("rpc-vmm: host errors: {host}");
        }
        Ok(exit)
    }

    fn event_loop(&mut self, sigfd: &File, shared: &Shared) -> Result<()> {
        const EXIT: u64 = 0;
        const SIGNAL: u64 = 1;
        const STDIN: u64 = 2;
        const TAP: u64 = 5;
        const LISTEN_AGAIN: u64 = 7;
        let epoll = &self.epoll;
        let add = |fd: i32, token: u64| {
            epoll.ctl(ControlOperation::Add, fd, EpollEvent::new(EventSet::IN, token)).map_err(Error::io("epoll_ctl"))
        };
        add(shared.exit_evt.as_raw_fd(), EXIT)?;
        add(sigfd.as_raw_fd(), SIGNAL)?;
        let mut stdin_open = false;
        if self.serial_input {
            stdin_open = add(libc::STDIN_FILENO, STDIN).is_ok();
        }
        // The console ports' and vsock's listeners and sockets are in the
        // set already (each watches its own).
        // A listener out of file descriptors leaves the set (it would be
        // ready again at once: a busy loop) until this timer fires.
        let mut listen_again = TimerFd::new().map_err(|e| Error::Io { what: "timerfd", source: e.into() })?;
        add(listen_again.as_raw_fd(), LISTEN_AGAIN)?;
        let paused = |what: &str, e: std::io::Error, timer: &mut TimerFd| {
            self.reporter.host_error("accept paused (out of file descriptors)", format_args!("{what}: {e}"));
            if !timer.is_armed().unwrap_or(false) {
                if let Err(e) = timer.reset(LISTEN_PAUSE, None) {
                    self.reporter.host_error("timerfd failed", format_args!("{e}"));
                }
            }
        };
        if let Some((host, _)) = &self.net {
            // Edge-triggered: a frame the guest has no buffer for waits in
            // the device, which reads on when the guest adds buffers.
            let fd = lock(host).tap.as_raw_fd();
            epoll
                .ctl(ControlOperation::Add, fd, EpollEvent::new(EventSet::IN | EventSet::EDGE_TRIGGERED, TAP))
                .map_err(Error::io("epoll_ctl"))?;
        }
        let mut events = vec![EpollEvent::default(); 16];
        loop {
            if shared.stopping() {
                return Ok(());
            }
            let n = match epoll.wait(-1, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Io { what: "epoll_wait", source: e }),
            };
            for ev in &events[..n] {
                match ev.data() {
                    EXIT => return Ok(()),
                    SIGNAL => {
                        let mut info = [0u8; 128];
                        let sig = match (&*sigfd).read(&mut info) {
                            Ok(128) => i32::from_ne_bytes([info[0], info[1], info[2], info[3]]),
                            _ => libc::SIGTERM,
                        };
                        shared.stop(VmExit::Signal(sig));
                        return Ok(());
                    }
                    STDIN => {
                        let mut buf = [0u8; 64];
                        match std::io::stdin().lock().read(&mut buf) {
                            Ok(0) | Err(_) => {
                                if stdin_open {
                                    let _ = epoll.ctl(ControlOperation::Delete, libc::STDIN_FILENO, EpollEvent::default());
                                    stdin_open = false;
                                }
                            }
                            Ok(k) => {
                                lock(&self.devices.serial).input(&buf[..k]);
                            }
                        }
                    }
                    t if (PORT_TOKEN_BASE..PORT_TOKEN_BASE + 2 * MAX_PORTS as u64).contains(&t) => {
                        let Some((ports, transport)) = &self.console else { continue };
                        let index = ((t - PORT_TOKEN_BASE) / 2) as usize;
                        let Some(port) = ports.get(index) else { continue };
                        if (t - PORT_TOKEN_BASE).is_multiple_of(2) {
                            let e = lock(port).accept();
                            if let Some(e) = e {
                                paused("virtio-console", e, &mut listen_again);
                            }
                        } else {
                            // Room in the client's socket, or input: the
                            // device writes and reads as far as it can.
                            lock(port).flush();
                        }
                        lock(transport).host_event(index);
                    }
                    LISTEN_TOKEN => {
                        if let Some((host, _)) = &self.vsock {
                            let e = lock(host).accept();
                            if let Some(e) = e {
                                paused("vsock", e, &mut listen_again);
                            }
                        }
                    }
                    t if t & CONN_TOKEN != 0 => {
                        if let Some((host, transport)) = &self.vsock {
                            lock(host).host_event((t & !CONN_TOKEN) as i32);
                            lock(transport).host_event(0);
                        }
                    }
                    TAP => {
                        if let Some((_, transport)) = &self.net {
                            lock(transport).host_event(0);
                        }
                    }
                    LISTEN_AGAIN => {
                        let _ = listen_again.wait();
                        // Each listener ready again is accepted from (or
                        // paused again) as usual.
                        for p in self.console.iter().flat_map(|(ports, _)| ports) {
                            lock(p).resume_listening();
                        }
                        if let Some((host, _)) = &self.vsock {
                            lock(host).resume_listening();
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

/// Blocks the stop signals in this thread (vCPU threads inherit it) and
/// returns a signalfd for them.
fn block_stop_signals() -> Result<File> {
    let set = sigset(&STOP_SIGNALS);
    // SAFETY: plain libc calls on a valid signal set; the fd returned by
    // signalfd is owned by the File.
    unsafe {
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(Error::Io { what: "pthread_sigmask", source: std::io::Error::from_raw_os_error(rc) });
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(Error::io("signalfd")(std::io::Error::last_os_error()));
        }
        use std::os::fd::FromRawFd;
        Ok(File::from_raw_fd(fd))
    }
}

extern "C" fn kick_handler(_: libc::c_int) {
    vcpu::kicked();
}

fn install_kick_handler() -> Result<()> {
    // SAFETY: installs an async-signal-safe no-op handler, without
    // SA_RESTART so KVM_RUN returns EINTR.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = kick_handler as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(vcpu::kick_signal(), &sa, std::ptr::null_mut()) != 0 {
            return Err(Error::io("sigaction")(std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

fn unblock_kick_signal() {
    let set = sigset(&[vcpu::kick_signal()]);
    // SAFETY: plain libc call on a valid set.
    unsafe {
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Kicks every vCPU thread out of KVM_RUN once: the kick handler sets the
/// thread's `immediate_exit`, so a thread about to enter KVM_RUN leaves it
/// at once, and every thread sees the VM stopping. The caller joins them.
fn kick_threads(threads: &[JoinHandle<()>]) {
    use std::os::unix::thread::JoinHandleExt;
    for t in threads {
        if !t.is_finished() {
            // SAFETY: the thread has not been joined, so its pthread_t is
            // valid; the kick signal's handler is async-signal-safe.
            unsafe {
                libc::pthread_kill(t.as_pthread_t(), vcpu::kick_signal());
            }
        }
    }
}
