//! SIGINT and SIGTERM: the first stops the run gracefully (inputs stop,
//! items in flight finish, outputs are flushed, statistics printed); a
//! second cancels the items in flight but still flushes every finished
//! item and the errors file. The exit status is 128 + the signal.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::output::Output;

/// The signals received so far.
#[derive(Default)]
pub(super) struct Received {
    count: AtomicUsize,
    last: AtomicI32,
}

impl Received {
    /// The first signal received, if any.
    pub(super) fn first(&self) -> Option<i32> {
        (self.count.load(Ordering::SeqCst) > 0).then(|| self.last.load(Ordering::SeqCst))
    }
}

fn name(sig: i32) -> &'static str {
    if sig == signal_hook::consts::SIGTERM {
        "SIGTERM"
    } else {
        "interrupt"
    }
}

/// Run when a second signal cancels the run, with the outputs flushed
/// (a resumable run saves its progress).
pub(super) type OnCancel = Box<dyn Fn(&Output) + Send>;

/// Watches SIGINT and SIGTERM from a thread.
///
/// # Errors
/// The handlers cannot be installed.
pub(super) fn watch(
    output: Arc<Mutex<Output>>,
    on_cancel: Option<OnCancel>,
) -> std::io::Result<Arc<Received>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let received = Arc::new(Received::default());
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let r = received.clone();
    std::thread::Builder::new()
        .name("papy-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                // The signal is recorded before it is counted, so a reader
                // that sees the count sees which signal it was.
                if r.count.load(Ordering::SeqCst) == 0 {
                    r.last.store(sig, Ordering::SeqCst);
                }
                let n = r.count.fetch_add(1, Ordering::SeqCst) + 1;
                if n == 1 {
                    eprintln!(
                        "papy: {}: stopping: inputs stop, items in flight finish, outputs are flushed ({} again cancels the items in flight)",
                        name(sig),
                        name(sig)
                    );
                    continue;
                }
                eprintln!("papy: {} again: cancelling the items in flight", name(sig));
                // Flush what is finished; a callback holding the lock is
                // mid-line and releases it at once.
                let code = 128 + r.last.load(Ordering::SeqCst);
                let deadline = Instant::now() + Duration::from_secs(2);
                loop {
                    if let Ok(mut o) = output.try_lock() {
                        o.flush();
                        if let Some(f) = &on_cancel {
                            f(&o);
                        }
                        let written: u64 = o.delivered().values().sum();
                        eprintln!(
                            "papy: cancelled; the {written} item(s) that reached the outputs are written"
                        );
                        // Exit holding the lock: no callback writes after the flush.
                        std::process::exit(code);
                    }
                    if Instant::now() > deadline {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                std::process::exit(code);
            }
        })?;
    Ok(received)
}
