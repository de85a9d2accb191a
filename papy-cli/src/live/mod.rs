//! Seeing and steering a running pipeline: the live page (`papy run
//! --ui`), its JSON (`/api/state`) and Prometheus (`/metrics`) forms,
//! the run report (`--report`), and the terminal's progress lines, all
//! made from one [`View`] of the engine's counters. None of
//! it is in the engine: a run without `--ui` or `--report` samples the
//! counters twice a second for its progress lines, and nothing more.
//!
//! | module | what it holds |
//! |---|---|
//! | [`view`] | the [`View`] and the [`Sampler`] that makes it |
//! | [`layout`] | where the graph draws each node |
//! | [`server`] | the HTTP server, the page, the token-gated controls |
//! | [`metrics`] | the Prometheus text |
//! | [`report`] | the self-contained HTML report |
//! | [`terminal`] | progress lines on stderr |

pub(crate) mod layout;
pub(crate) mod metrics;
pub(crate) mod report;
pub(crate) mod server;
pub(crate) mod terminal;
pub(crate) mod view;

use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use papy_core::Plumber;

use crate::run::failures::Failures;
use server::{Board, Control, Server};
use view::{Plan, Sampler, View};

/// How often the view is sampled while a run goes on.
const EVERY: Duration = Duration::from_millis(500);

/// What `papy run` asked to see.
pub(crate) struct Options {
    /// Serve the live page here (`--ui`).
    pub ui: Option<std::net::SocketAddr>,
    /// Progress lines on stderr (not `--quiet`).
    pub progress: bool,
    /// One progress line per node (`-v`, or a tall terminal).
    pub per_node: bool,
}

/// The live view of one run.
pub(crate) struct Watch {
    sampler: Sampler,
    board: Arc<Board>,
    server: Option<Server>,
    controls: Option<Receiver<Control>>,
    terminal: terminal::Terminal,
    last: Option<Instant>,
}

impl Watch {
    /// Starts watching (and serving, with `--ui`).
    ///
    /// # Errors
    /// The page's address cannot be bound.
    pub(crate) fn start(opts: &Options, plan: Plan, plumber: &Plumber) -> anyhow::Result<Watch> {
        let board = Arc::new(Board::default());
        let (server, controls) = match opts.ui {
            Some(addr) => {
                let (tx, rx) = channel();
                let s = Server::start(addr, board.clone(), tx)?;
                eprintln!("papy: live view at {}", s.url);
                (Some(s), Some(rx))
            }
            None => (None, None),
        };
        Ok(Watch {
            sampler: Sampler::new(plan),
            board,
            server,
            controls,
            terminal: terminal::Terminal::new(opts.progress, opts.per_node, plumber),
            last: None,
        })
    }

    /// Samples the run when it is time (updating the page and the
    /// progress lines); returns a control the page asked for, if any.
    pub(crate) fn tick(&mut self, plumber: &mut Plumber, failures: &Failures) -> Option<Control> {
        if self.last.is_none_or(|l| l.elapsed() >= EVERY) {
            self.last = Some(Instant::now());
            let v = self.sampler.sample(plumber, failures);
            self.terminal.show(&v);
            if self.server.is_some() {
                self.board.publish(v);
            }
        }
        let c = self.controls.as_ref()?.try_recv().ok();
        if c == Some(Control::Stop) {
            self.stopping();
        }
        c
    }

    /// A stop was asked for: the view says `stopping` until the end.
    pub(crate) fn stopping(&mut self) {
        self.sampler.stopping = true;
    }

    /// The run is over (`finished`: every input ended; else it was
    /// stopped): the final view (published to the page, with the
    /// worker timeline when the Plumber kept one); the progress lines end.
    pub(crate) fn finish(
        &mut self,
        plumber: &mut Plumber,
        failures: &Failures,
        finished: bool,
    ) -> View {
        self.sampler.stopping = false;
        self.sampler.ended = Some(if finished { "finished" } else { "stopped" });
        let mut v = self.sampler.sample(plumber, failures);
        v.timeline = view::timeline(plumber);
        v.settings = Some(self.sampler.settings());
        self.terminal.finish(&v);
        if self.server.is_some() {
            self.board.publish(v.clone());
        }
        v
    }

    /// Keeps serving the final view for `d` (`--ui-linger`), so an open
    /// page shows the end of the run.
    pub(crate) fn linger(&self, d: Duration) {
        if self.server.is_some() && !d.is_zero() {
            std::thread::sleep(d);
        }
    }
}
