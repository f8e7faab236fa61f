//! Deterministic, count-based fault injection for the test backend.
//!
//! Faults are an ordered list of [`FaultRule`]s. For every incoming protocol request (GraphQL,
//! file_stream, upload; never the `/_…` control endpoints) the rules are walked in insertion
//! order. Each rule whose [`Route`] matches and which still has firings left either
//!
//! * lets the request pass while its `skip` counter is non-zero (decrementing it, and the walk
//!   goes on to the next rule), or
//! * **fires**: its `times` counter is decremented and its [`FaultAction`] is applied; the walk
//!   stops, so at most one rule fires per request.
//!
//! Rules with no firings left are removed. `times == u32::MAX` means "forever". Because the
//! decision only depends on the order in which requests arrive, a test that sends requests
//! sequentially gets the same faults on every run.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which requests a [`FaultRule`] applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// Every protocol request (GraphQL, file_stream, run file and artifact PUT/GET).
    Any,
    /// Every `POST /graphql`.
    Graphql,
    /// `POST /graphql` whose operation is the given one (e.g. `"UpsertBucket"`).
    GraphqlOperation(String),
    /// `POST /files/{entity}/{project}/{run}/file_stream`.
    FileStream,
    /// `PUT` / `GET` on the upload URLs handed out by `CreateRunFiles`.
    Upload,
    /// `PUT` / `GET` on the artifact file and manifest URLs handed out by `CreateArtifactFiles`
    /// and `CreateArtifactManifest`.
    ArtifactUpload,
}

impl Route {
    /// Whether a request of `kind` (with GraphQL operation `operation`, if any) matches this route.
    pub(crate) fn matches(&self, kind: RequestKind, operation: Option<&str>) -> bool {
        match self {
            Route::Any => true,
            Route::Graphql => kind == RequestKind::Graphql,
            Route::GraphqlOperation(op) => {
                kind == RequestKind::Graphql && operation.is_some_and(|o| o == op)
            }
            Route::FileStream => kind == RequestKind::FileStream,
            Route::Upload => kind == RequestKind::Upload,
            Route::ArtifactUpload => kind == RequestKind::ArtifactUpload,
        }
    }
}

/// The protocol route of a request, as far as fault matching is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestKind {
    Graphql,
    FileStream,
    Upload,
    ArtifactUpload,
}

/// What happens to a request when a rule fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// Reply with this HTTP status (e.g. 500, 502, 503) and a small JSON error body; the request
    /// is not applied.
    Status {
        /// The HTTP status code to answer with.
        code: u16,
    },
    /// Reply `429 Too Many Requests` with `Retry-After: <retry_after_secs>`; not applied.
    RateLimit {
        /// Value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// Abort the TCP connection with a reset (RST, `SO_LINGER` 0) without any response; the
    /// request is not applied. Clients see "connection reset by peer".
    Reset,
    /// Close the TCP connection cleanly (FIN) without any response; not applied. Clients see an
    /// unexpected EOF.
    Close,
    /// Apply the request to the state, then reset the connection instead of answering, as if the
    /// response got lost. A retrying client re-sends data the server already has.
    DropResponse,
    /// Wait this long, then handle the request normally.
    Delay {
        /// The delay in milliseconds.
        ms: u64,
    },
    /// Accept the request (its body is read) and never answer: no status, no headers, until the
    /// client gives up or the backend stops. The request is not applied.
    Stall,
    /// Apply the request and answer with the status and headers, then send only the first half
    /// of the body (without a length, so the client waits for the rest) and never finish it.
    StallBody,
}

impl FaultAction {
    /// A short human-readable label, used in the request log.
    pub fn label(&self) -> String {
        match self {
            FaultAction::Status { code } => format!("status {code}"),
            FaultAction::RateLimit { retry_after_secs } => {
                format!("429 retry-after {retry_after_secs}")
            }
            FaultAction::Reset => "reset".to_owned(),
            FaultAction::Close => "close".to_owned(),
            FaultAction::DropResponse => "drop-response".to_owned(),
            FaultAction::Delay { ms } => format!("delay {ms}ms"),
            FaultAction::Stall => "stall".to_owned(),
            FaultAction::StallBody => "stall-body".to_owned(),
        }
    }
}

