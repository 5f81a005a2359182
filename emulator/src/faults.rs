//! Fault injection, the rate limit, the request log and per-route and per-client counts, as one
//! middleware around every emulated route, so no handler can forget them and a faulted or
//! rate-limited call is logged like any other.
//!
//! The middleware never records a form body (the token endpoint's body holds the client secret):
//! only JSON bodies of Power BI calls are kept, and for token calls only the `client_id`.

use crate::answers::{self, Answer};
use crate::lag::Lag;
use crate::router::{self, ROUTE_NAMES};
use crate::state::{AppState, LogEntry, World};
use crate::{entra, quirks, wire};
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// Largest request body the emulator reads.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// A fault as posted to `/_emulator/faults`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct FaultSpec {
    pub route: String,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub retry_after: Option<u64>,
    #[serde(default = "one")]
    pub times: u32,
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub delay_ms: u64,
    #[serde(default)]
    pub apply_then_fail: bool,
    /// A damaged answer instead of (or made of) the real one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    /// What the call started is missing from this many list reads (history, transactions, jobs).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hidden_reads: u32,
    /// What the call started is missing from list reads for this many emulator seconds.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub hidden_seconds: f64,
    /// The real JSON answer grows a `"padding"` string of this many bytes (a huge answer).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub pad_bytes: u64,
    /// The default error body quotes the caller's bearer token (a service echoing a credential).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub echo_token: bool,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// Routes whose call starts something a later list read shows (and a lag can hide).
const STARTING_ROUTES: &[&str] = &["refresh.post", "dataflow.refresh", "fabric.job.run"];

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_f64(n: &f64) -> bool {
    *n == 0.0
}

fn one() -> u32 {
    1
}

impl FaultSpec {
    /// Rejects faults that could never do what the caller meant.
    pub fn check(&self) -> Result<(), String> {
        if self.route != "*" && !ROUTE_NAMES.contains(&self.route.as_str()) {
            return Err(format!(
                "route: unknown route '{}'; expected '*' or one of {}",
                self.route,
                ROUTE_NAMES.join(", ")
            ));
        }
        if let Some(status) = self.status {
            if !(100..=599).contains(&status) {
                return Err(format!("status: {status} is not an HTTP status"));
            }
        }
        if self.times == 0 {
            return Err("times: must be at least 1".to_owned());
        }
        let replaces = self
            .answer
            .is_some_and(|answer| !answer.damages_the_real_answer());
        if self.status.is_none() && self.apply_then_fail && !replaces {
            return Err("applyThenFail: needs a status or an answer to fail with".to_owned());
        }
        if self.status.is_none()
            && self.delay_ms == 0
            && self.answer.is_none()
            && self.pad_bytes == 0
        {
            return Err(
                "status: a fault needs a status, an answer, a padBytes or a delayMs".to_owned(),
            );
        }
        if self.echo_token && (self.status.is_none() || self.body.is_some()) {
            return Err("echoToken: quotes the token in the default body of a status".to_owned());
        }
        if self.pad_bytes > answers::MAX_PAD {
            return Err(format!("padBytes: at most {}", answers::MAX_PAD));
        }
        if self.pad_bytes > 0 && (self.status.is_some() || self.answer.is_some()) {
            return Err("padBytes: pads the real answer, without a status or an answer".to_owned());
        }
        if self.answer == Some(Answer::SlowBody) && self.delay_ms == 0 {
            return Err("delayMs: a slowBody answer stalls its body for delayMs".to_owned());
        }
        if self.answer == Some(Answer::Hang) && self.status.is_some() {
            return Err("status: a hung call never answers any status".to_owned());
        }
        if !self.hidden_seconds.is_finite() || self.hidden_seconds < 0.0 {
            return Err("hiddenSeconds: must be a non-negative number".to_owned());
        }
        if self.hidden_reads > 0 || self.hidden_seconds > 0.0 {
            if !STARTING_ROUTES.contains(&self.route.as_str()) {
                return Err(format!(
                    "hiddenReads: only a call that starts something can hide it ({})",
                    STARTING_ROUTES.join(", ")
                ));
            }
            let works = self.apply_then_fail
                || self.answer.is_some_and(Answer::damages_the_real_answer)
                || (self.status.is_none() && self.answer.is_none());
            if !works {
                return Err(
                    "hiddenReads: needs applyThenFail (otherwise nothing starts)".to_owned(),
                );
            }
        }
        Ok(())
    }

