//! Opt-in retries: which failures, how many times, how long apart, and a budget shared by a
//! client's clones so that retries cannot multiply the load on a failing server.

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_core::Stream;

use crate::stream::Body;
use crate::{Code, Error, Idempotency, Spec, StreamType};

/// Default most attempts of one call, the first included ([`RetryPolicy::max_attempts`]).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default ceiling of the first retry's backoff ([`RetryPolicy::backoff`]).
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Default ceiling of any retry's backoff ([`RetryPolicy::backoff`]).
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Default most request bytes a client stream keeps to replay on a retry
/// ([`RetryPolicy::buffer_limit`]): 1 MiB, gRPC-Java's per-call retry buffer.
pub const DEFAULT_RETRY_BUFFER_LIMIT: usize = 1024 * 1024;

/// When and how a [`Client`](super::Client) retries a failed call
/// ([`ClientConfig::retry`](super::ClientConfig::retry); off by default).
///
/// A call is retried only if all of these hold:
///
/// - its method is idempotent ([`Idempotency::NoSideEffects`] or
///   [`Idempotency::Idempotent`], from the proto's `idempotency_level`): a retried call may
///   run twice on the server. (Requests the transport never sent are retried by the pooled
///   HTTP client itself, whatever the method.)
/// - no response message has reached the caller, and the request can be sent again:
///   - **unary:** always (the request is kept);
///   - **server stream:** until its first message or its end. With a policy that applies,
///     [`Client::server_stream`](super::Client::server_stream) returns once the first
///     message (or the end, or an error not retried) has arrived, so that an error the
///     server sends before any message (gRPC trailers-only, Connect's end-of-stream) can
///     still be retried and the headers the caller gets are the committed attempt's;
///   - **client stream:** while every request message taken from the caller's stream so
///     far is still held: the client keeps the encoded messages it sends, up to the
///     [buffer limit](Self::buffer_limit) (default [`DEFAULT_RETRY_BUFFER_LIMIT`], 1 MiB).
///     A retry sends them again, then goes on with the caller's stream. Past the limit the
///     buffer is dropped and the call is no longer retried: messages already consumed from
///     the caller's stream cannot be produced again;
///   - **bidirectional stream:** never. Its handle is returned at once and the caller
///     reads headers and sends messages while it runs; swapping the stream under it is
///     not done.
/// - it failed with a retryable code (default: `unavailable` only);
/// - attempts are left (default [`DEFAULT_MAX_ATTEMPTS`], 3 in all);
/// - the call's deadline leaves room for the backoff: retries never extend a deadline, the
///   remaining time travels with each attempt;
/// - the retry budget allows it: a token bucket in the manner of gRPC's retry throttling
///   (10 tokens; each retryable failure takes one, each success gives back 0.1; retries stop
///   while half or fewer are left), shared by every clone of the client.
///
/// Between attempts the client waits a random time between zero and
/// `min(initial * multiplier^(n-1), max)` (full jitter; defaults 100 ms, x2, 2 s).
///
/// ```
/// use std::time::Duration;
/// use volley::client::RetryPolicy;
/// use volley::{ClientConfig, Code};
///
/// # fn main() -> Result<(), volley::Error> {
/// let config = ClientConfig::new("http://127.0.0.1:8080")?.retry(
///     RetryPolicy::new()
///         .max_attempts(4)
///         .backoff(Duration::from_millis(50), Duration::from_secs(1), 2.0)
///         .retryable_codes([Code::Unavailable, Code::ResourceExhausted]),
/// );
/// # let _ = config;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    multiplier: f64,
    codes: Vec<Code>,
    budget: Arc<Budget>,
    buffer_limit: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryPolicy {
    /// The defaults: 3 attempts, backoff up to 100 ms doubling to 2 s, `unavailable` only,
    /// a budget of 10 tokens refilled by 0.1 per success, 1 MiB of client-stream messages
    /// kept for replay.
    pub fn new() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            multiplier: 2.0,
            codes: vec![Code::Unavailable],
            budget: Arc::new(Budget::new(10.0, 0.1)),
            buffer_limit: DEFAULT_RETRY_BUFFER_LIMIT,
        }
    }

    /// Most attempts of one call, the first included (at least 1; 1 means no retry).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The backoff's ceiling: `initial` before the first retry, times `multiplier` for each
    /// next one, never above `max` (the wait itself is uniformly random below the ceiling).
    pub fn backoff(mut self, initial: Duration, max: Duration, multiplier: f64) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self.multiplier = if multiplier.is_finite() && multiplier >= 1.0 {
            multiplier
        } else {
            1.0
        };
        self
    }

    /// The codes worth retrying (default `unavailable` only).
    pub fn retryable_codes(mut self, codes: impl IntoIterator<Item = Code>) -> Self {
        self.codes = codes.into_iter().collect();
        self
    }

    /// The retry budget: `max_tokens` tokens, one taken per retryable failure, `token_ratio`
    /// given back per success; retries are allowed only while more than half are left
    /// (default 10 and 0.1). A new budget, not shared with policies cloned earlier.
    pub fn budget(mut self, max_tokens: u32, token_ratio: f64) -> Self {
        let ratio = if token_ratio.is_finite() {
            token_ratio.max(0.0)
        } else {
            0.0
        };
        self.budget = Arc::new(Budget::new(f64::from(max_tokens.max(1)), ratio));
        self
    }

    /// The most bytes of request messages (encoded, as sent) a client stream keeps so that a
    /// retry can send them again (default [`DEFAULT_RETRY_BUFFER_LIMIT`], 1 MiB). A call
    /// that sends more is not retried once past it; `0` turns client-stream retries off.
    pub fn buffer_limit(mut self, bytes: usize) -> Self {
        self.buffer_limit = bytes;
        self
    }

    pub(crate) fn get_buffer_limit(&self) -> usize {
        self.buffer_limit
    }

    /// Whether calls to `spec` may be retried at all.
    pub(crate) fn applies_to(&self, spec: &Spec) -> bool {
        self.max_attempts > 1
            && matches!(
                spec.idempotency,
                Idempotency::NoSideEffects | Idempotency::Idempotent
            )
            && matches!(
                spec.stream_type,
                StreamType::Unary | StreamType::ServerStream | StreamType::ClientStream
            )
    }

    /// After attempt number `attempt` (1-based) failed with `code`: how long to wait before
    /// the next, or `None` to give up.
    pub(crate) fn next(
        &self,
        attempt: u32,
        code: Code,
        deadline: Option<Instant>,
    ) -> Option<Duration> {
        if !self.codes.contains(&code) {
            return None;
        }
        let allowed = self.budget.failure();
        if attempt >= self.max_attempts || !allowed {
            return None;
        }
        let exp = i32::try_from(attempt - 1).unwrap_or(i32::MAX);
        let ceiling = self
            .initial_backoff
            .mul_f64(self.multiplier.powi(exp).min(1e9))
            .min(self.max_backoff);
        let wait = ceiling.mul_f64(random_unit());
        if deadline.is_some_and(|d| Instant::now() + wait >= d) {
            return None;
        }
        Some(wait)
    }

    /// A call succeeded: the budget refills a little.
    pub(crate) fn succeeded(&self) {
        self.budget.success();
    }
}

