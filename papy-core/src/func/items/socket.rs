//! `socket` items: the payload stays in the dumping process and is sent
//! over one TCP connection to the reader that presents the item's token.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::file::read_bounded;
use super::payload::Payload;
use super::trust::is_authentic;
use super::{
    check_len, field, int_field, io_err, log_failure, str_field, DumpOptions, Dumped, ItemsError,
    LoadOptions, Served,
};
use crate::value::Value;

/// Listens for the reader of `payload` on a thread of its own.
pub(super) fn dump(
    payload: Payload,
    opts: &DumpOptions,
    locator: impl Fn(&str, Vec<(&str, Value)>) -> Value,
) -> Result<Dumped, ItemsError> {
    crate::permissions::check_network("a socket item")?;
    let listener = TcpListener::bind((opts.host.as_str(), 0))
        .map_err(io_err(format!("listening on {}", opts.host)))?;
    let addr = listener
        .local_addr()
        .map_err(io_err("reading the socket address"))?;
    listener
        .set_nonblocking(true)
        .map_err(io_err("configuring the socket"))?;
    // The reader proves it holds this locator: a late reader of an
    // earlier item whose port was reused never gets this payload.
    let token = new_token();
    let timeout = opts.timeout;
    let server = std::thread::Builder::new()
        .name("papy-item-socket".into())
        .spawn(move || {
            let served = serve_socket(&listener, payload.bytes(), token, timeout);
            log_failure(&served);
            served
        })
        .map_err(io_err("starting the socket thread"))?;
    // The address actually bound (`localhost` may be 127.0.0.1 or ::1).
    let host = if addr.ip().is_unspecified() {
        opts.host.clone()
    } else {
        addr.ip().to_string()
    };
    Ok(Dumped {
        locator: locator(
            "socket",
            vec![
                ("host", Value::from(host)),
                ("port", Value::from(u64::from(addr.port()))),
                ("token", Value::Int(token as i64)),
            ],
        ),
        server: Some(server),
    })
}

/// Connects to a socket item's server and reads its bytes.
pub(super) fn load(locator: &Value, opts: &LoadOptions, len: u64) -> Result<Vec<u8>, ItemsError> {
    let host = str_field(locator, "host")?;
    // Connecting is the locator's whole effect: only this run's.
    if !is_authentic(locator) {
        return Err(ItemsError::Untrusted(format!(
            "the socket item at {} was not dumped by this run; not connected to",
            crate::error::quote_peer(host)
        )));
    }
    let port = u16::try_from(int_field(locator, "port")?)
        .map_err(|_| ItemsError::Locator(format!("bad port in {locator}")))?;
    let place = format!("{host}:{port}");
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(io_err(format!("resolving {place}")))?
        .next()
        .ok_or_else(|| ItemsError::Locator(format!("{place} has no address")))?;
    let mut s = TcpStream::connect_timeout(&addr, opts.timeout)
        .map_err(io_err(format!("connecting to the item at {place}")))?;
    let token = field(locator, "token")?
        .as_int()
        .ok_or_else(|| ItemsError::Locator(format!("`token` is not a number in {locator}")))?;
    s.set_read_timeout(Some(opts.timeout))
        .and_then(|()| s.write_all(&(token as u64).to_le_bytes()))
        .map_err(io_err(format!("asking {place} for the item")))?;
    let bytes = read_bounded(&mut s, len, &format!("the item at {place}"))?;
    check_len(&bytes, len, &place)?;
    Ok(bytes)
}

/// A socket item's token: 64 bits from the operating system's random source
/// (a reader that guesses it could take the payload).
fn new_token() -> u64 {
    u64::from_le_bytes(crate::run_key::random())
}

/// How long a connection to an item socket has to present its token.
pub(super) const TOKEN_WAIT: Duration = Duration::from_secs(2);

/// Most connections waiting to present a token at once (the oldest is
/// dropped to make room).
const MAX_PENDING: usize = 64;

/// A connection that has not yet presented a whole token.
struct Pending {
    stream: TcpStream,
    got: Vec<u8>,
    until: Instant,
}

/// Serves the payload to the first connection that presents `token`.
/// Connections are read without blocking, each with [`TOKEN_WAIT`] to send
/// its 8 bytes: an idle or wrong one is dropped and never delays the real
/// reader.
fn serve_socket(listener: &TcpListener, bytes: &[u8], token: u64, timeout: Duration) -> Served {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<Pending> = Vec::new();
    loop {
        let mut busy = false;
        match listener.accept() {
            Ok((s, _)) => {
                busy = true;
                if s.set_nonblocking(true).is_ok() {
                    if pending.len() >= MAX_PENDING {
                        pending.remove(0);
                    }
                    pending.push(Pending {
                        stream: s,
                        got: Vec::with_capacity(8),
                        until: Instant::now() + TOKEN_WAIT,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => busy = true,
            Err(e) => return Served::Failed(format!("accepting the reader: {e}")),
        }
        let now = Instant::now();
        let mut found = None;
        pending.retain_mut(|p| {
            if found.is_some() {
                return true;
            }
            let mut buf = [0u8; 8];
            let want = 8 - p.got.len();
            match p.stream.read(&mut buf[..want]) {
                Ok(0) => return false,
                Ok(n) => {
                    busy = true;
                    p.got.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
            if p.got.len() == 8 {
                if p.got[..] == token.to_le_bytes() {
                    found = p.stream.try_clone().ok();
                }
                // Wrong or right, this connection is done waiting.
                return false;
            }
            now < p.until
        });
        if let Some(mut s) = found {
            let sent = s
                .set_nonblocking(false)
                .and_then(|()| s.set_write_timeout(Some(timeout.max(Duration::from_secs(1)))))
                .and_then(|()| s.write_all(bytes))
                .and_then(|()| s.shutdown(std::net::Shutdown::Write));
            return match sent {
                Ok(()) => Served::Done,
                Err(e) => Served::Failed(format!("sending the item: {e}")),
            };
        }
        if Instant::now() >= deadline {
            tracing::warn!("no reader came for a socket item within {timeout:?}");
            return Served::TimedOut;
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}