    /// The lag it gives what its call starts, if any.
    fn lag(&self, route: &'static str) -> Option<Lag> {
        (self.hidden_reads > 0 || self.hidden_seconds > 0.0).then_some(Lag {
            route,
            reads: self.hidden_reads,
            seconds: self.hidden_seconds,
        })
    }
}

/// A registered fault and how many more calls it applies to.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Fault {
    pub id: u64,
    pub remaining: u32,
    #[serde(flatten)]
    pub spec: FaultSpec,
}

/// Counts, faults and logs every call to an emulated route.
pub(crate) async fn middleware(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if path == "/_emulator" || path.starts_with("/_emulator/") {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|matched| router::route_name(&method, matched.as_str()));
    let query = request.uri().query().map(redact_sig);
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await;

    let call: Call = (method, path, query, route);
    let (response, client_id, logged_body) = match bytes {
        Err(_) => (
            wire::pbi_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "InvalidRequest",
                "The request body is too large",
            ),
            None,
            None,
        ),
        Ok(bytes) => {
            let (client_id, logged_body) =
                inspect(&state, route, call.2.as_deref(), &parts.headers, &bytes);
            let (limited, fault) = {
                let mut world = state.world();
                match route {
                    Some(name) => {
                        *world.counts.entry(name.to_owned()).or_default() += 1;
                        world.stats.call(client_id.as_deref(), name);
                        // A refused call never reaches the service: it uses up no fault.
                        match rate_limited(&state, &mut world, name, client_id.as_deref()) {
                            Some(refused) => (Some(refused), None),
                            None => (None, take_fault(&mut world.faults, name)),
                        }
                    }
                    None => (None, None),
                }
            };
            if let Some(fault) = &fault {
                if fault.delay_ms > 0 && fault.answer != Some(Answer::SlowBody) {
                    tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
                }
            }
            let token = bearer(&parts.headers).map(str::to_owned);
            let request = Request::from_parts(parts, Body::from(bytes));
            let response = match (limited, fault) {
                (Some(refused), _) => {
                    state
                        .world()
                        .stats
                        .answered(client_id.as_deref(), 429, true);
                    return finish(&state, call, refused, client_id, logged_body);
                }
                (None, Some(spec)) if spec.answer == Some(Answer::Hang) => {
                    if spec.apply_then_fail {
                        drop(run_lagging(&state, &spec, call.3, next, request).await);
                    }
                    // Logged now (status 0: never answered); released only when the emulator stops.
                    log(&state, call, 0, client_id, logged_body);
                    state.closed().await;
                    return wire::pbi_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "ServiceUnavailable",
                        "The emulator is stopping",
                    );
                }
                (None, Some(spec)) if spec.answer.is_some() || spec.status.is_some() => {
                    let works = spec.apply_then_fail
                        || spec.answer.is_some_and(Answer::damages_the_real_answer);
                    let real = if works {
                        Some(run_lagging(&state, &spec, call.3, next, request).await)
                    } else {
                        None
                    };
                    let stall = Duration::from_millis(spec.delay_ms);
                    match (spec.answer, real) {
                        (Some(answer), Some(real)) if answer.damages_the_real_answer() => {
                            answers::damage(answer, real, stall).await
                        }
                        (Some(answer), _) => {
                            let status = spec
                                .status
                                .and_then(|s| StatusCode::from_u16(s).ok())
                                .unwrap_or(StatusCode::OK);
                            answers::replacement(answer, status)
                        }
                        (None, _) => fault_response(&state, &spec, call.3, token.as_deref()),
                    }
                }
                (None, Some(spec)) if spec.pad_bytes > 0 => {
                    let real = run_lagging(&state, &spec, call.3, next, request).await;
                    answers::pad(real, spec.pad_bytes).await
                }
                _ => next.run(request).await,
            };
            let response = quirks::apply(&state, response).await;
            let status = response.status().as_u16();
            state
                .world()
                .stats
                .answered(client_id.as_deref(), status, false);
            (response, client_id, logged_body)
        }
    };

    finish(&state, call, response, client_id, logged_body)
}

