//! Fault-injecting, recording HTTP proxy for the integration tests.
//!
//! It sits between the real AWS SDK (inside the spawned `tagstack` binary) and moto, and owns:
//! recording every request (service, `Action`, status returned, decoded body) and, by rule,
//! replacing moto's answer with an AWS-style XML error, holding the request without answering
//! (before or after forwarding it: the latter is a "lost response"), or delaying it. moto alone
//! cannot produce DependencyViolation races, NotFound-after-create, throttling or lost responses,
//! so this is how tests prove tagstack's ordering and retry logic. The API is synchronous so
//! plain `#[test]` functions can use it; it runs its own tokio runtime.
//!
//! Idempotency tokens: moto ignores `ClientToken` (a repeated RunInstances launches again), EC2
//! does not: "If you repeat a request with the same client token and the same parameters, the
//! API returns the same result as the original request" (EC2 API reference, "Ensuring
//! idempotency"). So the proxy answers an EC2 request whose `ClientToken` it has already
//! forwarded with moto's first answer, without forwarding it again (`Call::replayed`); the
//! SDK's own retries (which reuse the token) and tagstack's deterministic tokens then behave
//! as on AWS and the tests count real duplicates only. EC2's replayed RunInstances answer
//! shows the instances' state now ("The only information that might vary in the response is
//! the state of the instance", API reference "Ensuring Idempotency"); moto's first answer says
//! `pending`, so the proxy marks the instances it saw terminated (a TerminateInstances moto
//! accepted) as `terminated` in a replayed answer. A replayed CreateRouteTable answer names the
//! route table even after it was deleted, as EC2's does (the original result).
// Test support: panicking on a broken test bed is the right behaviour, and a given test binary
// uses only part of this API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Request, Response};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// One request the proxy received, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// From the SigV4 credential scope (`ec2`, `iam`, `sts`, ...); "" when unsigned.
    pub service: String,
    /// The Query-protocol `Action`; "" for non-AWS requests such as `/moto-api/...`.
    pub action: String,
    /// Status returned to the client; 0 while in flight and for hung requests.
    pub status: u16,
    /// True when a fault decided the answer (Error, HangBefore, HangAfter); false for Delay.
    pub injected: bool,
    /// The URL-decoded request body, e.g. `Action=CreateVpc&...&TagSpecification.1...`.
    pub body: String,
    /// Answered from the first answer to the same `ClientToken`, not forwarded (as EC2 does).
    pub replayed: bool,
    /// Reached moto, whatever the client was answered.
    pub forwarded: bool,
    /// moto's own status for a forwarded call (the client may have been told otherwise).
    pub upstream_status: u16,
    /// When the request arrived, and when its answer left (None while in flight and for
    /// injected answers): the critical-path benchmark orders calls by these.
    pub arrived: std::time::Instant,
    pub answered: Option<std::time::Instant>,
}

#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with an AWS-style XML error instead of forwarding.
    Error { code: String, message: String, status: u16 },
    /// Never forward and never answer; the connection stays open until the proxy is dropped.
    HangBefore,
    /// Forward (so the side effect happens) but never answer: a lost response.
    HangAfter,
    /// Forward (so the side effect happens), then answer with this error instead of moto's
    /// answer: a lost response the client sees as a 5xx.
    ErrorAfter { code: String, message: String, status: u16 },
    /// Forward (so the side effect happens), then close the connection without an answer: a
    /// lost response the client sees as a dropped connection.
    DropAfter,
    /// Forward after the delay.
    Delay(Duration),
    /// Answer with this body (HTTP 200, text/xml) instead of forwarding: what an API moto
    /// cannot model would return, e.g. a node's console output with its SSH host keys.
    Respond(String),
    /// Answer with the throttling error of the request's service, as AWS does: EC2
    /// `RequestLimitExceeded`, IAM (and the other Query services) `Throttling`, both HTTP 503.
    /// Nothing is forwarded: a throttled request was refused.
    Throttle,
}

#[derive(Clone, Debug)]
pub struct Rule {
    /// The Query `Action` to match; [`ANY_ACTION`] matches every AWS request.
    pub action: String,
    /// Only requests whose decoded body contains this (e.g. a resource id) match.
    pub body_contains: Option<String>,
    /// Remaining applications; None = forever.
    pub times: Option<usize>,
    /// Applies to a matching call with this probability only (see [`FaultProxy::set_seed`]).
    pub chance: Option<f64>,
    pub fault: Fault,
}

/// `Rule::action` that matches every AWS request (not the proxy's non-AWS traffic).
pub const ANY_ACTION: &str = "*";