fn default_times() -> u32 {
    1
}

/// One fault: on which route, what to do, how many matching requests to let through first
/// (`skip`), and how many times to fire (`times`; `u32::MAX` = forever).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Which requests the rule applies to.
    pub route: Route,
    /// What to do when the rule fires.
    pub action: FaultAction,
    /// Number of matching requests still to let through before the rule starts firing.
    #[serde(default)]
    pub skip: u32,
    /// Number of firings left (`u32::MAX` = unlimited).
    #[serde(default = "default_times")]
    pub times: u32,
}

impl FaultRule {
    /// A rule that fires once on the next matching request.
    pub fn new(route: Route, action: FaultAction) -> Self {
        Self {
            route,
            action,
            skip: 0,
            times: 1,
        }
    }

    /// Fire `n` times (`u32::MAX` = forever).
    #[must_use]
    pub fn times(mut self, n: u32) -> Self {
        self.times = n;
        self
    }

    /// Let the first `n` matching requests through before firing.
    #[must_use]
    pub fn after(mut self, n: u32) -> Self {
        self.skip = n;
        self
    }
}

/// One fault that was injected, in the order of injection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InjectedFault {
    /// Sequence number of the request (as in the request log) the fault was applied to.
    pub request_seq: u64,
    /// Method and path of the request.
    pub request: String,
    /// The GraphQL operation, for GraphQL requests.
    pub operation: Option<String>,
    /// The action that was applied.
    pub action: FaultAction,
}

#[derive(Debug, Default)]
struct FaultState {
    rules: Vec<FaultRule>,
    injected: Vec<InjectedFault>,
}