/// A call: method, path, query and route name.
type Call = (Method, String, Option<String>, Option<&'static str>);

/// Runs the real handler under a fault whose work happens, giving what it starts the fault's lag.
async fn run_lagging(
    state: &AppState,
    spec: &FaultSpec,
    route: Option<&'static str>,
    next: Next,
    request: Request,
) -> Response {
    if let Some(lag) = route.and_then(|name| spec.lag(name)) {
        state.world().lag = Some(lag);
    }
    let response = next.run(request).await;
    state.world().lag = None;
    response
}

/// Logs a call and returns its answer.
fn finish(
    state: &AppState,
    call: Call,
    response: Response,
    client_id: Option<String>,
    logged_body: Option<Value>,
) -> Response {
    log(
        state,
        call,
        response.status().as_u16(),
        client_id,
        logged_body,
    );
    response
}

/// Logs a call answered with `status` (0: never answered).
fn log(
    state: &AppState,
    (method, path, query, route): Call,
    status: u16,
    client_id: Option<String>,
    logged_body: Option<Value>,
) {
    tracing::info!(%method, path, status, route = route.unwrap_or("-"), "request");
    let mut world = state.world();
    let seq = world.log.last().map_or(1, |entry| entry.seq + 1);
    let at = world.now().to_string();
    world.log.push(LogEntry {
        seq,
        at,
        method: method.to_string(),
        path,
        query,
        route,
        status,
        client_id,
        body: logged_body,
    });
}

/// The 429 of a call over its client's rate limit (Power BI and Fabric routes only; token
/// endpoints and flow triggers are never limited, nor calls without a known token).
fn rate_limited(
    state: &AppState,
    world: &mut World,
    route: &str,
    client_id: Option<&str>,
) -> Option<Response> {
    let limit = state.scenario.rate_limit.as_ref()?;
    if route.starts_with("token") || route == "flow.trigger" {
        return None;
    }
    let now = world.now();
    let wait = world.rate_limiter.check(client_id?, limit, now).err()?;
    let seconds = world.clock.real_seconds(wait).max(1);
    let message = format!(
        "Rate limit of {} requests per {} seconds exceeded. Retry after {seconds} seconds.",
        limit.requests, limit.per_seconds
    );
    let mut response = if route.starts_with("fabric.") {
        crate::fabric::fabric_error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", message)
    } else {
        wire::pbi_error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", message)
    };
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    Some(response)
}

/// Who called (token owner, or the token request's `client_id`) and the JSON body to log.
fn inspect(
    state: &AppState,
    route: Option<&'static str>,
    query: Option<&str>,
    headers: &HeaderMap,
    bytes: &Bytes,
) -> (Option<String>, Option<Value>) {
    if route == Some("token") {
        let client_id = form_urlencoded::parse(bytes)
            .find(|(key, _)| key == "client_id")
            .map(|(_, value)| value.into_owned());
        return (client_id, None);
    }
    if matches!(route, Some("token.imds" | "token.appservice")) {
        // The managed identity named in the query, if any; the secret header is never kept.
        let client_id = query.and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(key, _)| key == "client_id")
                .map(|(_, value)| value.into_owned())
        });
        return (client_id, None);
    }
    let client_id = bearer(headers).and_then(|token| {
        let world = state.world();
        world.tokens.get(token).map(|t| t.client_id.clone())
    });
    let body = if bytes.is_empty() {
        None
    } else {
        serde_json::from_slice(bytes).ok()
    };
    (client_id, body)
}