impl Rule {
    /// A rule applying once; chain `.times(n)`, `.forever()`, `.when_body_contains(..)`.
    pub fn new(action: &str, fault: Fault) -> Rule {
        Rule { action: action.to_string(), body_contains: None, times: Some(1), chance: None, fault }
    }
    /// Throttle `probability` of every AWS request (any action, forever), the way AWS answers a
    /// throttled call (`Fault::Throttle`). Which calls are hit is decided by the proxy's seed,
    /// the action and how many calls of that action came before: the same seed and the same
    /// sequence of calls per action throttle the same calls.
    pub fn throttle_every(probability: f64) -> Rule {
        Rule::new(ANY_ACTION, Fault::Throttle).forever().with_chance(probability)
    }
    /// Apply to each matching call with this probability (seeded, see `throttle_every`).
    pub fn with_chance(mut self, probability: f64) -> Rule {
        self.chance = Some(probability);
        self
    }
    /// Answer `times` matching calls with error `code`, HTTP status chosen as AWS would.
    pub fn error(action: &str, code: &str, times: usize) -> Rule {
        let fault = Fault::Error {
            code: code.to_string(),
            message: format!("{code} injected by the test fault proxy"),
            status: default_status(code),
        };
        Rule::new(action, fault).times(times)
    }
    pub fn hang_before(action: &str) -> Rule {
        Rule::new(action, Fault::HangBefore)
    }
    pub fn hang_after(action: &str) -> Rule {
        Rule::new(action, Fault::HangAfter)
    }
    /// The request is applied, the answer replaced by HTTP 500 InternalError.
    pub fn error_after(action: &str) -> Rule {
        let code = "InternalError";
        Rule::new(
            action,
            Fault::ErrorAfter {
                code: code.into(),
                message: "InternalError injected by the test fault proxy after forwarding".into(),
                status: 500,
            },
        )
    }
    /// The request is applied, then the connection is closed without an answer.
    pub fn drop_after(action: &str) -> Rule {
        Rule::new(action, Fault::DropAfter)
    }
    pub fn delay(action: &str, delay: Duration) -> Rule {
        Rule::new(action, Fault::Delay(delay))
    }
    pub fn respond(action: &str, body: &str) -> Rule {
        Rule::new(action, Fault::Respond(body.to_string()))
    }
    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }
    pub fn forever(mut self) -> Rule {
        self.times = None;
        self
    }
    pub fn when_body_contains(mut self, needle: &str) -> Rule {
        self.body_contains = Some(needle.to_string());
        self
    }
    /// Override the status / message of an `Error` fault (no effect on other faults).
    pub fn with_status(mut self, new: u16) -> Rule {
        if let Fault::Error { status, .. } = &mut self.fault {
            *status = new;
        }
        self
    }
    pub fn with_message(mut self, new: &str) -> Rule {
        if let Fault::Error { message, .. } = &mut self.fault {
            *message = new.to_string();
        }
        self
    }
}

/// The HTTP status AWS uses for an error code (what the SDK's retry classifier sees).
pub fn default_status(code: &str) -> u16 {
    match code {
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" | "ServiceUnavailable" | "Unavailable" => 503,
        "InternalError" | "InternalFailure" | "ServiceFailure" => 500,
        "DeleteConflict" | "EntityAlreadyExists" | "ConcurrentModification" => 409,
        "NoSuchEntity" => 404,
        _ => 400,
    }
}

struct State {
    calls: Vec<Call>,
    rules: Vec<Rule>,
    /// Seed of the probabilistic rules (`Rule::chance`).
    seed: u64,
    /// Calls seen per action: with the seed, what a probabilistic rule's roll depends on.
    per_action: std::collections::HashMap<String, u64>,
    /// (action, ClientToken) -> moto's first successful answer (status, content type, body).
    tokens: std::collections::HashMap<(String, String), (u16, String, Bytes)>,
    /// Instances a forwarded TerminateInstances ended (moto answered 2xx).
    terminated: std::collections::HashSet<String>,
}

