//! The live view's HTTP server: a small synchronous server (`tiny_http`)
//! on one thread, serving the page, `/api/state`, `/metrics`, and the
//! pause / resume / stop controls, which act only with the run's token.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use anyhow::{bail, Context};

use super::view::View;

/// The page, with every asset inline: no request leaves the machine.
pub(crate) const PAGE: &str = include_str!("page.html");

/// What an operator asked for from the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Pause the run.
    Pause,
    /// Resume a paused run.
    Resume,
    /// Stop gracefully (what is taken finishes, outputs are complete).
    Stop,
}

/// Where to listen: `ADDR` as given to `--ui` (an address, or an address
/// and a port; port 0, the default, takes a free one). A non-loopback
/// address needs `public`.
///
/// # Errors
/// Not an address, or not loopback without `public`.
pub(crate) fn bind_address(addr: Option<&str>, public: bool) -> anyhow::Result<SocketAddr> {
    let addr = match addr.map(str::trim).filter(|a| !a.is_empty()) {
        None => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        Some(a) => match a.parse::<SocketAddr>() {
            Ok(s) => s,
            Err(_) => match a.parse::<IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, 0),
                Err(_) => bail!(
                    "--ui {a:?}: not an address (give an IP address, with a port or not: 127.0.0.1, 127.0.0.1:8080)"
                ),
            },
        },
    };
    if !addr.ip().is_loopback() && !public {
        bail!(
            "--ui {addr}: a non-loopback address makes the page reachable from other machines; add --ui-public to mean it (the controls still need the token)"
        );
    }
    Ok(addr)
}

/// The latest view, shared with the server thread.
#[derive(Default)]
pub(crate) struct Board {
    view: Mutex<Option<Arc<View>>>,
}

impl Board {
    /// Publishes `view`.
    pub(crate) fn publish(&self, view: View) {
        *self.view.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(view));
    }

    fn latest(&self) -> Option<Arc<View>> {
        self.view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A running server; dropping it stops it.
pub(crate) struct Server {
    http: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    /// The page's address, token included.
    pub url: String,
}

impl Server {
    /// Listens on `addr`, serving `board`, sending controls to `controls`.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub(crate) fn start(
        addr: SocketAddr,
        board: Arc<Board>,
        controls: Sender<Control>,
    ) -> anyhow::Result<Server> {
        let http = tiny_http::Server::http(addr)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("--ui: listening on {addr}"))?;
        let bound = http
            .server_addr()
            .to_ip()
            .context("--ui: the server has no IP address")?;
        let token: String = papy_core::run_key::random::<16>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let url = format!("http://{bound}/?token={token}");
        let http = Arc::new(http);
        let serving = http.clone();
        let thread = std::thread::Builder::new()
            .name("papy-ui".into())
            .spawn(move || {
                for request in serving.incoming_requests() {
                    respond(request, &board, &controls, &token);
                }
            })
            .context("--ui: starting the server thread")?;
        Ok(Server {
            http,
            thread: Some(thread),
            url,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.http.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `a == b` in a time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    // Both are ASCII constants of this file: a failure is a bug here.
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
        .unwrap_or_else(|()| unreachable!("bad header {name}"))
}

fn respond(request: tiny_http::Request, board: &Board, controls: &Sender<Control>, token: &str) {
    use tiny_http::{Method, Response};
    let url = request.url().to_string();
    let path = url.split('?').next().unwrap_or("");
    let method = request.method().clone();
    let text = |body: String, status: u16, kind: &str| {
        Response::from_string(body)
            .with_status_code(status)
            .with_header(header("Content-Type", kind))
            .with_header(header("Cache-Control", "no-store"))
            .with_header(header("X-Content-Type-Options", "nosniff"))
    };
    let response = match (&method, path) {
        (Method::Get, "/" | "/index.html") => text(PAGE.to_string(), 200, "text/html; charset=utf-8")
            .with_header(header(
                "Content-Security-Policy",
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
            )),
        (Method::Get, "/api/state") => match board.latest() {
            Some(v) => match serde_json::to_string(&*v) {
                Ok(json) => text(json, 200, "application/json"),
                Err(e) => text(format!("{{\"error\":{:?}}}", e.to_string()), 500, "application/json"),
            },
            None => text("{\"state\":\"starting\"}".into(), 200, "application/json"),
        },
        (Method::Get, "/metrics") => match board.latest() {
            Some(v) => text(super::metrics::render(&v), 200, "text/plain; version=0.0.4"),
            None => text(String::new(), 200, "text/plain; version=0.0.4"),
        },
        (Method::Post, "/api/pause" | "/api/resume" | "/api/stop") => {
            let given = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("Authorization"))
                .map(|h| h.value.as_str().trim_start_matches("Bearer ").to_string());
            if given.as_deref().is_some_and(|g| same(g, token)) {
                let c = match path {
                    "/api/pause" => Control::Pause,
                    "/api/resume" => Control::Resume,
                    _ => Control::Stop,
                };
                let _ = controls.send(c);
                text("{\"ok\":true}".into(), 200, "application/json")
            } else {
                text(
                    "{\"error\":\"the controls need the run's token (the one in the URL papy printed)\"}".into(),
                    403,
                    "application/json",
                )
            }
        }
        _ => text("not found".into(), 404, "text/plain"),
    };
    let _ = request.respond(response);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_without_public() {
        assert_eq!(
            bind_address(None, false).unwrap().to_string(),
            "127.0.0.1:0"
        );
        assert_eq!(
            bind_address(Some("127.0.0.1:8080"), false).unwrap().port(),
            8080
        );
        assert!(bind_address(Some("::1"), false).is_ok());
        let e = bind_address(Some("0.0.0.0"), false).unwrap_err();
        assert!(e.to_string().contains("--ui-public"), "{e}");
        assert!(bind_address(Some("0.0.0.0"), true).is_ok());
        assert!(bind_address(Some("localhost:x"), false).is_err());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