/// The query string with the value of every `sig` parameter (a Power Automate credential)
/// replaced by `REDACTED`; everything else stays as sent.
pub(crate) fn redact_sig(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("sig") => format!("{key}=REDACTED"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Consumes one application of the first fault matching `route`.
fn take_fault(faults: &mut Vec<Fault>, route: &str) -> Option<FaultSpec> {
    let index = faults
        .iter()
        .position(|f| f.remaining > 0 && (f.spec.route == "*" || f.spec.route == route))?;
    let fault = &mut faults[index];
    fault.remaining -= 1;
    let spec = fault.spec.clone();
    if fault.remaining == 0 {
        faults.remove(index);
    }
    Some(spec)
}

/// The answer a fault gives instead of (or after) the real one.
fn fault_response(
    state: &AppState,
    spec: &FaultSpec,
    route: Option<&str>,
    token: Option<&str>,
) -> Response {
    let status = spec
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = match token.filter(|_| spec.echo_token) {
        Some(token) => format!("The request with 'Authorization: Bearer {token}' was refused"),
        None => default_message(spec, status),
    };
    let mut response = match (&spec.body, route) {
        (Some(body), _) => wire::json_response(status, body),
        (None, Some("token" | "token.imds" | "token.appservice")) => {
            let now = state.world().now();
            entra::fault_error(status, now)
        }
        (None, Some(name)) if name.starts_with("fabric.") => {
            crate::fabric::fabric_error(status, default_code(status), message)
        }
        (None, _) => wire::pbi_error(status, default_code(status), message),
    };
    if let Some(seconds) = spec.retry_after {
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

fn default_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "InvalidRequest",
        401 => "TokenExpired",
        403 => "Forbidden",
        404 => "ItemNotFound",
        429 => "TooManyRequests",
        500 => "InternalServerError",
        502 => "BadGateway",
        503 => "ServiceUnavailable",
        504 => "GatewayTimeout",
        _ => "EmulatorFault",
    }
}

fn default_message(spec: &FaultSpec, status: StatusCode) -> String {
    match spec.retry_after {
        Some(seconds) if status == StatusCode::TOO_MANY_REQUESTS => {
            format!("Too many requests. Retry after {seconds} seconds.")
        }
        _ => format!(
            "Injected fault: {}",
            status.canonical_reason().unwrap_or("error")
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(route: &str, times: u32) -> FaultSpec {
        serde_json::from_value(serde_json::json!({"route": route, "status": 429, "times": times}))
            .unwrap()
    }

    #[test]
    fn a_fault_applies_times_then_disappears() {
        let mut faults = vec![Fault {
            id: 1,
            remaining: 2,
            spec: spec("groups", 2),
        }];
        assert!(take_fault(&mut faults, "datasets").is_none());
        assert!(take_fault(&mut faults, "groups").is_some());
        assert!(take_fault(&mut faults, "groups").is_some());
        assert!(take_fault(&mut faults, "groups").is_none());
        assert!(faults.is_empty());
    }

    #[test]
    fn sig_is_redacted_and_the_rest_kept() {
        assert_eq!(
            redact_sig("api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=abc123"),
            "api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=REDACTED"
        );
        assert_eq!(redact_sig("SIG=x&a=b"), "SIG=REDACTED&a=b");
    }

    #[test]
    fn faults_name_their_bad_field() {
        assert!(
            spec("refresh.posts", 1)
                .check()
                .unwrap_err()
                .starts_with("route:")
        );
        assert!(spec("*", 0).check().unwrap_err().starts_with("times:"));
        assert!(spec("refresh.post", 1).check().is_ok());
    }
}