/// gRPC-style retry throttling: a token bucket.
#[derive(Debug)]
struct Budget {
    max: f64,
    ratio: f64,
    tokens: Mutex<f64>,
}

impl Budget {
    fn new(max: f64, ratio: f64) -> Self {
        Self {
            max,
            ratio,
            tokens: Mutex::new(max),
        }
    }

    /// Takes a token for a failure; returns whether a retry is still allowed.
    fn failure(&self) -> bool {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        *tokens = (*tokens - 1.0).max(0.0);
        *tokens > self.max / 2.0
    }

    fn success(&self) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        *tokens = (*tokens + self.ratio).min(self.max);
    }
}

/// A number in [0, 1): randomness from the standard library's random hash keys, mixed with
/// the time and a counter (jitter and endpoint choice need no cryptographic quality).
fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// 64 random bits (see [`random_unit`]).
pub(crate) fn random_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// A client stream's request body that can be sent again: the framed chunks taken from the
/// caller's stream are kept (up to a limit) so that a retry's body replays them before going
/// on with the stream. Only the newest attempt's body reads; older ones end.
#[derive(Clone)]
pub(crate) struct Replay {
    state: Arc<Mutex<ReplayState>>,
}

type Chunks = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>;

struct ReplayState {
    /// The caller's messages, framed; `None` once ended (or failed).
    source: Option<Chunks>,
    /// Every chunk taken so far, while `replayable`.
    kept: Vec<Bytes>,
    kept_bytes: usize,
    limit: usize,
    replayable: bool,
    /// How many chunks were taken from `source`.
    taken: usize,
    /// The attempt whose body may read.
    generation: u64,
}

