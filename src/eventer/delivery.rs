//! Delivery: per sink a bounded queue and its own workers, so a slow or hung sink never
//! delays another. Each attempt is bounded by the client's timeout; connection errors,
//! timeouts, 5xx, 429 and the vendors' rate-limit codes are retried with exponential
//! backoff and jitter; after `retry_max` retries the message is dropped, logged and
//! counted by sink and cause. Chat sinks run one worker (in order) with folding and quota.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::client::HttpClient;
use super::event::last_seen;
use super::fold::{Fold, Message};
use super::metrics::EventerMetrics;
use super::quota::{Quota, Summary};
use super::sinks::{Outcome, Payload, Sink};
use super::Item;

/// Delivery settings (flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Messages a sink's queue holds; more are dropped (`queue_full`).
    pub queue: usize,
    /// Retries after the first attempt.
    pub retry_max: u32,
    pub backoff: Duration,
    pub backoff_max: Duration,
    pub dedup_window: Duration,
}

pub enum Queued {
    Deliver(Arc<Item>),
    /// A Normal Event the chat sink's filters dropped: it still ends folding for its object.
    Reset(Arc<Item>),
}

/// The front of one sink: filter and enqueue (never blocks).
pub struct SinkHandle {
    sink: Arc<dyn Sink>,
    shards: Vec<mpsc::Sender<Queued>>,
    len: Arc<AtomicUsize>,
    metrics: Arc<EventerMetrics>,
    chat: bool,
    drops_logged: std::sync::Mutex<(Option<Instant>, u64)>,
}

impl SinkHandle {
    pub fn label(&self) -> &str {
        self.sink.label()
    }

