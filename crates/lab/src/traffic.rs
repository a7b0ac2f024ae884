//! Continuous client traffic, so the demo and the e2e tests see a failover the way a LAN
//! user does: which upstream each new flow reached, and which flows failed meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};
use crate::flow::{self, FlowReport};
use crate::topology::Node;

/// Samples kept at most; at 10 flows per second this is well over an hour.
const MAX_SAMPLES: usize = 50_000;

/// The outcome of one flow of the background traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrafficSample {
    /// When the flow was started.
    pub at: Instant,
    /// What the sink reported, or why the flow failed.
    pub result: std::result::Result<FlowReport, String>,
}

impl TrafficSample {
    /// The upstream that received the flow, if it got through.
    pub fn upstream(&self) -> Option<Node> {
        self.result.as_ref().ok().map(|r| r.upstream)
    }
}

/// Opens a new client flow every interval until dropped or stopped.
#[derive(Debug)]
pub struct ClientTraffic {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<TrafficSample>>>,
    thread: Option<JoinHandle<()>>,
}

impl ClientTraffic {
    pub(crate) fn start(ns: String, interval: Duration, timeout: Duration) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop2, samples2) = (Arc::clone(&stop), Arc::clone(&samples));
        let thread = thread::Builder::new()
            .name("lab-client-traffic".to_owned())
            .spawn(move || {
                let mut n = 0u64;
                while !stop2.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    n += 1;
                    let result = flow::open(&ns, &format!("traffic-{n}"), timeout)
                        .map(|f| f.report().clone())
                        .map_err(|e| e.to_string());
                    {
                        let mut samples = lock(&samples2);
                        if samples.len() < MAX_SAMPLES {
                            samples.push(TrafficSample { at, result });
                        }
                    }
                    // Sleep in short steps so stopping is prompt.
                    while !stop2.load(Ordering::Relaxed) && at.elapsed() < interval {
                        thread::sleep(
                            interval
                                .saturating_sub(at.elapsed())
                                .min(Duration::from_millis(10)),
                        );
                    }
                }
            })
            .map_err(|e| LabError::io("starting the client traffic thread", e))?;
        Ok(Self {
            stop,
            samples,
            thread: Some(thread),
        })
    }

    /// All samples so far, oldest first.
    pub fn samples(&self) -> Vec<TrafficSample> {
        lock(&self.samples).clone()
    }

    /// When the first flow started at or after `since` reached `upstream`: with `since` set
    /// to the moment of a fault, the client-visible switch time.
    pub fn first_on(&self, upstream: Node, since: Instant) -> Option<Instant> {
        lock(&self.samples)
            .iter()
            .find(|s| s.at >= since && s.upstream() == Some(upstream))
            .map(|s| s.at)
    }

    /// How many flows started at or after `since` failed.
    pub fn failures_since(&self, since: Instant) -> usize {
        lock(&self.samples)
            .iter()
            .filter(|s| s.at >= since && s.result.is_err())
            .count()
    }

    /// Stops the traffic and waits for the flow in progress (at most its timeout).
    pub fn stop(mut self) -> Vec<TrafficSample> {
        self.halt();
        self.samples()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ClientTraffic {
    fn drop(&mut self) {
        self.halt();
    }
}

fn lock(samples: &Mutex<Vec<TrafficSample>>) -> MutexGuard<'_, Vec<TrafficSample>> {
    samples
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
