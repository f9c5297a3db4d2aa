//! A robot's message quota (DingTalk: 20 messages per minute per robot) and the summary
//! that folds what does not fit (pure; time is passed in).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::event::object_name;
use super::fold::Message;

/// At most `limit` messages in any `window`.
#[derive(Debug)]
pub struct Quota {
    pub limit: usize,
    pub window: Duration,
    sent: VecDeque<Instant>,
}

impl Quota {
    pub fn new(limit: usize, window: Duration) -> Self {
        Quota {
            limit: limit.max(1),
            window,
            sent: VecDeque::new(),
        }
    }

    /// The window plus a margin: the robot counts a message when it arrives, a little
    /// after we count it.
    fn span(&self) -> Duration {
        self.window + (self.window / 20).min(Duration::from_secs(3))
    }

    fn expire(&mut self, now: Instant) {
        let span = self.span();
        while self
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= span)
        {
            self.sent.pop_front();
        }
    }

    /// Take a slot if one is free.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.expire(now);
        if self.sent.len() < self.limit {
            self.sent.push_back(now);
            true
        } else {
            false
        }
    }

    /// When the next slot frees up (now if one is free).
    pub fn next_free(&mut self, now: Instant) -> Instant {
        self.expire(now);
        if self.sent.len() < self.limit {
            now
        } else {
            self.sent.front().map(|t| *t + self.span()).unwrap_or(now)
        }
    }

    /// The last message taken was answered at `now`: count it from then.
    pub fn answered(&mut self, now: Instant) {
        if let Some(t) = self.sent.back_mut() {
            *t = now;
        }
    }

    /// The vendor said it throttled us: treat the window as full from now.
    pub fn exhaust(&mut self, now: Instant) {
        self.sent.clear();
        for _ in 0..self.limit {
            self.sent.push_back(now);
        }
    }
}

/// Messages folded because the quota was used up.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub total: u64,
    /// (reason, object) → occurrences.
    pub counts: BTreeMap<(String, String), u64>,
    pub warnings: u64,
    pub first: Option<Instant>,
}

/// Lines listed in a summary; the rest is counted.
pub const SUMMARY_LINES: usize = 20;

impl Summary {
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub fn add(&mut self, m: &Message, now: Instant) {
        self.first.get_or_insert(now);
        match m {
            Message::Event(i) | Message::Repeat { item: i, .. } => {
                let n = match m {
                    Message::Repeat { times, .. } => *times,
                    _ => 1,
                };
                let e = &i.event;
                if e.type_.as_deref() == Some("Warning") {
                    self.warnings += n;
                }
                *self
                    .counts
                    .entry((e.reason.clone().unwrap_or_default(), object_name(e)))
                    .or_default() += n;
                self.total += n;
            }
            Message::Summary(s) => {
                for (k, v) in &s.counts {
                    *self.counts.entry(k.clone()).or_default() += v;
                }
                self.total += s.total;
                self.warnings += s.warnings;
            }
        }
    }

    /// The summary's text: a headline and one line per (reason, object), most first.
    pub fn text(&self, now: Instant) -> String {
        let since = self
            .first
            .map(|f| super::fold::short_duration(now.saturating_duration_since(f)))
            .unwrap_or_else(|| "1s".into());
        let mut lines: Vec<(&(String, String), &u64)> = self.counts.iter().collect();
        lines.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut out = format!(
            "{} more events in {since} ({} Warning) over the robot's message quota:",
            self.total, self.warnings
        );
        for ((reason, object), n) in lines.iter().take(SUMMARY_LINES) {
            out.push_str(&format!("\n{reason} on {object}: ×{n}"));
        }
        if lines.len() > SUMMARY_LINES {
            out.push_str(&format!(
                "\n… and {} more reason/object pairs",
                lines.len() - SUMMARY_LINES
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window() {
        let t0 = Instant::now();
        let mut q = Quota::new(2, Duration::from_secs(60));
        assert!(q.try_take(t0));
        assert!(q.try_take(t0 + Duration::from_secs(1)));
        assert!(!q.try_take(t0 + Duration::from_secs(2)));
        assert_eq!(
            q.next_free(t0 + Duration::from_secs(2)),
            t0 + Duration::from_secs(63)
        );
        assert!(!q.try_take(t0 + Duration::from_secs(60)));
        assert!(q.try_take(t0 + Duration::from_secs(63)));
        q.exhaust(t0 + Duration::from_secs(70));
        assert!(!q.try_take(t0 + Duration::from_secs(71)));
        assert!(q.try_take(t0 + Duration::from_secs(133)));
    }
}