    pub fn queued(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Offer one Event: filtered here, queued for the workers, or dropped when full.
    pub fn offer(&self, item: &Arc<Item>) {
        let label = self.sink.label();
        let q = if self.sink.filter().pass(&item.event) {
            Queued::Deliver(item.clone())
        } else {
            self.metrics.inc(&self.metrics.filtered, label);
            if self.chat && item.event.type_.as_deref() == Some("Normal") {
                Queued::Reset(item.clone())
            } else {
                return;
            }
        };
        let shard = if self.shards.len() == 1 {
            0
        } else {
            // Same involved object → same worker: its Events stay in order.
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            item.event.involved_object.uid.hash(&mut h);
            item.event.involved_object.name.hash(&mut h);
            (h.finish() as usize) % self.shards.len()
        };
        let deliver = matches!(q, Queued::Deliver(_));
        // Counted before it is sent: a worker may take it (and count it out) at once.
        let n = self.len.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        match self.shards[shard].try_send(q) {
            Ok(()) => {
                self.metrics.queue_len(label, n);
            }
            Err(_) if !deliver => {
                self.len.fetch_sub(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.len.fetch_sub(1, Ordering::Relaxed);
                self.metrics.dropped(label, "queue_full", 1);
                // Log the first drop, then at most one line per 10 s with the count.
                let mut d = self.drops_logged.lock().unwrap_or_else(|p| p.into_inner());
                d.1 += 1;
                let now = Instant::now();
                if d.0
                    .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
                {
                    tracing::warn!(
                        "sink {label}: queue full, dropped {} event(s) (reason {:?}, object {})",
                        d.1,
                        item.event.reason.as_deref().unwrap_or(""),
                        super::event::object_name(&item.event)
                    );
                    *d = (Some(now), 0);
                }
            }
        }
    }
}

struct Ctx {
    sink: Arc<dyn Sink>,
    client: HttpClient,
    metrics: Arc<EventerMetrics>,
    settings: Settings,
    len: Arc<AtomicUsize>,
}

/// Start a sink's workers; returns its handle and the worker tasks.
pub fn start(
    sink: Arc<dyn Sink>,
    client: HttpClient,
    metrics: Arc<EventerMetrics>,
    settings: Settings,
) -> (SinkHandle, Vec<JoinHandle<()>>) {
    metrics.sink_init(sink.label());
    let len = Arc::new(AtomicUsize::new(0));
    let chat = sink.chat();
    if sink.is_batch() {
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        let q = super::sinks::BatchQueue {
            rx,
            len: len.clone(),
            metrics: metrics.clone(),
        };
        let tasks = sink.batch_worker(q).map(tokio::spawn).into_iter().collect();
        return (
            SinkHandle {
                sink,
                shards: vec![tx],
                len,
                metrics,
                chat: false,
                drops_logged: std::sync::Mutex::new((None, 0)),
            },
            tasks,
        );
    }
    let workers = if chat.is_some() {
        1
    } else {
        sink.workers().max(1)
    };
    let per = (settings.queue / workers).max(1);
    let ctx = Arc::new(Ctx {
        sink: sink.clone(),
        client,
        metrics: metrics.clone(),
        settings: settings.clone(),
        len: len.clone(),
    });
    let mut shards = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (tx, rx) = mpsc::channel(per);
        shards.push(tx);
        let ctx = ctx.clone();
        tasks.push(match chat {
            Some(policy) => tokio::spawn(chat_worker(ctx, rx, policy.quota)),
            None => tokio::spawn(plain_worker(ctx, rx)),
        });
    }
    (
        SinkHandle {
            sink,
            shards,
            len,
            metrics,
            chat: chat.is_some(),
            drops_logged: std::sync::Mutex::new((None, 0)),
        },
        tasks,
    )
}

fn taken(ctx: &Ctx) {
    let n = ctx.len.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
    ctx.metrics.queue_len(ctx.sink.label(), n);
}

async fn plain_worker(ctx: Arc<Ctx>, mut rx: mpsc::Receiver<Queued>) {
    while let Some(q) = rx.recv().await {
        taken(&ctx);
        if let Queued::Deliver(item) = q {
            deliver(&ctx, &Message::Event(item), None).await;
        }
    }
}

async fn chat_worker(
    ctx: Arc<Ctx>,
    mut rx: mpsc::Receiver<Queued>,
    quota: Option<(usize, Duration)>,
) {
    let mut fold = Fold::new(ctx.settings.dedup_window, 10_000);
    let mut quota = quota.map(|(n, w)| Quota::new(n, w));
    let mut overflow = Summary::default();
    let mut single: Option<Message> = None;
    let mut out: Vec<Message> = Vec::new();
    let label = ctx.sink.label().to_string();
    loop {
        let now = Instant::now();
        let mut deadline = fold.next_deadline();
        if let (false, Some(q)) = (overflow.is_empty(), quota.as_mut()) {
            let t = q.next_free(now);
            deadline = Some(deadline.map_or(t, |d| d.min(t)));
        }
        let wake = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            q = rx.recv() => {
                let Some(q) = q else { break };
                taken(&ctx);
                let now = Instant::now();
                let before = out.len();
                match q {
                    Queued::Deliver(item) => fold.offer(item, now, &mut out),
                    Queued::Reset(item) => { fold.recovery(&item, now, &mut out); }
                }
                if out.len() == before {
                    ctx.metrics.inc(&ctx.metrics.folded, &label);
                }
            }
            _ = wake => fold.due(Instant::now(), &mut out),
        }
        let now = Instant::now();
        // What the quota held back goes first, as one summary (or itself when alone).
        if !overflow.is_empty() {
            if let Some(q) = quota.as_mut() {
                if q.try_take(now) {
                    let m = match single.take() {
                        Some(m) if overflow.total == 1 => m,
                        _ => Message::Summary(std::mem::take(&mut overflow)),
                    };
                    overflow = Summary::default();
                    deliver(&ctx, &m, Some(q)).await;
                }
            }
        }
        for m in out.drain(..) {
            let now = Instant::now();
            match quota.as_mut() {
                None => deliver(&ctx, &m, None).await,
                Some(q) => {
                    if overflow.is_empty() && q.try_take(now) {
                        deliver(&ctx, &m, Some(q)).await;
                    } else {
                        if overflow.is_empty() {
                            single = Some(m.clone());
                        } else {
                            single = None;
                        }
                        overflow.add(&m, now);
                        ctx.metrics.inc(&ctx.metrics.folded, &label);
                    }
                }
            }
        }
    }
    if !overflow.is_empty() {
        ctx.metrics.dropped(&label, "shutdown", overflow.total);
    }
}

