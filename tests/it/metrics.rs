//! `/metrics` after a scripted run of the real binary (its own process, so no
//! other test's series mix in): every metric of DESIGN.md section 8 with
//! exactly its labels and the values the script implies, label values only
//! from config names, outcomes and states; and after a reload that removes a
//! target and a route, none of their series is exported any more.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::common::sink::{Answer, Sink};
use crate::common::{
    Process, SECRET, TARGET_SECRET, event, eventually, post_signed, process_config_yaml,
};
use crate::reload::replace_file;

fn config(ok: &Sink, refusing: &Sink, with_audit_route: bool) -> String {
    let (audit_target, audit_route) = if with_audit_route {
        (
            format!(
                "  audit:\n    kind: http\n    url: {}\n    secret: {TARGET_SECRET}\n",
                ok.url("/audit")
            ),
            "  - name: function-calls\n    match: { event: function-call }\n    targets: [audit]\n    stop: true\n",
        )
    } else {
        (String::new(), "")
    };
    process_config_yaml(&format!(
        r#"targets:
  crm:
    kind: http
    url: {ok}
    secret: {TARGET_SECRET}
    rate_limit: {{ per_second: 2, burst: 1 }}
  refusing:
    kind: http
    url: {refusing}
{audit_target}routes:
{audit_route}  - name: ended
    match: {{ status: ended }}
    targets: [crm, refusing]
"#,
        ok = ok.url("/crm"),
        refusing = refusing.url("/"),
    ))
}

/// `/metrics` parsed: series (`name{labels}` as rendered) → value, and
/// family name → type from its `# TYPE` line.
struct Exposition {
    series: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
}

impl Exposition {
    async fn scrape(gw: &Process) -> (String, Exposition) {
        let resp = reqwest::get(gw.admin_url("/metrics")).await.unwrap();
        assert_eq!(
            resp.headers()["content-type"],
            "text/plain; version=0.0.4",
            "Prometheus text exposition 0.0.4"
        );
        let text = resp.text().await.unwrap();
        let mut series = BTreeMap::new();
        let mut types = BTreeMap::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                types.insert(name.to_owned(), kind.to_owned());
            } else if !line.starts_with('#') {
                let (name, value) = line.rsplit_once(' ').expect("series value");
                let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
                series.insert(name.to_owned(), value);
            }
        }
        (text, Exposition { series, types })
    }

    /// `hookgate_{what}_total{{name_label}="{name}",outcome="{outcome}"}`.
    fn counter(&self, what: &str, name_label: &str, name: &str, outcome: &str) -> f64 {
        self.value(&format!(
            "hookgate_{what}_total{{{name_label}=\"{name}\",outcome=\"{outcome}\"}}"
        ))
    }

    fn value(&self, series: &str) -> f64 {
        *self
            .series
            .get(series)
            .unwrap_or_else(|| panic!("{series} is not exported; have {:#?}", self.series))
    }

    /// The label keys of every series of family `name` (histogram series
    /// under their `_bucket`/`_sum`/`_count` names), with `le` left out.
    fn label_keys(&self, name: &str) -> BTreeSet<Vec<String>> {
        self.series
            .keys()
            .filter(|s| {
                let family = s.split('{').next().unwrap_or(s);
                family == name
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|suffix| family.strip_suffix(suffix) == Some(name))
            })
            .map(|s| {
                labels(s)
                    .into_iter()
                    .map(|(k, _)| k)
                    .filter(|k| k != "le")
                    .collect()
            })
            .collect()
    }
}

/// The `(key, value)` label pairs of one rendered series.
fn labels(series: &str) -> Vec<(String, String)> {
    let Some((_, rest)) = series.split_once('{') else {
        return Vec::new();
    };
    rest.trim_end_matches('}')
        .split(',')
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("key=\"value\"");
            (k.to_owned(), v.trim_matches('"').to_owned())
        })
        .collect()
}

fn keys(list: &[&str]) -> BTreeSet<Vec<String>> {
    BTreeSet::from([list.iter().map(|s| (*s).to_owned()).collect()])
}

