//! Metric names and typed helpers, so every call site spells them the same way.
//!
//! Labels are never secrets: only source, route and target names, outcomes and
//! states. The Prometheus recorder is installed once per process
//! ([`install`]); `/metrics` renders it through [`render_configured`], which
//! leaves out the series of sources, routes and targets a reload removed.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const REQUESTS_TOTAL: &str = "hookgate_requests_total";
pub const EVENTS_ROUTED_TOTAL: &str = "hookgate_events_routed_total";
pub const DELIVERIES_TOTAL: &str = "hookgate_deliveries_total";
pub const DELIVERY_DURATION_SECONDS: &str = "hookgate_delivery_duration_seconds";
pub const CIRCUIT_OPEN: &str = "hookgate_circuit_open";
pub const QUEUE_COMMITS_TOTAL: &str = "hookgate_queue_commits_total";
pub const QUEUE_EVENTS_COMMITTED_TOTAL: &str = "hookgate_queue_events_committed_total";
pub const QUEUE_CLAIMS_TOTAL: &str = "hookgate_queue_claims_total";
pub const QUEUE_CLAIMED_TOTAL: &str = "hookgate_queue_claimed_deliveries_total";
pub const QUEUE_HANDED_OFF_TOTAL: &str = "hookgate_queue_handed_off_total";
pub const QUEUE_BACKLOG_DELIVERIES: &str = "hookgate_queue_backlog_deliveries";
pub const QUEUE_BACKLOG_BYTES: &str = "hookgate_queue_backlog_bytes";
pub const QUEUE_DEPTH: &str = "hookgate_queue_depth";
pub const QUEUE_OLDEST_WAITING_AGE: &str = "hookgate_queue_oldest_waiting_age_seconds";
pub const QUEUE_BLOCKED_KEYS: &str = "hookgate_queue_blocked_keys";
pub const RATE_LIMITED_TOTAL: &str = "hookgate_rate_limited_total";
pub const CONFIG_RELOADS_TOTAL: &str = "hookgate_config_reloads_total";

/// Seconds: from a fast local receiver to the longest sensible timeout.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the process-wide Prometheus recorder (once; later calls return the
/// same handle). `None` if another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                // Histograms, not summaries: they aggregate across replicas.
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        DELIVERY_DURATION_SECONDS.to_owned(),
                    ),
                    DURATION_BUCKETS,
                )
                .ok()?
                .install_recorder()
                .ok()
                .inspect(spawn_upkeep)
        })
        .clone()
}

/// How often the recorder's histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// `install_recorder` (unlike the exporter's `install`) starts no upkeep:
/// every histogram sample (one per delivery attempt) stays raw in the
/// recorder until a `/metrics` scrape or `run_upkeep` folds it in, so a
/// gateway nobody scrapes grew by about 16 bytes per attempt, without end
/// (found by heaptrack draining a million-delivery backlog;
/// docs/performance.md). Fold them on a thread of its own, which runs
/// whatever runtime (or none) is current, for the life of the process.
fn spawn_upkeep(handle: &PrometheusHandle) {
    let handle = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("hookgate-metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histograms are folded only when /metrics is scraped");
    }
}

/// The labels whose values are names from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameLabel {
    Source,
    Route,
    Target,
}

/// The recorder's text exposition without the series whose `source`, `route`
/// or `target` label names something `is_configured` says the running config
/// no longer has, so a reload that removes a target or route ends its series
/// (no stale gauges) without restarting the process.
///
/// Why filter at render time: metrics-exporter-prometheus cannot delete one
/// series, and an idle timeout would also drop live gauges that simply did not
/// change. The removed series stay in the registry (a few per name ever
/// configured) and come back, with their counts, if the name returns.
///
/// This reads the labels without a full exposition parser because hookgate
/// writes every label value itself: config names (`[A-Za-z0-9][A-Za-z0-9_.-]*`),
/// outcomes, states and bucket bounds, none of which holds `,`, `"` or `}`.
pub fn render_configured(
    handle: &PrometheusHandle,
    is_configured: impl Fn(NameLabel, &str) -> bool,
) -> String {
    filter_exposition(&handle.render(), is_configured)
}