/// Jittered exponential backoff: `base·2^attempt` capped, then a random point in its upper
/// half.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let d = base.saturating_mul(1u32 << attempt.min(16)).min(max);
    let half = d / 2;
    half + Duration::from_nanos(rand_below(half.as_nanos().max(1) as u64))
}

fn rand_below(n: u64) -> u64 {
    use std::cell::Cell;
    thread_local! {
        static S: Cell<u64> = Cell::new(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(88172645463325252) | 1
        );
    }
    S.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x % n.max(1)
    })
}

/// One message to the sink, with retries.
async fn deliver(ctx: &Ctx, msg: &Message, mut quota: Option<&mut Quota>) {
    let label = ctx.sink.label();
    let mut attempt: u32 = 0;
    loop {
        let payload = match ctx.sink.build(msg, Timestamp::now()) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("sink {label}: dropping a message that cannot be built: {e}");
                ctx.metrics.failed(label, "render");
                ctx.metrics.dropped(label, "render", 1);
                return;
            }
        };
        let outcome = match payload {
            Payload::Line(line) => {
                let mut o = std::io::stdout().lock();
                match writeln!(o, "{line}") {
                    Ok(()) => Outcome::Delivered,
                    Err(e) => Outcome::Retry {
                        cause: "stdout",
                        after: None,
                        throttled: false,
                        detail: e.to_string(),
                    },
                }
            }
            Payload::Http(r) => match ctx.client.send(&r).await {
                Ok(a) => ctx.sink.judge(&a),
                Err(e) => Outcome::Retry {
                    cause: e.cause(),
                    after: None,
                    throttled: false,
                    detail: e.to_string(),
                },
            },
        };
        match outcome {
            Outcome::Delivered => {
                let item = msg.item();
                let latency = item.map(|i| i.received.elapsed());
                let age = item.and_then(|i| last_seen(&i.event)).and_then(|t| {
                    let d = Timestamp::now().duration_since(t);
                    Duration::try_from(d).ok()
                });
                ctx.metrics.delivered(label, latency, age);
                if let Some(q) = quota.as_mut() {
                    q.answered(Instant::now());
                }
                return;
            }
            Outcome::Retry {
                cause,
                after,
                throttled,
                detail,
            } => {
                ctx.metrics.failed(label, cause);
                if throttled {
                    if let Some(q) = quota.as_mut() {
                        q.exhaust(Instant::now());
                    }
                }
                if attempt >= ctx.settings.retry_max {
                    tracing::warn!(
                        "sink {label}: dropping {} after {} attempts: {detail}",
                        describe(msg),
                        attempt + 1
                    );
                    ctx.metrics.dropped(label, cause, 1);
                    return;
                }
                let wait = after
                    .map(|a| a + Duration::from_millis(rand_below(250)))
                    .unwrap_or_else(|| {
                        backoff(attempt, ctx.settings.backoff, ctx.settings.backoff_max)
                    });
                tracing::info!(
                    "sink {label}: attempt {} failed ({detail}); retrying in {wait:?}",
                    attempt + 1
                );
                ctx.metrics.inc(&ctx.metrics.retried, label);
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Outcome::Reject { cause, detail } => {
                tracing::warn!("sink {label}: {} rejected: {detail}", describe(msg));
                ctx.metrics.failed(label, cause);
                ctx.metrics.dropped(label, cause, 1);
                return;
            }
        }
    }
}

fn describe(m: &Message) -> String {
    match m.item() {
        Some(i) => format!(
            "event {} ({} on {})",
            i.event.metadata.name.as_deref().unwrap_or(""),
            i.event.reason.as_deref().unwrap_or(""),
            super::event::object_name(&i.event)
        ),
        None => "a summary message".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let b = Duration::from_millis(500);
        let m = Duration::from_secs(30);
        for a in 0..20 {
            let d = backoff(a, b, m);
            let full = b.saturating_mul(1 << a.min(16)).min(m);
            assert!(d >= full / 2 && d <= full, "{a}: {d:?}");
        }
    }
}
