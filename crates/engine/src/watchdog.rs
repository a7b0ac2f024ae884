//! The systemd watchdog, fed from the reconcile loop's progress.
//!
//! A timer that notifies on its own keeps a daemon alive whose loop is
//! stuck inside a step (a dataplane call that never returns, a lock never
//! released): systemd would never restart it. Instead the loop beats a
//! [`Heartbeat`] every time it comes round its `select!`, and the feeder
//! ([`feed`]) notifies only after a beat it asked for: it pokes the loop,
//! and a loop that is waiting for work wakes on the poke and beats at
//! once, so an idle loop counts as healthy; a loop wedged in a step never
//! comes round, the notifications stop and systemd's `WatchdogSec` runs
//! out.
//!
//! The feeder runs on a thread of its own ([`Feeder::spawn`]): a step
//! that blocks a runtime worker can also stall that runtime's timers, and
//! the feeder must notice the missing beat, not stall with it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

/// Counts the reconcile loop's rounds; pokes wake it for one more.
#[derive(Debug, Clone)]
pub struct Heartbeat(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    beats: watch::Sender<u64>,
    poke: Notify,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat(Arc::new(Inner {
            beats: watch::Sender::new(0),
            poke: Notify::new(),
        }))
    }
}

impl Heartbeat {
    /// The loop came round (it finished a step, or any other branch, and
    /// is about to wait again).
    pub fn beat(&self) {
        self.0.beats.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Rounds so far.
    pub fn beats(&self) -> u64 {
        *self.0.beats.borrow()
    }

    /// Resolves when someone asks the loop to come round; the loop awaits
    /// it next to its other work. A poke made while the loop is busy is
    /// kept until it waits again.
    pub async fn poked(&self) {
        self.0.poke.notified().await;
    }

    /// Asks the loop to come round.
    pub fn poke(&self) {
        self.0.poke.notify_one();
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.beats.subscribe()
    }
}

/// Feeds a watchdog while the loop makes progress: every `period`, pokes
/// the loop and calls `notify` once it has come round since the poke. A
/// wedged loop gets no notification until it comes round again; that is
/// logged once per wedge. Runs until the task is dropped.
///
/// `period` is half of `WatchdogSec` in the daemon (systemd's advice), so
/// a step that runs longer than about `WatchdogSec` gets the daemon
/// restarted.
pub async fn feed(heartbeat: Heartbeat, period: Duration, mut notify: impl FnMut() + Send) {
    let mut beats = heartbeat.subscribe();
    let mut wedged = false;
    loop {
        beats.borrow_and_update();
        heartbeat.poke();
        match tokio::time::timeout(period, beats.changed()).await {
            Ok(Ok(())) => {
                if wedged {
                    tracing::warn!("the reconcile loop came round again; feeding the watchdog");
                    wedged = false;
                }
                notify();
                tokio::time::sleep(period).await;
            }
            // The sender lives as long as the heartbeat we hold.
            Ok(Err(_)) => return,
            Err(_) => {
                if !wedged {
                    tracing::error!(
                        waited = ?period,
                        "the reconcile loop has not come round; withholding the watchdog notification"
                    );
                    wedged = true;
                }
            }
        }
    }
}

/// [`feed`] on a dedicated thread with its own runtime; stops when
/// dropped.
#[derive(Debug)]
pub struct Feeder {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Feeder {
    /// Starts feeding (see [`feed`]).
    pub fn spawn(
        heartbeat: Heartbeat,
        period: Duration,
        notify: impl FnMut() + Send + 'static,
    ) -> std::io::Result<Feeder> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("routerd-watchdog".into())
            .spawn(move || {
                rt.block_on(async move {
                    tokio::select! {
                        () = feed(heartbeat, period, notify) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(Feeder {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A loop that answers pokes, then stops answering.
    #[tokio::test(start_paused = true)]
    async fn notifies_only_while_the_loop_answers() {
        let hb = Heartbeat::default();
        let answering = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let lp = {
            let hb = hb.clone();
            let answering = answering.clone();
            tokio::spawn(async move {
                loop {
                    hb.poked().await;
                    if answering.load(Ordering::SeqCst) {
                        hb.beat();
                    } else {
                        // Wedged: never comes round again.
                        std::future::pending::<()>().await;
                    }
                }
            })
        };
        let sent = Arc::new(AtomicU64::new(0));
        let s = sent.clone();
        let feeder = tokio::spawn(feed(hb.clone(), Duration::from_secs(1), move || {
            s.fetch_add(1, Ordering::SeqCst);
        }));
        tokio::time::sleep(Duration::from_secs(10)).await;
        let healthy = sent.load(Ordering::SeqCst);
        assert!(
            healthy >= 3,
            "an answering loop feeds the watchdog: {healthy}"
        );
        answering.store(false, Ordering::SeqCst);
        // At most the round already under way completes.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let at_wedge = sent.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(
            sent.load(Ordering::SeqCst),
            at_wedge,
            "a wedged loop starves it"
        );
        feeder.abort();
        lp.abort();
    }
}