#[tokio::test]
async fn every_metric_has_its_labels_and_a_reload_ends_removed_series() {
    let dir = tempfile::tempdir().unwrap();
    let ok = Sink::start().await;
    let refusing = Sink::start().await;
    refusing.always(Answer::status(400));
    let mut gw = Process::serve(dir.path(), &config(&ok, &refusing, true));
    gw.wait_ready().await;

    // The script: 3 ended calls (to crm and refusing), 1 function call (to
    // audit), a wrong and a missing signature, and an unknown path.
    let url = gw.url("/webhooks/outrival");
    for n in 0..3 {
        let body = event("status-changed", "VOICE", "ended", &format!("c{n}"));
        assert_eq!(post_signed(&url, &body).await.status(), 202);
    }
    let call = event("function-call", "VOICE", "in-progress", "c9");
    assert_eq!(post_signed(&url, &call).await.status(), 202);
    let http = reqwest::Client::new();
    let body = event("status-changed", "SMS", "ended", "c-bad");
    let wrong = http
        .post(&url)
        .header("x-signature", "00".repeat(32))
        .body(body.clone());
    assert_eq!(wrong.send().await.unwrap().status(), 403);
    assert_eq!(
        http.post(&url).body(body).send().await.unwrap().status(),
        401
    );
    let unknown = http.post(gw.url("/webhooks/nobody")).body("{}");
    assert_eq!(unknown.send().await.unwrap().status(), 404);

    eventually(
        Duration::from_secs(10),
        "every delivery finished",
        || async {
            let (_, m) = Exposition::scrape(&gw).await;
            m.series
                .get("hookgate_queue_depth{target=\"crm\",state=\"delivered\"}")
                == Some(&3.0)
                && m.series
                    .get("hookgate_queue_depth{target=\"refusing\",state=\"dead\"}")
                    == Some(&3.0)
                && m.series
                    .get("hookgate_queue_depth{target=\"audit\",state=\"delivered\"}")
                    == Some(&1.0)
        },
    )
    .await;

    let (text, m) = Exposition::scrape(&gw).await;
    let families = [
        (
            "hookgate_requests_total",
            "counter",
            &["source", "outcome"][..],
        ),
        ("hookgate_events_routed_total", "counter", &["route"]),
        (
            "hookgate_deliveries_total",
            "counter",
            &["target", "outcome"],
        ),
        (
            "hookgate_delivery_duration_seconds",
            "histogram",
            &["target"],
        ),
        ("hookgate_queue_depth", "gauge", &["target", "state"]),
        (
            "hookgate_queue_oldest_waiting_age_seconds",
            "gauge",
            &["target"],
        ),
        ("hookgate_rate_limited_total", "counter", &["target"]),
        ("hookgate_circuit_open", "gauge", &["target"]),
        ("hookgate_config_reloads_total", "counter", &["result"]),
    ];
    for (name, kind, label_keys) in families {
        assert_eq!(
            m.types.get(name).map(String::as_str),
            Some(kind),
            "{name}\n{text}"
        );
        assert_eq!(m.label_keys(name), keys(label_keys), "{name}\n{text}");
    }

    let requests = |source: &str, outcome: &str| m.counter("requests", "source", source, outcome);
    assert_eq!(requests("outrival", "accepted"), 4.0);
    assert_eq!(requests("outrival", "invalid_signature"), 1.0);
    assert_eq!(requests("outrival", "missing_signature"), 1.0);
    assert_eq!(requests("", "not_found"), 1.0);
    assert_eq!(
        m.value("hookgate_events_routed_total{route=\"ended\"}"),
        3.0
    );
    assert_eq!(
        m.value("hookgate_events_routed_total{route=\"function-calls\"}"),
        1.0
    );
    let deliveries =
        |target: &str, outcome: &str| m.counter("deliveries", "target", target, outcome);
    assert_eq!(deliveries("crm", "delivered"), 3.0);
    assert_eq!(deliveries("refusing", "permanent_failure"), 3.0);
    assert_eq!(deliveries("audit", "delivered"), 1.0);
    assert_eq!(
        m.value("hookgate_delivery_duration_seconds_count{target=\"crm\"}"),
        3.0
    );
    for target in ["crm", "refusing", "audit"] {
        assert_eq!(
            m.value(&format!("hookgate_circuit_open{{target=\"{target}\"}}")),
            0.0
        );
        // Everything was delivered or is dead: nothing waits.
        assert_eq!(
            m.value(&format!(
                "hookgate_queue_oldest_waiting_age_seconds{{target=\"{target}\"}}"
            )),
            0.0
        );
        for state in ["pending", "in_flight", "retrying"] {
            let series = format!("hookgate_queue_depth{{target=\"{target}\",state=\"{state}\"}}");
            assert_eq!(
                m.series.get(&series).copied().unwrap_or(0.0),
                0.0,
                "{series}"
            );
        }
    }
    // crm's burst of 1 at 2/s makes its worker wait for the later events.
    m.value("hookgate_rate_limited_total{target=\"crm\"}");
    assert_eq!(
        m.value("hookgate_config_reloads_total{result=\"success\"}"),
        0.0
    );
    assert_eq!(
        m.value("hookgate_config_reloads_total{result=\"error\"}"),
        0.0
    );

    // Label values are config names, outcomes and states; never a payload
    // value (companion ids, statuses) nor a secret.
    for forbidden in ["c0", "c-bad", "VOICE", "in-progress", SECRET, TARGET_SECRET] {
        let quoted = format!("\"{forbidden}\"");
        assert!(!text.contains(&quoted), "{forbidden} in a label:\n{text}");
    }

    // Remove the audit target and the function-calls route.
    replace_file(
        &dir.path().join("rules.yaml"),
        &config(&ok, &refusing, false)
            .replace("{PORT}", &gw.port.to_string())
            .replace("{ADMIN_PORT}", &gw.admin_port.to_string()),
    );
    let reload = http
        .post(gw.admin_url("/admin/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200);

    let (text, m) = Exposition::scrape(&gw).await;
    for gone in ["\"audit\"", "\"function-calls\""] {
        assert!(!text.contains(gone), "{gone} still exported:\n{text}");
    }
    assert_eq!(
        m.value("hookgate_config_reloads_total{result=\"success\"}"),
        1.0
    );
    let kept = m.counter("deliveries", "target", "crm", "delivered");
    assert_eq!(kept, 3.0, "kept targets keep their series");
    assert_eq!(
        m.value("hookgate_events_routed_total{route=\"ended\"}"),
        3.0
    );
    gw.terminate();
}