/// Shared between the sync handle and the server tasks; the condvar wakes `wait_for`.
struct Shared {
    state: Mutex<State>,
    seen: Condvar,
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    /// Start a proxy on 127.0.0.1:<free port> forwarding to `upstream` ("http://127.0.0.1:5000").
    pub fn start(upstream: &str) -> FaultProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fault-proxy")
            .enable_all()
            .build()
            .expect("fault proxy runtime");
        // Bind with std so `start` works from any context, then hand the socket to tokio.
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fault proxy");
        std_listener.set_nonblocking(true).expect("nonblocking listener");
        let port = std_listener.local_addr().expect("local addr").port();
        // No idle pooling: moto's werkzeug server may close kept-alive connections at any time,
        // and a fresh loopback connection per request costs nothing next to a stale-socket race.
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build_http::<Full<Bytes>>();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                calls: Vec::new(),
                rules: Vec::new(),
                seed: 0,
                per_action: Default::default(),
                tokens: Default::default(),
                terminated: Default::default(),
            }),
            seen: Condvar::new(),
            upstream: upstream.trim_end_matches('/').to_string(),
            client,
        });
        let task_shared = Arc::clone(&shared);
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("tokio listener");
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    // e.g. EMFILE: back off instead of spinning.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let conn_shared = Arc::clone(&task_shared);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&conn_shared), req));
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        FaultProxy { port, shared, runtime: Some(runtime) }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    pub fn add_rule(&self, rule: Rule) {
        self.state().rules.push(rule);
    }
    pub fn clear_rules(&self) {
        self.state().rules.clear();
    }
    /// Seed for the probabilistic rules (default 0).
    pub fn set_seed(&self, seed: u64) {
        self.state().seed = seed;
    }
    /// How many calls the proxy itself answered with HTTP 503 (`Fault::Throttle`, or an
    /// `Error` fault with that status).
    pub fn throttled(&self) -> usize {
        self.calls().iter().filter(|c| c.injected && c.status == 503).count()
    }
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }
    /// Forget recorded calls (e.g. after set-up, before asserting a converged run is read-only).
    pub fn clear_calls(&self) {
        self.state().calls.clear();
    }
    pub fn actions(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.action).collect()
    }
    /// How many requests with this action were seen (SDK retries count separately).
    pub fn count(&self, action: &str) -> usize {
        self.calls().iter().filter(|c| c.action == action).count()
    }
    /// How many requests with this action moto applied (forwarded, not answered from an
    /// earlier ClientToken, and moto answered 2xx): the creates that really happened.
    pub fn applied(&self, action: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.action == action && c.forwarded && (200..300).contains(&c.upstream_status))
            .count()
    }
    /// AWS calls that may change state: not Describe*/List*/Get*, and not non-AWS requests.
    pub fn mutating_calls(&self) -> Vec<Call> {
        let read_only = |a: &str| ["Describe", "List", "Get"].iter().any(|p| a.starts_with(p));
        let mut calls = self.calls();
        calls.retain(|c| !c.action.is_empty() && !read_only(&c.action));
        calls
    }
    /// True as soon as a request with `action` has been received (now or earlier).
    pub fn wait_for(&self, action: &str, timeout: Duration) -> bool {
        let seen = |s: &mut State| s.calls.iter().any(|c| c.action == action);
        let (mut state, _) = (self.shared.seen).wait_timeout_while(self.state(), timeout, |s| !seen(s)).unwrap();
        seen(&mut state)
    }
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Shutting the runtime down drops every task at its next await, including hung
        // connections parked on `pending()`, so their sockets close and this returns promptly.
        // Waiting is not allowed inside another runtime (an async test): then do not wait.
        match self.runtime.take() {
            Some(rt) if tokio::runtime::Handle::try_current().is_ok() => rt.shutdown_background(),
            Some(rt) => rt.shutdown_timeout(Duration::from_secs(2)),
            None => {}
        }
    }
}

