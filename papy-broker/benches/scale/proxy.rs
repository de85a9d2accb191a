//! A TCP proxy that holds every chunk for a fixed time in each direction:
//! the round-trip time of a distant Redis, on one machine whose kernel has
//! no `netem` qdisc. Chunks keep their order and are not throttled: each is
//! written `one_way` after it was read, whatever came before it, so a
//! pipelined request costs one round trip as it would on a long link.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A running proxy; stops accepting when dropped (connections already
/// open end when either side closes them).
pub(crate) struct DelayProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl DelayProxy {
    /// Listens on an ephemeral port of 127.0.0.1 and forwards every
    /// connection to `upstream`, holding each chunk `rtt / 2` each way.
    pub(crate) fn start(upstream: SocketAddr, rtt: Duration) -> io::Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let one_way = rtt / 2;
        thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Acquire) {
                    break;
                }
                let Ok(down) = conn else { continue };
                if let Err(e) = link(down, upstream, one_way) {
                    eprintln!("delay proxy: cannot reach {upstream}: {e}");
                }
            }
        });
        Ok(DelayProxy { addr, stop })
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Joins a client to a new connection upstream, both ways.
fn link(down: TcpStream, upstream: SocketAddr, one_way: Duration) -> io::Result<()> {
    let up = TcpStream::connect(upstream)?;
    down.set_nodelay(true)?;
    up.set_nodelay(true)?;
    pump(down.try_clone()?, up.try_clone()?, one_way);
    pump(up, down, one_way);
    Ok(())
}

/// Copies `from` to `to`, each chunk `delay` after it was read: a reader
/// thread stamps chunks, a writer thread waits for each one's time.
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = from.shutdown(Shutdown::Read);
    });
    thread::spawn(move || {
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