impl Replay {
    pub(crate) fn new(
        source: impl Stream<Item = Result<Bytes, Error>> + Send + 'static,
        limit: usize,
    ) -> Self {
        Self {
            state: Arc::new(Mutex::new(ReplayState {
                source: Some(Box::pin(source)),
                kept: Vec::new(),
                kept_bytes: 0,
                limit,
                replayable: true,
                taken: 0,
                generation: 0,
            })),
        }
    }

    /// Whether everything taken from the caller's stream so far can be sent again.
    pub(crate) fn replayable(&self) -> bool {
        self.lock().replayable
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReplayState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The body of the next attempt: what was taken so far, then the rest of the stream.
    /// Earlier attempts' bodies end.
    pub(crate) fn body(&self) -> Body {
        let generation = {
            let mut s = self.lock();
            s.generation += 1;
            s.generation
        };
        let state = self.state.clone();
        let mut sent = 0usize;
        let chunks = futures_util::stream::poll_fn(move |cx| {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            if s.generation != generation {
                return Poll::Ready(None);
            }
            if sent < s.taken {
                // Only a replayable call gets a second body: `kept` holds every chunk.
                let Some(chunk) = s.kept.get(sent).cloned() else {
                    return Poll::Ready(Some(Err(Error::internal(
                        "a retried request lost its messages",
                    ))));
                };
                sent += 1;
                return Poll::Ready(Some(Ok(http_body::Frame::data(chunk))));
            }
            let Some(source) = s.source.as_mut() else {
                return Poll::Ready(None);
            };
            match source.as_mut().poll_next(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => {
                    s.source = None;
                    Poll::Ready(None)
                }
                Poll::Ready(Some(Err(e))) => {
                    s.source = None;
                    s.replayable = false;
                    Poll::Ready(Some(Err(e)))
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    s.taken += 1;
                    sent += 1;
                    if s.replayable {
                        s.kept_bytes = s.kept_bytes.saturating_add(chunk.len());
                        if s.kept_bytes > s.limit {
                            // Too much to keep: this call can no longer be retried.
                            s.replayable = false;
                            s.kept = Vec::new();
                        } else {
                            s.kept.push(chunk.clone());
                        }
                    }
                    Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
                }
            }
        });
        let chunks = futures_util::StreamExt::map(chunks, |r| {
            r.map_err(|e: Error| -> crate::BoxError { Box::new(e) })
        });
        http_body_util::BodyExt::boxed_unsync(http_body_util::StreamBody::new(chunks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDEMPOTENT: Spec = Spec::new("/a.B/C", StreamType::Unary, Idempotency::Idempotent);

    #[test]
    fn backoff_is_jittered_below_a_growing_ceiling() {
        let policy = RetryPolicy::new()
            .max_attempts(10)
            .budget(1000, 1.0)
            .backoff(Duration::from_millis(100), Duration::from_millis(350), 2.0);
        for (attempt, ceiling) in [(1, 100), (2, 200), (3, 350), (4, 350)] {
            let waits: Vec<_> = (0..50)
                .map(|_| policy.next(attempt, Code::Unavailable, None).unwrap())
                .collect();
            assert!(waits.iter().all(|w| *w <= Duration::from_millis(ceiling)));
            // Jitter: not all the same.
            assert!(waits.iter().any(|w| *w != waits[0]), "{waits:?}");
        }
    }

    #[test]
    fn gives_up_on_other_codes_attempts_deadline_and_budget() {
        let policy = RetryPolicy::new().max_attempts(3);
        assert!(policy.applies_to(&IDEMPOTENT));
        assert!(!policy.applies_to(&Spec::new(
            "/a.B/C",
            StreamType::Unary,
            Idempotency::Unknown
        )));
        assert!(policy.next(1, Code::Internal, None).is_none());
        assert!(policy.next(3, Code::Unavailable, None).is_none());
        let soon = Instant::now() + Duration::from_micros(1);
        let policy = RetryPolicy::new().budget(1000, 1.0).backoff(
            Duration::from_secs(5),
            Duration::from_secs(5),
            1.0,
        );
        // Waits are random below 5 s; with a deadline 1 µs away almost every one is refused.
        let refused = (0..20)
            .filter(|_| policy.next(1, Code::Unavailable, Some(soon)).is_none())
            .count();
        assert!(refused >= 19);
        // 10 tokens: each failure takes one, retries stop at half.
        let policy = RetryPolicy::new().max_attempts(100);
        let allowed = (0..10)
            .take_while(|_| policy.next(1, Code::Unavailable, None).is_some())
            .count();
        assert_eq!(allowed, 4);
        for _ in 0..20 {
            policy.succeeded();
        }
        assert!(policy.next(1, Code::Unavailable, None).is_some());
    }
}