impl Shared {
    /// Record the request and pick the fault of the first matching rule with uses left.
    fn record(&self, service: &str, action: &str, body: &str) -> (usize, Option<Fault>) {
        let mut state = self.state.lock().unwrap();
        let state = &mut *state;
        let nth = {
            let n = state.per_action.entry(action.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        let seed = state.seed;
        let fault = state
            .rules
            .iter_mut()
            .enumerate()
            .filter(|_| !action.is_empty())
            .find(|(i, r)| {
                (r.action == action || r.action == ANY_ACTION)
                    && r.times != Some(0)
                    && r.body_contains.as_deref().is_none_or(|n| body.contains(n))
                    && r.chance.is_none_or(|p| roll(seed, *i as u64, action, nth) < p)
            })
            .map(|(_, r)| r)
            .map(|r| {
                r.times = r.times.map(|t| t - 1);
                r.fault.clone()
            });
        let (status, injected) = match &fault {
            Some(Fault::Error { status, .. }) => (*status, true),
            Some(Fault::Respond(_)) => (200, true),
            Some(Fault::Throttle) => (503, true),
            Some(Fault::HangBefore | Fault::HangAfter | Fault::DropAfter) => (0, true),
            Some(Fault::ErrorAfter { status, .. }) => (*status, true),
            Some(Fault::Delay(_)) | None => (0, false),
        };
        let call = Call {
            service: service.to_string(),
            action: action.to_string(),
            status,
            injected,
            body: body.to_string(),
            replayed: false,
            forwarded: false,
            upstream_status: 0,
            arrived: std::time::Instant::now(),
            answered: None,
        };
        state.calls.push(call);
        self.seen.notify_all();
        (state.calls.len() - 1, fault)
    }

    fn set_status(&self, idx: usize, status: u16) {
        self.update(idx, |c| {
            c.status = status;
            c.answered = Some(std::time::Instant::now());
        });
    }

    fn update(&self, idx: usize, f: impl FnOnce(&mut Call)) {
        // `clear_calls` may have run meanwhile; then there is nothing to update.
        if let Some(call) = self.state.lock().unwrap().calls.get_mut(idx) {
            f(call);
        }
    }

    /// The first answer to (action, token), with the state of instances terminated since.
    fn cached(&self, action: &str, token: &str) -> Option<(u16, String, Bytes)> {
        let state = self.state.lock().unwrap();
        let (status, content_type, body) = state.tokens.get(&(action.to_string(), token.to_string())).cloned()?;
        if action != "RunInstances" || state.terminated.is_empty() {
            return Some((status, content_type, body));
        }
        let body = mark_terminated(&String::from_utf8_lossy(&body), &state.terminated);
        Some((status, content_type, Bytes::from(body)))
    }

    fn terminated(&self, form: &str) {
        let ids = form.split('&').filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            url_decode(k).starts_with("InstanceId.").then(|| url_decode(v))
        });
        self.state.lock().unwrap().terminated.extend(ids);
    }

    fn remember(&self, action: &str, token: &str, answer: (u16, String, Bytes)) {
        self.state.lock().unwrap().tokens.entry((action.to_string(), token.to_string())).or_insert(answer);
    }

