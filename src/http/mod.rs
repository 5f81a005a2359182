//! The one HTTP client: timeouts, bounded retries, `Retry-After`, call metrics.
//!
//! Retries follow the service's rules (`powerbi-api.md` §2.7, §3.6): a 429 means the request was
//! not processed, so any call may be retried after `Retry-After`; a 5xx or a network error is
//! ambiguous, so only idempotent calls are retried blindly. A refresh POST is sent with
//! [`Retry::ThrottleOnly`] and its caller checks the history before trying again.
//! Backoff delays (exponential with jitter) come from `backon`; every retry is bounded by the
//! attempt count and by the total time budget, which also bounds each attempt's socket time and
//! every `Retry-After` pause: a call never outlives its budget by more than a moment.
//!
//! A response is read whole before anything looks at it, and reading it is part of the attempt:
//! a body cut mid-way, slower than the timeout, larger than [`max_response_bytes`], or a success
//! whose body is empty, an HTML page or broken JSON (a proxy, a gateway, a lost connection) is a
//! transport failure: retried within the budget for idempotent calls, and for a trigger
//! ([`Retry::ThrottleOnly`]) an [`Error::Unavailable`], which its caller treats as ambiguous.
//!
//! A 429 whose body says `CapacityLimitExceeded` is not API throttling but a capacity refusing new
//! work (surge protection, overload): it neither pauses the shared pace nor is retried here; it
//! comes back as a response, and the trigger's caller holds the capacity (`refresh`).
//!
//! Two failures are never retried, because the network path itself refuses the connection and
//! will again (`network`): a TLS certificate the client does not trust, and a proxy answering
//! 407. They end the call at once as [`Error::Network`] (exit 9), naming the host and the fix.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use backon::BackoffBuilder;

use crate::error::Error;
use crate::settings::{HttpBudget, Network};

mod body;
mod network;
pub(crate) mod pace;
mod response;
use body::Failure;
use pace::Pace;
pub use response::Response;

/// Default cap on one response body (32 MiB): the largest real answers (a refresh history of 60
/// entries, a workspace's items) are well under 1 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

static MAX_RESPONSE: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_RESPONSE_BYTES);

/// Sets the cap on one response body for the process (`PBIOPS_HTTP_MAX_RESPONSE_MB`).
pub fn set_max_response_bytes(bytes: usize) {
    MAX_RESPONSE.store(bytes.max(1), Ordering::Relaxed);
}

/// The cap on one response body.
pub fn max_response_bytes() -> usize {
    MAX_RESPONSE.load(Ordering::Relaxed)
}

/// Which failures a call may be retried on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads and other idempotent calls: 429, 5xx and network errors.
    Idempotent,
    /// Calls with side effects: 429 only. A 5xx comes back as a response; a network error as
    /// [`Error::Unavailable`]; the caller decides whether the call took effect.
    ThrottleOnly,
}

/// Counters for the run's metrics.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Attempts per endpoint name.
    pub calls: BTreeMap<&'static str, u64>,
    /// 429 responses received.
    pub throttled: u64,
}

/// The shared HTTP client.
#[derive(Debug)]
pub struct Http {
    client: reqwest::Client,
    budget: HttpBudget,
    network: Network,
    stats: Mutex<Stats>,
    pace: Pace,
}

impl Http {
    /// Builds a client with the budget's per-request timeout, no proxy and the system's roots.
    #[cfg(test)]
    pub fn new(budget: HttpBudget) -> Result<Http, Error> {
        Http::with_network(budget, &Network::default())
    }

    /// Builds the client with the budget's per-request timeout, the proxies of `network` (never
    /// for loopback, link-local or managed identity endpoints) and its extra roots.
    pub fn with_network(budget: HttpBudget, network: &Network) -> Result<Http, Error> {
        for (scheme, proxy) in [("https", &network.https), ("http", &network.http)] {
            if let Some(p) = proxy {
                // Named without credentials; loopback, link-local and identity hosts bypass it.
                tracing::debug!(
                    "{scheme}:// URLs go through the proxy {} ({})",
                    p.display,
                    p.variable
                );
            }
        }
        Ok(Http {
            client: network::client(&budget, network)?,
            budget,
            network: network.clone(),
            stats: Mutex::new(Stats::default()),
            pace: Pace::default(),
        })
    }

    /// The underlying client, for building requests.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The pace every request keeps, for sharing it with other runs.
    pub(crate) fn pace(&self) -> &Pace {
        &self.pace
    }