/// [`render_configured`] on already rendered text.
fn filter_exposition(text: &str, is_configured: impl Fn(NameLabel, &str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    // The `# HELP` / `# TYPE` lines of the current family, written only once
    // one of its series is kept (a family with no series left disappears).
    let mut header = String::new();
    let mut in_header = false;
    let mut family_kept = false;
    for line in text.lines() {
        if line.starts_with('#') {
            if !in_header {
                header.clear();
                family_kept = false;
                in_header = true;
            }
            header.push_str(line);
            header.push('\n');
        } else if line.is_empty() {
            if family_kept {
                out.push('\n');
            }
        } else {
            in_header = false;
            if series_is_configured(line, &is_configured) {
                if !family_kept {
                    out.push_str(&header);
                    family_kept = true;
                }
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Whether every name label of one sample line (`name{k="v",..} value`)
/// passes `is_configured`.
fn series_is_configured(line: &str, is_configured: &impl Fn(NameLabel, &str) -> bool) -> bool {
    let Some((_, rest)) = line.split_once('{') else {
        return true;
    };
    let Some((labels, _)) = rest.split_once('}') else {
        return true;
    };
    labels.split(',').all(|pair| {
        let Some((key, value)) = pair.split_once('=') else {
            return true;
        };
        let value = value.trim_matches('"');
        match key.trim() {
            "source" => is_configured(NameLabel::Source, value),
            "route" => is_configured(NameLabel::Route, value),
            "target" => is_configured(NameLabel::Target, value),
            _ => true,
        }
    })
}

/// The outcome label of `hookgate_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    Accepted,
    SchemaWarning,
    Duplicate,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    RequestTimeout,
    MissingSignature,
    MalformedSignature,
    InvalidSignature,
    RateLimited,
    InvalidJson,
    InvalidEvent,
    QueueFull,
    QueueUnavailable,
    Overloaded,
    HeadersTooLarge,
}

impl RequestOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestOutcome::Accepted => "accepted",
            RequestOutcome::SchemaWarning => "schema_warning",
            RequestOutcome::Duplicate => "duplicate",
            RequestOutcome::NotFound => "not_found",
            RequestOutcome::MethodNotAllowed => "method_not_allowed",
            RequestOutcome::PayloadTooLarge => "payload_too_large",
            RequestOutcome::RequestTimeout => "request_timeout",
            RequestOutcome::MissingSignature => "missing_signature",
            RequestOutcome::MalformedSignature => "malformed_signature",
            RequestOutcome::InvalidSignature => "invalid_signature",
            RequestOutcome::RateLimited => "rate_limited",
            RequestOutcome::InvalidJson => "invalid_json",
            RequestOutcome::InvalidEvent => "invalid_event",
            RequestOutcome::QueueFull => "queue_full",
            RequestOutcome::QueueUnavailable => "queue_unavailable",
            RequestOutcome::Overloaded => "overloaded",
            RequestOutcome::HeadersTooLarge => "headers_too_large",
        }
    }
}

/// Count one inbound request. `source` is empty for requests to no source path.
pub fn request(source: &str, outcome: RequestOutcome) {
    metrics::counter!(REQUESTS_TOTAL, "source" => source.to_owned(), "outcome" => outcome.as_str())
        .increment(1);
}

/// Count one event routed by `route` (or `unmatched`).
pub fn event_routed(route: &str) {
    metrics::counter!(EVENTS_ROUTED_TOTAL, "route" => route.to_owned()).increment(1);
}

/// Count one delivery attempt's outcome and its duration.
pub fn delivery_attempt(target: &str, outcome: &'static str, seconds: f64) {
    metrics::counter!(DELIVERIES_TOTAL, "target" => target.to_owned(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!(DELIVERY_DURATION_SECONDS, "target" => target.to_owned()).record(seconds);
}

/// 1 while `target`'s circuit breaker is open (or half-open), else 0.
pub fn circuit_open(target: &str, open: bool) {
    metrics::gauge!(CIRCUIT_OPEN, "target" => target.to_owned()).set(if open { 1.0 } else { 0.0 });
}

/// One durable commit (one fsync) of the queue, holding `events` new events:
/// `events_committed_total / commits_total` is the group-commit factor.
pub fn queue_commit(events: u64) {
    metrics::counter!(QUEUE_COMMITS_TOTAL).increment(1);
    if events > 0 {
        metrics::counter!(QUEUE_EVENTS_COMMITTED_TOTAL).increment(events);
    }
}

/// `claims` claim commands committed, which handed out `claimed` deliveries
/// in all: `claimed_deliveries_total / claims_total` is the deliveries per
/// claim.
pub fn queue_claims(claims: u64, claimed: u64) {
    if claims > 0 {
        metrics::counter!(QUEUE_CLAIMS_TOTAL).increment(claims);
        metrics::counter!(QUEUE_CLAIMED_TOTAL).increment(claimed);
    }
}

/// `n` deliveries leased in their enqueue's transaction and handed to their
/// worker without a claim (`queue::hand_off`).
pub fn queue_handed_off(n: u64) {
    if n > 0 {
        metrics::counter!(QUEUE_HANDED_OFF_TOTAL).increment(n);
    }
}

/// The unfinished work (`pending`, `in_flight`, `retrying`) and its bytes.
pub fn queue_backlog(deliveries: u64, bytes: u64) {
    metrics::gauge!(QUEUE_BACKLOG_DELIVERIES).set(deliveries as f64);
    metrics::gauge!(QUEUE_BACKLOG_BYTES).set(bytes as f64);
}

/// How many of `target`'s deliveries are in `state` (all five states, so
/// dead letters can be alerted on and delivered ones seen until pruned).
pub fn queue_depth(target: &str, state: &'static str, n: u64) {
    metrics::gauge!(QUEUE_DEPTH, "target" => target.to_owned(), "state" => state).set(n as f64);
}

/// How long ago the oldest unfinished delivery of `target` was accepted
/// (0 when nothing waits); set from the store when `/metrics` is read.
pub fn queue_oldest_waiting_age(target: &str, seconds: f64) {
    metrics::gauge!(QUEUE_OLDEST_WAITING_AGE, "target" => target.to_owned()).set(seconds);
}

/// How many keys of ordered `target` have deliveries waiting behind their
/// head; set from the store when `/metrics` is read.
pub fn queue_blocked_keys(target: &str, keys: u64) {
    metrics::gauge!(QUEUE_BLOCKED_KEYS, "target" => target.to_owned()).set(keys as f64);
}

/// Count `waits` times that `target`'s worker had to wait for its rate limit
/// (a cell was not free at once). Called with 0 when the worker starts, so a
/// limited target's series exists before its first wait.
pub fn rate_limited(target: &str, waits: u64) {
    metrics::counter!(RATE_LIMITED_TOTAL, "target" => target.to_owned()).increment(waits);
}

/// Count one config reload that applied (`success`) or was refused (`error`).
/// A file identical to the running config is not a reload and not counted.
pub fn config_reload(success: bool) {
    let result = if success { "success" } else { "error" };
    metrics::counter!(CONFIG_RELOADS_TOTAL, "result" => result).increment(1);
}

/// Both series of `hookgate_config_reloads_total` at 0, so an alert on
/// errors has a series before the first reload.
pub fn config_reloads_init() {
    for result in ["success", "error"] {
        metrics::counter!(CONFIG_RELOADS_TOTAL, "result" => result).increment(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE hookgate_deliveries_total counter
hookgate_deliveries_total{target=\"crm\",outcome=\"delivered\"} 3
hookgate_deliveries_total{target=\"old\",outcome=\"delivered\"} 1

# TYPE hookgate_circuit_open gauge
hookgate_circuit_open{target=\"old\"} 0

# TYPE hookgate_requests_total counter
hookgate_requests_total{source=\"\",outcome=\"not_found\"} 2
hookgate_requests_total{source=\"outrival\",outcome=\"accepted\"} 5

# TYPE hookgate_queue_commits_total counter
hookgate_queue_commits_total 4

# TYPE hookgate_delivery_duration_seconds histogram
hookgate_delivery_duration_seconds_bucket{target=\"old\",le=\"0.005\"} 1
hookgate_delivery_duration_seconds_sum{target=\"old\"} 0.001
";

    fn only_crm_and_outrival(label: NameLabel, name: &str) -> bool {
        match label {
            NameLabel::Source => name.is_empty() || name == "outrival",
            NameLabel::Route => name == "all",
            NameLabel::Target => name == "crm",
        }
    }

    #[test]
    fn series_of_removed_names_and_their_empty_families_are_left_out() {
        let out = filter_exposition(TEXT, only_crm_and_outrival);
        assert_eq!(
            out,
            "\
# TYPE hookgate_deliveries_total counter
hookgate_deliveries_total{target=\"crm\",outcome=\"delivered\"} 3

# TYPE hookgate_requests_total counter
hookgate_requests_total{source=\"\",outcome=\"not_found\"} 2
hookgate_requests_total{source=\"outrival\",outcome=\"accepted\"} 5

# TYPE hookgate_queue_commits_total counter
hookgate_queue_commits_total 4

"
        );
    }

    #[test]
    fn everything_configured_is_the_text_unchanged() {
        assert_eq!(filter_exposition(TEXT, |_, _| true), TEXT);
    }
}