    /// Send the request to the upstream and buffer its answer; a 502 if it cannot be reached.
    async fn forward(&self, parts: Parts, body: Bytes) -> Response<Full<Bytes>> {
        let try_forward = async {
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let mut req = Request::builder().method(parts.method).uri(format!("{}{path}", self.upstream));
            *req.headers_mut().ok_or("bad request")? = end_to_end(parts.headers);
            let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
            let (parts, body) = self.client.request(req).await.map_err(|e| e.to_string())?.into_parts();
            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            let mut resp = Response::new(Full::new(body));
            *resp.status_mut() = parts.status;
            *resp.headers_mut() = end_to_end(parts.headers);
            Ok::<_, String>(resp)
        };
        let message = |e| format!("fault proxy: upstream error: {e}");
        try_forward.await.unwrap_or_else(|e| simple_response(502, "text/plain", message(e)))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, BoxError> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let raw = String::from_utf8_lossy(&body).into_owned();
    let action = form_value(&raw, "Action")
        .or_else(|| form_value(parts.uri.query().unwrap_or(""), "Action"))
        .unwrap_or_default();
    let service =
        parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(service_from_auth).unwrap_or_default();
    let (idx, fault) = shared.record(&service, &action, &url_decode(&raw));
    match fault {
        Some(Fault::Error { code, message, status }) => {
            return Ok(simple_response(status, "text/xml", error_xml(&service, &code, &message, status)));
        }
        Some(Fault::Respond(body)) => return Ok(simple_response(200, "text/xml", body)),
        Some(Fault::Throttle) => {
            let code = if service == "ec2" { "RequestLimitExceeded" } else { "Throttling" };
            let message = "Rate exceeded (throttled by the test fault proxy)";
            return Ok(simple_response(503, "text/xml", error_xml(&service, code, message, 503)));
        }
        Some(Fault::HangBefore) => return std::future::pending().await,
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::HangAfter | Fault::ErrorAfter { .. } | Fault::DropAfter) | None => {}
    }
    let token = if service == "ec2" { form_value(&raw, "ClientToken").filter(|t| !t.is_empty()) } else { None };
    let replay = token.as_deref().and_then(|t| shared.cached(&action, t));
    let resp = match replay {
        Some((status, content_type, body)) => {
            shared.update(idx, |c| c.replayed = true);
            bytes_response(status, &content_type, body)
        }
        None => {
            // In its own task: a client that goes away (a SIGKILLed `tagstack`) drops this
            // handler, but a request that reached the upstream is applied there, as on AWS,
            // and must be recorded as such (`Call::forwarded`, `upstream_status`, tokens).
            let (task_shared, action) = (Arc::clone(&shared), action.clone());
            let forwarding = tokio::spawn(async move {
                let shared = task_shared;
                let resp = shared.forward(parts, body).await;
                let upstream = resp.status().as_u16();
                shared.update(idx, |c| {
                    c.forwarded = upstream != 502;
                    c.upstream_status = upstream;
                });
                if action == "TerminateInstances" && resp.status().is_success() {
                    shared.terminated(&raw);
                }
                if let Some(t) = &token
                    && resp.status().is_success()
                {
                    let content_type = resp
                        .headers()
                        .get(CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("text/xml")
                        .to_string();
                    let body = resp.body().clone().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    shared.remember(&action, t, (resp.status().as_u16(), content_type, body));
                }
                resp
            });
            forwarding.await?
        }
    };
    match fault {
        // The upstream side effect happened; the client never learns about it.
        Some(Fault::HangAfter) => std::future::pending().await,
        Some(Fault::ErrorAfter { code, message, status }) => {
            Ok(simple_response(status, "text/xml", error_xml(&service, &code, &message, status)))
        }
        // hyper closes the connection without an answer when the service fails.
        Some(Fault::DropAfter) => Err("fault proxy: connection dropped after forwarding".into()),
        _ => {
            shared.set_status(idx, resp.status().as_u16());
            Ok(resp)
        }
    }
}

/// A RunInstances answer (EC2 XML) with each top-level instance item whose `instanceId` is in
/// `dead` shown as EC2 shows a terminated instance (`instanceState` code 48, "terminated").
fn mark_terminated(xml: &str, dead: &std::collections::HashSet<String>) -> String {
    const STATE: &str = "<instanceState><code>48</code><name>terminated</name></instanceState>";
    let Some(mut i) = xml.find("<instancesSet>") else { return xml.to_string() };
    let mut out = String::with_capacity(xml.len());
    // Copied to `out` up to here; the top-level item being read starts at `item`.
    let (mut copied, mut depth, mut item) = (0, 0usize, 0);
    while i < xml.len() {
        let rest = &xml[i..];
        if rest.starts_with("</instancesSet>") {
            break;
        } else if rest.starts_with("<item>") {
            if depth == 0 {
                item = i;
            }
            depth += 1;
            i += "<item>".len();
        } else if rest.starts_with("</item>") {
            // Nested items (block devices, interfaces) are counted, not judged.
            depth = depth.saturating_sub(1);
            i += "</item>".len();
            let text = &xml[item..i];
            let id = text.split("<instanceId>").nth(1).and_then(|r| r.split("</instanceId>").next());
            if depth == 0
                && let (Some(id), Some(from), Some(to)) =
                    (id, text.find("<instanceState>"), text.find("</instanceState>"))
                && dead.contains(id)
            {
                out.push_str(&xml[copied..item + from]);
                out.push_str(STATE);
                copied = item + to + "</instanceState>".len();
            }
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    out.push_str(&xml[copied..]);
    out
}

/// A uniform number in [0, 1) from (seed, rule, action, n-th call of the action): splitmix64
/// over an FNV-1a hash, so a probabilistic rule is reproducible from its seed.
fn roll(seed: u64, rule: u64, action: &str, nth: u64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in action.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = seed ^ h ^ rule.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ nth.wrapping_mul(0xd1b5_4a32_d192_ed03);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn bytes_response(status: u16, content_type: &str, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/xml")));
    resp
}

/// Drop connection-level headers (they describe one hop) and content-length (hyper recomputes
/// it from the buffered body).
fn end_to_end(mut headers: HeaderMap) -> HeaderMap {
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "content-length",
    ] {
        headers.remove(name);
    }
    headers
}

fn simple_response(status: u16, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
    resp
}

/// The exact error shapes the SDK's Query/EC2 protocol parsers expect.
pub fn error_xml(service: &str, code: &str, message: &str, status: u16) -> String {
    let (code, message, id) = (xml_escape(code), xml_escape(message), request_id());
    if service == "ec2" {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
             <Message>{message}</Message></Error></Errors><RequestID>{id}</RequestID></Response>"
        )
    } else {
        let kind = if status >= 500 { "Receiver" } else { "Sender" };
        format!(
            "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>{kind}</Type>\
             <Code>{code}</Code><Message>{message}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>"
        )
    }
}

fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::UNIX_EPOCH.elapsed().map_or(0, |d| d.subsec_nanos());
    format!("{nanos:08x}-fa17-4000-8000-{n:012x}")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `Credential=AKID/20261122/eu-west-3/ec2/aws4_request, ...` -> "ec2".
pub fn service_from_auth(auth: &str) -> Option<String> {
    let scope = auth.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    scope.split('/').nth(3).map(str::to_string)
}

/// The decoded value of `key` in an `application/x-www-form-urlencoded` string.
pub fn form_value(form: &str, key: &str) -> Option<String> {
    form.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (url_decode(k) == key).then(|| url_decode(v))
    })
}