    /// Whether the service has throttled this run (a 429), without copying the counters.
    pub fn was_throttled(&self) -> bool {
        self.stats.lock().is_ok_and(|s| s.throttled > 0)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Sends the request `build` makes, retrying as `retry` allows.
    ///
    /// `endpoint` names the call in metrics and logs (never a URL: URLs can carry secrets);
    /// `action` says what was attempted, with ids, for errors. The whole call, waits included,
    /// ends within the retry budget (plus the few milliseconds of a last answer).
    pub async fn send(
        &self,
        endpoint: &'static str,
        action: &str,
        retry: Retry,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Response, Error> {
        let deadline = Instant::now() + self.budget.budget;
        let unavailable = |attempts: u32, last: String| Error::Unavailable {
            action: action.to_string(),
            attempts,
            last,
        };
        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(30))
            .with_jitter()
            .without_max_times()
            .build();
        let mut attempt = 0u32;
        let mut last = String::new();
        let lane = pace::lane(build());
        loop {
            attempt += 1;
            if !self.pace.turn(&lane, deadline).await {
                let why = "the service asked to pause beyond the retry budget";
                let last = if last.is_empty() {
                    why.to_string()
                } else {
                    format!("{last}; {why}")
                };
                return Err(unavailable(attempt - 1, last));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(unavailable(
                    attempt - 1,
                    format!("{last}; the retry budget is spent"),
                ));
            }
            self.count(endpoint, false);
            let timeout = remaining.min(self.budget.timeout);
            let mut throttled_now = false;
            let wait = match self.attempt(endpoint, action, &build, timeout).await {
                Ok(response) => {
                    let status = response.status;
                    tracing::debug!(endpoint, status, attempt, "http");
                    if response.capacity_rejected() {
                        // The capacity's refusal, not the API's budget: nobody else is paused,
                        // and the caller (a trigger) holds the capacity and tries again later.
                        return Ok(response);
                    }
                    let throttled = status == 429;
                    if throttled {
                        self.count(endpoint, true);
                    }
                    let retryable = throttled || (status >= 500 && retry == Retry::Idempotent);
                    if !retryable {
                        return Ok(response);
                    }
                    let after = response.header("Retry-After").and_then(retry_after);
                    last = response.service_error().to_string();
                    if throttled {
                        let pause = after.unwrap_or(Duration::from_secs(1));
                        let left = deadline.saturating_duration_since(Instant::now());
                        if pause > left {
                            return Err(unavailable(
                                attempt,
                                format!(
                                    "{last}; Retry-After {:.0}s is beyond the {:.0}s left of the retry budget",
                                    pause.as_secs_f64(),
                                    left.as_secs_f64()
                                ),
                            ));
                        }
                        // Everyone waits: the pause goes through the shared pace, not a sleep here.
                        self.pace.throttled(&lane, pause);
                        throttled_now = true;
                    }
                    after
                }
                Err(Failure::Final(text)) => return Err(unavailable(attempt, text)),
                Err(Failure::Blocked(e)) => return Err(e),
                Err(Failure::Transport(text)) => {
                    if retry == Retry::ThrottleOnly {
                        return Err(unavailable(attempt, text));
                    }
                    last = text;
                    None
                }
            };
            let backoff = delays.next().unwrap_or(Duration::from_secs(30));
            let waited = wait.unwrap_or(backoff);
            // A 429's wait is served by the shared pause in `pace.turn()`; anything else sleeps here.
            let delay = if throttled_now {
                Duration::ZERO
            } else {
                waited
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if attempt >= self.budget.attempts || waited >= left {
                return Err(unavailable(attempt, last));
            }
            tracing::warn!(
                endpoint,
                attempt,
                "{action}: {last}; retrying in {:.1}s",
                waited.as_secs_f64()
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt, its whole body read within `timeout` and checked (see the module docs).
    async fn attempt(
        &self,
        endpoint: &'static str,
        action: &str,
        build: &impl Fn() -> reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Response, Failure> {
        let mut request = build().build().map_err(|e| {
            Failure::Final(format!("the request could not be built: {}", describe(&e)))
        })?;
        *request.timeout_mut() = Some(timeout);
        if let Some(token) = request
            .headers()
            .get(reqwest::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            // A service may echo the token in an error body: every printed text drops it.
            crate::redact::remember(token);
        }
        let method = request.method().clone();
        let url = request.url().clone();
        let blocked = |why| Failure::Blocked(network::error(action, &url, &self.network, why));
        let mut resp =
            self.client
                .execute(request)
                .await
                .map_err(|e| match network::blocked(&e) {
                    Some(why) => blocked(why),
                    None => Failure::Transport(describe(&e)),
                })?;
        let status = resp.status().as_u16();
        if status == 407 {
            return Err(blocked(network::Blocked::ProxyAuth));
        }
        let headers = resp.headers().clone();
        let body = body::read(&mut resp, max_response_bytes()).await?;
        let response = Response {
            status,
            headers,
            body,
        };
        // A flow's answer is whatever its author made it; every other success is JSON or empty.
        if response.is_success() && endpoint != "flow.trigger" {
            if let Some(why) = body::unreadable(&method, endpoint, &response) {
                return Err(Failure::Transport(format!("HTTP {status}: {why}")));
            }
        }
        Ok(response)
    }

    fn count(&self, endpoint: &'static str, throttled: bool) {
        if let Ok(mut s) = self.stats.lock() {
            if throttled {
                s.throttled += 1;
            } else {
                *s.calls.entry(endpoint).or_default() += 1;
            }
        }
    }
}

/// Parses `Retry-After`: delay-seconds, or an HTTP date.
pub fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let delta = when.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

/// Describes a transport error without its URL (which could carry a signature).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "network error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        assert_eq!(retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }
}