/// Handle to the fault plan of a running backend. Cheap to clone; all clones share one plan.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<FaultState>>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a rule to the plan.
    pub fn push(&self, rule: FaultRule) {
        if rule.times > 0 {
            self.lock().rules.push(rule);
        }
    }

    /// Answers the next `n` requests on `route` with HTTP `status` (e.g. 500, 502, 503).
    pub fn fail_next(&self, route: Route, n: u32, status: u16) {
        self.push(FaultRule::new(route, FaultAction::Status { code: status }).times(n));
    }

    /// Answers the next `n` requests on `route` with `429` and `Retry-After: retry_after_secs`.
    pub fn rate_limit_next(&self, route: Route, n: u32, retry_after_secs: u64) {
        self.push(FaultRule::new(route, FaultAction::RateLimit { retry_after_secs }).times(n));
    }

    /// Resets the connection (RST, no response) on the next `n` requests on `route`.
    pub fn reset_next(&self, route: Route, n: u32) {
        self.push(FaultRule::new(route, FaultAction::Reset).times(n));
    }

    /// Closes the connection (FIN, no response) on the next `n` requests on `route`.
    pub fn close_next(&self, route: Route, n: u32) {
        self.push(FaultRule::new(route, FaultAction::Close).times(n));
    }

    /// Applies the next `n` requests on `route` but resets the connection instead of answering.
    pub fn drop_response_next(&self, route: Route, n: u32) {
        self.push(FaultRule::new(route, FaultAction::DropResponse).times(n));
    }

    /// Delays the next `n` requests on `route` by `delay` before handling them normally.
    pub fn delay_next(&self, route: Route, n: u32, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.push(FaultRule::new(route, FaultAction::Delay { ms }).times(n));
    }

    /// Never answers the next `n` requests on `route` (they are not applied).
    pub fn stall_next(&self, route: Route, n: u32) {
        self.push(FaultRule::new(route, FaultAction::Stall).times(n));
    }

    /// Applies the next `n` requests on `route`, answers, and never finishes the reply's body.
    pub fn stall_body_next(&self, route: Route, n: u32) {
        self.push(FaultRule::new(route, FaultAction::StallBody).times(n));
    }

    /// Delays every request on `route` by `delay` until [`Faults::clear`].
    pub fn delay_all(&self, route: Route, delay: Duration) {
        self.delay_next(route, u32::MAX, delay);
    }

    /// Removes all pending rules (the log of injected faults is kept).
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// The rules that can still fire, in order.
    pub fn pending(&self) -> Vec<FaultRule> {
        self.lock().rules.clone()
    }

    /// Number of faults injected so far.
    pub fn injected_count(&self) -> usize {
        self.lock().injected.len()
    }

    /// Every fault injected so far, in order.
    pub fn injected(&self) -> Vec<InjectedFault> {
        self.lock().injected.clone()
    }

    /// Decides the fault (if any) for one request and records it.
    pub(crate) fn decide(
        &self,
        kind: RequestKind,
        operation: Option<&str>,
        request_seq: u64,
        request: &str,
    ) -> Option<FaultAction> {
        let mut state = self.lock();
        let mut fired: Option<(usize, FaultAction)> = None;
        for (index, rule) in state.rules.iter_mut().enumerate() {
            if rule.times == 0 || !rule.route.matches(kind, operation) {
                continue;
            }
            if rule.skip > 0 {
                rule.skip -= 1;
                continue;
            }
            if rule.times != u32::MAX {
                rule.times -= 1;
            }
            fired = Some((index, rule.action.clone()));
            break;
        }
        let (index, action) = fired?;
        if state.rules.get(index).is_some_and(|r| r.times == 0) {
            state.rules.remove(index);
        }
        state.injected.push(InjectedFault {
            request_seq,
            request: request.to_owned(),
            operation: operation.map(str::to_owned),
            action: action.clone(),
        });
        Some(action)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn skip_then_fire_then_exhaust() {
        let faults = Faults::default();
        faults.push(
            FaultRule::new(Route::FileStream, FaultAction::Reset)
                .after(1)
                .times(2),
        );
        let d = |k| faults.decide(k, None, 0, "x");
        assert_eq!(d(RequestKind::Graphql), None);
        assert_eq!(d(RequestKind::FileStream), None);
        assert_eq!(d(RequestKind::FileStream), Some(FaultAction::Reset));
        assert_eq!(d(RequestKind::FileStream), Some(FaultAction::Reset));
        assert_eq!(d(RequestKind::FileStream), None);
        assert!(faults.pending().is_empty());
        assert_eq!(faults.injected_count(), 2);
    }

    #[test]
    fn first_matching_rule_wins_and_operation_routes() {
        let faults = Faults::default();
        faults.fail_next(Route::GraphqlOperation("CreateRunFiles".into()), 1, 503);
        faults.fail_next(Route::Graphql, 1, 500);
        assert_eq!(
            faults.decide(RequestKind::Graphql, Some("UpsertBucket"), 0, "x"),
            Some(FaultAction::Status { code: 500 })
        );
        assert_eq!(
            faults.decide(RequestKind::Graphql, Some("CreateRunFiles"), 1, "x"),
            Some(FaultAction::Status { code: 503 })
        );
        assert_eq!(
            faults.decide(RequestKind::Graphql, Some("CreateRunFiles"), 2, "x"),
            None
        );
    }

    #[test]
    fn forever_rules_stay() {
        let faults = Faults::default();
        faults.delay_all(Route::Any, Duration::from_millis(5));
        for i in 0..10 {
            assert_eq!(
                faults.decide(RequestKind::Upload, None, i, "x"),
                Some(FaultAction::Delay { ms: 5 })
            );
        }
        assert_eq!(faults.pending().len(), 1);
    }

    #[test]
    fn rules_round_trip_through_json() {
        let text = r#"[{"route":"file_stream","action":{"status":{"code":503}},"times":2},
                       {"route":{"graphql_operation":"UpsertBucket"},"action":"reset"},
                       {"route":"any","action":{"rate_limit":{"retry_after_secs":1}},"skip":3}]"#;
        let rules: Vec<FaultRule> = serde_json::from_str(text).unwrap();
        assert_eq!(rules[0].times, 2);
        assert_eq!(rules[1].times, 1);
        assert_eq!(rules[1].action, FaultAction::Reset);
        assert_eq!(rules[2].skip, 3);
        let stalls: Vec<FaultRule> =
            serde_json::from_str(r#"[{"route":"upload","action":"stall"},{"route":"graphql","action":"stall_body","times":2}]"#)
                .unwrap();
        assert_eq!(stalls[0].action, FaultAction::Stall);
        assert_eq!(stalls[1].action, FaultAction::StallBody);
    }
}