/// Form decoding: `+` is a space, `%XX` a byte; malformed escapes are kept verbatim.
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod selftest {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    /// A stand-in for moto: answers 200 `ok:<Action>` and remembers the actions it saw.
    struct Upstream {
        url: String,
        seen: Arc<Mutex<Vec<String>>>,
        _rt: tokio::runtime::Runtime,
    }

    fn upstream() -> Upstream {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task_seen = Arc::clone(&seen);
        rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = Arc::clone(&task_seen);
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                    TokioIo::new(stream),
                    hyper::service::service_fn(move |req: Request<Incoming>| {
                        let seen = Arc::clone(&seen);
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let action = form_value(&String::from_utf8_lossy(&body), "Action").unwrap_or_default();
                            seen.lock().unwrap().push(action.clone());
                            Ok::<_, Infallible>(simple_response(200, "text/xml", format!("ok:{action}")))
                        }
                    }),
                ));
            }
        });
        Upstream { url, seen, _rt: rt }
    }

    /// One hand-written HTTP/1.1 request; Err(kind) when no complete answer came in time.
    fn send(
        proxy: &FaultProxy,
        service: &str,
        action: &str,
        timeout: Duration,
    ) -> Result<(u16, String), std::io::ErrorKind> {
        let addr = proxy.url().trim_start_matches("http://").to_string();
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(timeout)).unwrap();
        let body = format!("Action={action}&Version=2016-11-15&GroupName=web+tier%2Fa&VpcId=vpc-1");
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: {addr}\r\nAuthorization: AWS4-HMAC-SHA256 \
             Credential=AKID/20261122/eu-west-3/{service}/aws4_request, SignedHeaders=host, Signature=00\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).map_err(|e| e.kind())?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").ok_or(std::io::ErrorKind::UnexpectedEof)?;
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or(std::io::ErrorKind::InvalidData)?;
        Ok((status, body.to_string()))
    }

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn forwards_and_records() {
        let up = upstream();
        let proxy = FaultProxy::start(&up.url);
        assert_eq!(send(&proxy, "ec2", "DescribeVpcs", T), Ok((200, "ok:DescribeVpcs".into())));
        assert_eq!(send(&proxy, "iam", "CreateRole", T), Ok((200, "ok:CreateRole".into())));
        let calls = proxy.calls();
        assert_eq!(proxy.actions(), ["DescribeVpcs", "CreateRole"]);
        assert_eq!((calls[0].service.as_str(), calls[0].status, calls[0].injected), ("ec2", 200, false));
        assert_eq!(calls[1].service, "iam");
        assert!(calls[0].body.contains("GroupName=web tier/a"), "{}", calls[0].body);
        assert_eq!(*up.seen.lock().unwrap(), ["DescribeVpcs", "CreateRole"]);
        // A non-AWS request is forwarded untouched and recorded with an empty action.
        let mut s = TcpStream::connect(proxy.url().trim_start_matches("http://")).unwrap();
        s.write_all(b"GET /moto-api/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert_eq!(proxy.calls()[2].action, "");
        assert_eq!(proxy.calls()[2].service, "");
    }

    #[test]
    fn error_rule_answers_n_times_then_forwards() {
        let up = upstream();
        let proxy = FaultProxy::start(&up.url);
        proxy.add_rule(Rule::error("CreateVpc", "RequestLimitExceeded", 2));
        for _ in 0..2 {
            let (status, body) = send(&proxy, "ec2", "CreateVpc", T).unwrap();
            assert_eq!(status, 503);
            assert!(body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>"), "{body}");
            assert!(
                body.contains("</Message></Error></Errors><RequestID>") && body.ends_with("</RequestID></Response>"),
                "{body}"
            );
        }
        assert_eq!(send(&proxy, "ec2", "CreateVpc", T), Ok((200, "ok:CreateVpc".into())));
        assert_eq!(*up.seen.lock().unwrap(), ["CreateVpc"]);
        let flags: Vec<_> = proxy.calls().iter().map(|c| (c.status, c.injected)).collect();
        assert_eq!(flags, [(503, true), (503, true), (200, false)]);

        // IAM shape, status from the code, body_contains narrowing, and clear_rules.
        proxy.add_rule(Rule::error("DeleteRole", "DeleteConflict", 5).when_body_contains("vpc-2"));
        proxy.add_rule(Rule::error("DeleteRole", "DeleteConflict", 1));
        let (status, body) = send(&proxy, "iam", "DeleteRole", T).unwrap();
        assert_eq!(status, 409);
        assert!(body.starts_with("<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type><Code>DeleteConflict</Code>"), "{body}");
        assert!(
            body.contains("</Message></Error><RequestId>") && body.ends_with("</RequestId></ErrorResponse>"),
            "{body}"
        );
        assert_eq!(send(&proxy, "iam", "DeleteRole", T).unwrap().0, 200);
        proxy.add_rule(Rule::error("DescribeVpcs", "InvalidVpcID.NotFound", 1).when_body_contains("VpcId=vpc-1"));
        let (status, body) = send(&proxy, "ec2", "DescribeVpcs", T).unwrap();
        assert_eq!(status, 400);
        assert!(body.contains("<Code>InvalidVpcID.NotFound</Code>"), "{body}");
        proxy.add_rule(Rule::error("DeleteVpc", "DependencyViolation", 1).forever());
        proxy.clear_rules();
        assert_eq!(send(&proxy, "ec2", "DeleteVpc", T).unwrap().0, 200);
    }

    #[test]
    fn hangs_and_delay() {
        let up = upstream();
        let proxy = FaultProxy::start(&up.url);
        proxy.add_rule(Rule::hang_after("RunInstances"));
        proxy.add_rule(Rule::hang_before("CreateTags"));
        proxy.add_rule(Rule::delay("CreateSubnet", Duration::from_millis(300)));
        let short = Duration::from_millis(300);
        let timed_out = |r: Result<(u16, String), std::io::ErrorKind>| {
            matches!(r, Err(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
        };
        assert!(timed_out(send(&proxy, "ec2", "RunInstances", short)));
        assert!(timed_out(send(&proxy, "ec2", "CreateTags", short)));
        assert!(proxy.wait_for("CreateTags", Duration::ZERO));
        assert!(!proxy.wait_for("TerminateInstances", Duration::from_millis(50)));
        let start = Instant::now();
        assert_eq!(send(&proxy, "ec2", "CreateSubnet", T).unwrap().0, 200);
        assert!(start.elapsed() >= short);
        // Only HangAfter and Delay reached the upstream; each rule applied once.
        assert_eq!(*up.seen.lock().unwrap(), ["RunInstances", "CreateSubnet"]);
        let flags: Vec<_> = proxy.calls().iter().map(|c| (c.status, c.injected)).collect();
        assert_eq!(flags, [(0, true), (0, true), (200, false)]);
        assert_eq!(send(&proxy, "ec2", "RunInstances", T).unwrap().0, 200);

        // wait_for wakes on arrival; Drop returns promptly and closes a hung connection.
        proxy.add_rule(Rule::hang_before("DeleteVpc").forever());
        let url = proxy.url();
        let client = std::thread::spawn(move || {
            let mut s = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let body = "Action=DeleteVpc";
            write!(s, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
            let start = Instant::now();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            (buf.len(), start.elapsed())
        });
        assert!(proxy.wait_for("DeleteVpc", T));
        let start = Instant::now();
        drop(proxy);
        assert!(start.elapsed() < Duration::from_secs(1), "drop took {:?}", start.elapsed());
        let (received, waited) = client.join().unwrap();
        assert_eq!(received, 0);
        assert!(waited < Duration::from_secs(3), "{waited:?}");
    }

    /// One request with a body of our choice; Err(kind) when no complete answer came.
    fn send_body(proxy: &FaultProxy, body: &str) -> Result<(u16, String), std::io::ErrorKind> {
        let addr = proxy.url().trim_start_matches("http://").to_string();
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: {addr}\r\nAuthorization: AWS4-HMAC-SHA256 \
             Credential=AKID/20261122/eu-west-3/ec2/aws4_request, SignedHeaders=host, Signature=00\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).map_err(|e| e.kind())?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").ok_or(std::io::ErrorKind::UnexpectedEof)?;
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or(std::io::ErrorKind::InvalidData)?;
        Ok((status, body.to_string()))
    }

    #[test]
    fn a_replayed_launch_shows_terminated_instances_as_terminated() {
        let item = |id: &str| {
            format!(
                "<item><blockDeviceMapping><item><deviceName>/dev/sda1</deviceName></item></blockDeviceMapping><instanceId>{id}</instanceId><instanceState><code>0</code><name>pending</name></instanceState></item>"
            )
        };
        let xml = format!(
            "<RunInstancesResponse><groupSet/><instancesSet>{}{}</instancesSet><requestId>r</requestId></RunInstancesResponse>",
            item("i-1"),
            item("i-2")
        );
        let dead: std::collections::HashSet<String> = ["i-2".to_string()].into();
        let marked = super::mark_terminated(&xml, &dead);
        assert_eq!(
            marked,
            xml.replacen(
                "<code>0</code><name>pending</name></instanceState></item></instancesSet>",
                "<code>48</code><name>terminated</name></instanceState></item></instancesSet>",
                1
            )
        );
        assert_ne!(marked, xml);
        assert_eq!(super::mark_terminated(&xml, &Default::default()), xml);
    }

    #[test]
    fn lost_answers_and_client_token_replay() {
        let up = upstream();
        let proxy = FaultProxy::start(&up.url);
        proxy.add_rule(Rule::error_after("CreateVpc"));
        proxy.add_rule(Rule::drop_after("CreateSubnet"));
        let (status, body) = send_body(&proxy, "Action=CreateVpc").unwrap();
        assert_eq!(status, 500);
        assert!(body.contains("<Code>InternalError</Code>"), "{body}");
        assert!(send_body(&proxy, "Action=CreateSubnet").is_err(), "the connection should have been dropped");
        // Both reached the upstream: their side effects happened.
        assert_eq!(*up.seen.lock().unwrap(), ["CreateVpc", "CreateSubnet"]);
        assert_eq!((proxy.applied("CreateVpc"), proxy.applied("CreateSubnet")), (1, 1));

        // A repeated ClientToken is answered with the first answer and not forwarded, even
        // when the first answer was lost; another token is a new request.
        proxy.add_rule(Rule::error_after("RunInstances"));
        assert_eq!(send_body(&proxy, "Action=RunInstances&ClientToken=t1").unwrap().0, 500);
        assert_eq!(send_body(&proxy, "Action=RunInstances&ClientToken=t1"), Ok((200, "ok:RunInstances".into())));
        assert_eq!(send_body(&proxy, "Action=RunInstances&ClientToken=t2").unwrap().0, 200);
        assert_eq!(proxy.applied("RunInstances"), 2);
        let replayed: Vec<bool> =
            proxy.calls().iter().filter(|c| c.action == "RunInstances").map(|c| c.replayed).collect();
        assert_eq!(replayed, [false, true, false]);
        assert_eq!(up.seen.lock().unwrap().iter().filter(|a| *a == "RunInstances").count(), 2);
    }

    #[test]
    fn seeded_throttling_of_every_action() {
        let up = upstream();
        let rolls = |seed: u64| {
            let proxy = FaultProxy::start(&up.url);
            proxy.set_seed(seed);
            proxy.add_rule(Rule::throttle_every(0.25));
            let mut statuses = Vec::new();
            for i in 0..200 {
                let (service, action) = if i % 2 == 0 { ("ec2", "DescribeVpcs") } else { ("iam", "GetRole") };
                let (status, body) = send(&proxy, service, action, T).unwrap();
                if status == 503 {
                    let code = if service == "ec2" { "RequestLimitExceeded" } else { "Throttling" };
                    assert!(body.contains(&format!("<Code>{code}</Code>")), "{body}");
                }
                statuses.push(status);
            }
            assert_eq!(proxy.throttled(), statuses.iter().filter(|s| **s == 503).count());
            statuses
        };
        let a = rolls(7);
        let hit = a.iter().filter(|s| **s == 503).count();
        assert!((30..=70).contains(&hit), "{hit} of 200 throttled at 25%");
        assert_eq!(a, rolls(7), "the same seed must throttle the same calls");
        assert_ne!(a, rolls(8));
    }

    #[test]
    fn mutating_calls_and_concurrency() {
        let up = upstream();
        let proxy = FaultProxy::start(&up.url);
        let actions = ["DescribeVpcs", "CreateVpc", "ListRoles", "GetRole", "AttachRolePolicy", "DeleteSubnet"];
        std::thread::scope(|s| {
            for action in actions.iter().cycle().take(48) {
                let proxy = &proxy;
                s.spawn(move || assert_eq!(send(proxy, "ec2", action, T).unwrap().0, 200));
            }
        });
        assert_eq!(proxy.calls().len(), 48);
        assert_eq!(proxy.count("GetRole"), 8);
        let mut mutating: Vec<_> = proxy.mutating_calls().into_iter().map(|c| c.action).collect();
        mutating.sort();
        mutating.dedup();
        assert_eq!(mutating, ["AttachRolePolicy", "CreateVpc", "DeleteSubnet"]);
        proxy.clear_calls();
        assert!(proxy.calls().is_empty());
    }

    #[test]
    fn parsing_helpers() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/iam/aws4_request, SignedHeaders=host;x-amz-date, Signature=ab";
        assert_eq!(service_from_auth(auth).as_deref(), Some("iam"));
        assert_eq!(service_from_auth("Bearer x"), None);
        assert_eq!(form_value("Version=1&Action=Create%56pc", "Action").as_deref(), Some("CreateVpc"));
        assert_eq!(url_decode("a+b%2Fc%zz%4"), "a b/c%zz%4");
    }
}
