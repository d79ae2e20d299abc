//! The monitoring content (`tagstack::monitoring::content`, `templates/monitoring/`) against the
//! real programs: Debian's `promtool`/`prometheus` 2.42 check and load the rendered
//! configuration and the rules and run the alerts' unit tests; a real Prometheus scrapes fixture
//! exporters (Python prometheus-client, tests/fixtures/monitoring/exporters.py) and every
//! dashboard query must return data; the JMX exporter rules turn the MBeans the Kafka and
//! Cassandra docs name into the metric names the dashboards and alerts use.
//! scripts/test installs the programs; elsewhere a missing one skips with a message (never
//! under CI).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tagstack::monitoring::content;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn monitoring_dir() -> PathBuf {
    root().join("templates/monitoring")
}

/// `name` from `env` or PATH; None (skip) only outside CI when neither has it.
// The skip message is the test's report to whoever runs it without the programs.
#[allow(clippy::print_stderr)]
fn program(env: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        assert!(p.exists(), "{env}={} does not exist", p.display());
        return Some(p);
    }
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()));
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is missing under CI: scripts/test installs it (apt prometheus)"
        );
        eprintln!("SKIPPED: {name} is not installed (apt-get install prometheus, or run scripts/test)");
    }
    found
}

/// The venv's Python with PyYAML and prometheus-client (scripts/test installs both).
#[allow(clippy::print_stderr)]
fn python() -> Option<PathBuf> {
    let p = std::env::var_os("TAGSTACK_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv-moto/bin/python"));
    let ok = p.exists()
        && Command::new(&p).args(["-c", "import yaml, prometheus_client"]).status().is_ok_and(|s| s.success());
    if !ok {
        let required = std::env::var_os("CI").is_some() || std::env::var_os("TAGSTACK_TEST_PYTHON").is_some();
        assert!(!required, "{} lacks PyYAML/prometheus-client (required under CI and scripts/test)", p.display());
        eprintln!("SKIPPED: {} with PyYAML and prometheus-client is missing (run scripts/test)", p.display());
        return None;
    }
    Some(p)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// A YAML file as JSON, read by PyYAML (YAML 1.1, as SnakeYAML in the JMX exporter).
fn yaml(python: &Path, path: &Path) -> Value {
    let out = run(Command::new(python)
        .arg("-c")
        .arg("import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)")
        .arg(path));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn prometheus_config_and_alert_rules_pass_promtool() {
    let (Some(promtool), Some(python)) = (program("TAGSTACK_TEST_PROMTOOL", "promtool"), python()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(content::RULES_FILE), content::alert_rules()).unwrap();
    let debian = !kubernetes_sd_supported(&promtool, dir.path());
    for namespaces in [vec![], vec!["kafka".to_string(), "cassandra".to_string(), "monitoring".to_string()]] {
        let mut config = content::prometheus_config("demo-dev", &namespaces).unwrap();
        if debian {
            config = without_kubernetes_sd(&config);
        }
        let path = dir.path().join(content::PROMETHEUS_CONFIG_FILE);
        std::fs::write(&path, &config).unwrap();
        run(Command::new(&promtool).args(["check", "config", "--syntax-only"]).arg(&path));
        // The full check also opens the rule file and the token file: give it a token where
        // the pod would have one.
        let sa = dir.path().join("serviceaccount");
        std::fs::create_dir_all(&sa).unwrap();
        std::fs::write(sa.join("token"), "t").unwrap();
        std::fs::write(sa.join("ca.crt"), "c").unwrap();
        let local = config.replace("/var/run/secrets/kubernetes.io/serviceaccount", sa.to_str().unwrap());
        std::fs::write(&path, local).unwrap();
        let out = run(Command::new(&promtool).args(["check", "config"]).arg(&path));
        assert!(out.contains("SUCCESS: 10 rules found"), "{out}");
    }
    let rules = dir.path().join(content::RULES_FILE);
    run(Command::new(&promtool).args(["check", "rules"]).arg(&rules));
    let out = run(Command::new(&promtool).args(["test", "rules", "alerts.test.yml"]).current_dir(monitoring_dir()));
    assert!(out.contains("SUCCESS"), "{out}");

    // Every alert has a summary, a runbook and unit tests that see it fire and stay quiet.
    let alerts = yaml(&python, &rules);
    let tests = yaml(&python, &monitoring_dir().join("alerts.test.yml"));
    let mut names = BTreeSet::new();
    for group in alerts["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            for key in ["summary", "runbook"] {
                assert!(rule["annotations"][key].as_str().is_some_and(|s| s.len() > 20), "{name}: no {key}");
            }
            names.insert(name.to_string());
        }
    }
    let (mut fired, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for t in tests["tests"].as_array().unwrap() {
        for a in t["alert_rule_test"].as_array().unwrap() {
            let name = a["alertname"].as_str().unwrap().to_string();
            if a["exp_alerts"].as_array().unwrap().is_empty() {
                quiet.insert(name);
            } else {
                fired.insert(name);
            }
        }
    }
    assert_eq!(fired, names, "alerts without a firing test");
    assert_eq!(quiet, names, "alerts without a quiet test");
}

/// Debian builds Prometheus without Kubernetes service discovery (its NEWS.Debian, 1.5.0+ds-1:
/// "Kubernetes support has been completely removed"), so its promtool refuses the field.
fn kubernetes_sd_supported(promtool: &Path, dir: &Path) -> bool {
    let probe = dir.join("probe.yml");
    std::fs::write(&probe, "scrape_configs:\n  - job_name: x\n    kubernetes_sd_configs:\n      - role: pod\n")
        .unwrap();
    let out = Command::new(promtool).args(["check", "config", "--syntax-only"]).arg(&probe).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() || text.contains("field kubernetes_sd_configs not found"), "{text}");
    out.status.success()
}

/// For a promtool without Kubernetes discovery: each `kubernetes_sd_configs` block becomes a
/// static target, after checking that it holds only what upstream's SDConfig reads in 2.42 and
/// 3.14 alike (discovery/kubernetes/kubernetes.go: `role` endpoints|node|pod,
/// `namespaces.names`); promtool then checks everything else.
fn without_kubernetes_sd(config: &str) -> String {
    let mut out = Vec::new();
    let mut lines = config.lines().peekable();
    let mut blocks = 0;
    while let Some(line) = lines.next() {
        if line.trim() != "kubernetes_sd_configs:" {
            out.push(line.to_string());
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        while let Some(inner) = lines.next_if(|l| l.len() - l.trim_start().len() > indent) {
            let t = inner.trim();
            let known = ["- role: endpoints", "- role: node", "- role: pod", "namespaces:"].contains(&t)
                || t.starts_with("names: [");
            assert!(known, "kubernetes_sd_configs field upstream does not read: {t}");
        }
        out.push(format!("{}static_configs:", " ".repeat(indent)));
        out.push(format!("{}  - targets: [\"kubernetes-sd.invalid:1\"]", " ".repeat(indent)));
        blocks += 1;
    }
    assert_eq!(blocks, 4, "{config}");
    out.join("\n") + "\n"
}

#[test]
fn alertmanager_config_passes_amtool() {
    let Some(amtool) = program("TAGSTACK_TEST_AMTOOL", "amtool") else { return };
    let dir = tempfile::tempdir().unwrap();
    let hooks =
        ["https://hooks.example.com/services/T0/B0?token=\"x\"".to_string(), "http://10.0.0.7:8080/alerts".into()];
    for (webhooks, receivers) in [(&hooks[..0], "1 receivers"), (&hooks[..], "2 receivers")] {
        let path = dir.path().join("alertmanager.yml");
        std::fs::write(&path, content::alertmanager_config(webhooks).unwrap()).unwrap();
        let out = run(Command::new(&amtool).arg("check-config").arg(&path));
        assert!(out.contains("SUCCESS") && out.contains(receivers), "{out}");
    }
}

// ---- the JMX exporter's matching (jmx_exporter 1.6.0, collector/src/main/java/io/prometheus/
// jmx/JmxCollector.java `Receiver.recordBean`, `toSafeName`; website/versioned_docs/version-1.6.0/
// configuration/rules.md) ----

/// One attribute of an MBean as the fixtures list it (`<ObjectName> <attribute> <value>`).
struct Attribute {
    domain: String,
    properties: Vec<(String, String)>,
    name: String,
    value: String,
}

fn mbeans(file: &str) -> Vec<Attribute> {
    let text = std::fs::read_to_string(root().join("tests/fixtures/monitoring").join(file)).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.split(' ');
            let (object, name, value) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
            let (domain, props) = object.split_once(':').unwrap();
            let properties = props
                .split(',')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect();
            Attribute { domain: domain.into(), properties, name: name.into(), value: value.into() }
        })
        .collect()
}

/// `includeObjectNames` entries are javax.management.ObjectName patterns: the domain, each
/// listed key with its value (`*` matches any value), and `,*` allowing more keys.
fn object_name_matches(pattern: &str, a: &Attribute) -> bool {
    let (domain, props) = pattern.split_once(':').unwrap();
    if domain != a.domain {
        return false;
    }
    let mut open = false;
    let mut wanted = Vec::new();
    for kv in props.split(',') {
        if kv == "*" {
            open = true;
        } else {
            wanted.push(kv.split_once('=').unwrap());
        }
    }
    let all_there = wanted.iter().all(|(k, v)| a.properties.iter().any(|(pk, pv)| pk == k && (*v == "*" || pv == v)));
    all_there && (open || wanted.len() == a.properties.len())
}

/// java.util.regex.Matcher's replacement syntax: `$n` takes as many digits as still name a
/// group (so `$1_total` is group 1 then `_total`), `\x` is a literal x.
fn java_replace(caps: &regex_lite::Captures, replacement: &str) -> String {
    let chars: Vec<char> = replacement.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                out.extend(chars.get(i + 1));
                i += 2;
            }
            '$' => {
                let mut group = chars[i + 1].to_digit(10).expect("Java: illegal group reference") as usize;
                i += 2;
                while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                    let next = group * 10 + d as usize;
                    if next >= caps.len() {
                        break;
                    }
                    group = next;
                    i += 1;
                }
                assert!(group < caps.len(), "Java: no group {group} in {replacement}");
                out.push_str(caps.get(group).map_or("", |m| m.as_str()));
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn to_safe_name(name: &str) -> String {
    let mut out = String::new();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    let mut prev_underscore = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == ':' {
            out.push(c);
            prev_underscore = false;
        } else if !prev_underscore {
            out.push('_');
            prev_underscore = true;
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// What the agent exports for `attributes` under the rule file `config` (parsed YAML).
fn jmx_export(config: &Value, attributes: &[Attribute]) -> Vec<Sample> {
    let lower_names = config["lowercaseOutputName"].as_bool().unwrap_or(false);
    let lower_labels = config["lowercaseOutputLabelNames"].as_bool().unwrap_or(false);
    let includes: Vec<&str> = config["includeObjectNames"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap()).collect())
        .unwrap_or_default();
    let rules: Vec<(regex_lite::Regex, &Value)> = config["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let pattern = r["pattern"].as_str().expect("every rule of ours has a pattern");
            // JmxCollector compiles "^.*(?:" + pattern + ").*$".
            (regex_lite::Regex::new(&format!("^.*(?:{pattern}).*$")).unwrap(), r)
        })
        .collect();
    let mut out = Vec::new();
    for a in attributes {
        if !includes.is_empty() && !includes.iter().any(|p| object_name_matches(p, a)) {
            continue;
        }
        // LinkedHashMap.toString() in <> and the empty attribute-key list, then "attr: value".
        let props: Vec<String> = a.properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let input = format!("{}<{}><>{}: {}", a.domain, props.join(", "), a.name, a.value);
        let Some((caps, rule)) = rules.iter().find_map(|(re, r)| re.captures(&input).map(|c| (c, *r))) else {
            continue;
        };
        let mut name = to_safe_name(&java_replace(&caps, rule["name"].as_str().unwrap()));
        // JmxCollector.recordBean: a rule whose name comes out empty drops the attribute.
        if name.is_empty() {
            continue;
        }
        if lower_names {
            name = name.to_lowercase();
        }
        let mut labels = BTreeMap::new();
        if let Some(map) = rule["labels"].as_object() {
            for (k, v) in map {
                let mut key = to_safe_name(&java_replace(&caps, k));
                if lower_labels {
                    key = key.to_lowercase();
                }
                let value = java_replace(&caps, v.as_str().unwrap());
                if !key.is_empty() && !value.is_empty() {
                    labels.insert(key, value);
                }
            }
        }
        let raw = match rule["value"].as_str() {
            Some(v) => java_replace(&caps, v),
            None => a.value.clone(),
        };
        let factor = rule["valueFactor"].as_f64().unwrap_or(1.0);
        let value = raw.parse::<f64>().unwrap() * factor;
        // client_java 1.7.0's text format writes a counter under `<name>_total`.
        if rule["type"].as_str() == Some("COUNTER") && !name.ends_with("_total") {
            name.push_str("_total");
        }
        out.push(Sample { name, labels, value });
    }
    out
}

fn sample(out: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    out.iter().find(|s| s.name == name && s.labels == labels).map(|s| s.value)
}

/// Every `kafka_`/`cassandra_` metric name the dashboards and alerts query (kafka_exporter's
/// `kafka_consumergroup_*` come from the lag exporter, not the agent).
fn queried_names(python: &Path) -> BTreeSet<String> {
    let word = regex_lite::Regex::new(r"\b(kafka|cassandra)_[a-z0-9_]+").unwrap();
    let mut exprs: Vec<String> = dashboard_queries().into_iter().map(|(_, e)| e).collect();
    let alerts = yaml(python, &monitoring_dir().join("alerts.yml"));
    for g in alerts["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            exprs.push(r["expr"].as_str().unwrap().to_string());
        }
    }
    exprs
        .iter()
        .flat_map(|e| word.find_iter(e).map(|m| m.as_str().to_string()).collect::<Vec<_>>())
        .filter(|n| !n.starts_with("kafka_consumergroup_"))
        .collect()
}

fn jmx_samples(python: &Path) -> (Vec<Sample>, Vec<Sample>) {
    let kafka = yaml(python, &monitoring_dir().join("jmx/kafka.yml"));
    let cassandra = yaml(python, &monitoring_dir().join("jmx/cassandra.yml"));
    assert_eq!(kafka, yaml_str(python, content::jmx_rules(content::Jvm::Kafka)));
    assert_eq!(cassandra, yaml_str(python, content::jmx_rules(content::Jvm::Cassandra)));
    (jmx_export(&kafka, &mbeans("mbeans-kafka.txt")), jmx_export(&cassandra, &mbeans("mbeans-cassandra.txt")))
}

fn yaml_str(python: &Path, text: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.yml");
    std::fs::write(&p, text).unwrap();
    yaml(python, &p)
}

#[test]
fn jmx_rules_turn_documented_mbeans_into_the_names_dashboards_and_alerts_use() {
    let Some(python) = python() else { return };
    let (kafka, cassandra) = jmx_samples(&python);
    assert_eq!(sample(&kafka, "kafka_topic_messages_in_total", &[("topic", "orders")]), Some(1200.0));
    assert_eq!(sample(&kafka, "kafka_server_bytes_in_total", &[]), Some(600000.0));
    assert_eq!(sample(&kafka, "kafka_server_replicamanager_underreplicatedpartitions", &[]), Some(0.0));
    assert_eq!(sample(&kafka, "kafka_controller_kafkacontroller_activecontrollercount", &[]), Some(1.0));
    assert_eq!(sample(&kafka, "kafka_controller_kafkacontroller_offlinepartitionscount", &[]), Some(0.0));
    assert_eq!(sample(&kafka, "kafka_server_failedproducerequests_total", &[]), Some(0.0));
    let p99 = [("request", "Produce"), ("quantile", "0.99")];
    assert_eq!(sample(&kafka, "kafka_network_request_total_time_ms", &p99), Some(12.0));
    assert_eq!(
        sample(&kafka, "kafka_network_requests_total", &[("request", "Produce"), ("version", "11")]),
        Some(900.0)
    );
    // Not every attribute is exported: 999thPercentile and the OneMinuteRate of a throughput meter.
    assert!(!kafka.iter().any(|s| s.labels.get("quantile").is_some_and(|q| q == "0.999")), "{kafka:#?}");
    assert_eq!(kafka.len(), mbeans("mbeans-kafka.txt").len() - 2, "{kafka:#?}");

    let read_p99 = [("operation", "Read"), ("quantile", "0.99")];
    assert_eq!(sample(&cassandra, "cassandra_clientrequest_latency_seconds", &read_p99), Some(0.0025));
    assert_eq!(
        sample(&cassandra, "cassandra_clientrequest_latency_seconds_count", &[("operation", "Write")]),
        Some(20000.0)
    );
    assert_eq!(sample(&cassandra, "cassandra_clientrequest_timeouts_total", &[("operation", "Read")]), Some(0.0));
    assert_eq!(sample(&cassandra, "cassandra_compaction_pendingtasks", &[]), Some(3.0));
    assert_eq!(sample(&cassandra, "cassandra_storage_load_bytes", &[]), Some(73400320.0));
    assert_eq!(sample(&cassandra, "cassandra_failuredetector_downendpointcount", &[]), Some(0.0));
    assert_eq!(sample(&cassandra, "cassandra_threadpool_pending_tasks", &[("pool", "ReadStage")]), Some(1.0));
    // Each dropped message once: under the verb's 4.0+ name, not again under its pre-4.0 alias.
    let dropped = |t: &str| sample(&cassandra, "cassandra_dropped_messages_total", &[("message_type", t)]);
    assert_eq!(
        (dropped("MUTATION_REQ"), dropped("MUTATION"), dropped("GOSSIP_DIGEST_SYN")),
        (Some(4.0), None, Some(0.0))
    );
    assert_eq!(
        cassandra.len(),
        mbeans("mbeans-cassandra.txt").len() - 2,
        "the Latency Mean and the MUTATION alias are not exported"
    );

    // Everything the dashboards and alerts ask of the agents, the rules produce.
    let produced: BTreeSet<String> = kafka.iter().chain(&cassandra).map(|s| s.name.clone()).collect();
    let missing: Vec<String> = queried_names(&python).into_iter().filter(|n| !produced.contains(n)).collect();
    assert!(missing.is_empty(), "queried but no JMX rule produces them: {missing:?}");
}

#[test]
fn java_replacement_takes_the_longest_existing_group_number() {
    let re = regex_lite::Regex::new("^(a)(b)$").unwrap();
    let caps = re.captures("ab").unwrap();
    assert_eq!(java_replace(&caps, "x_$1_total"), "x_a_total");
    assert_eq!(java_replace(&caps, "$21"), "b1", "no group 21: group 2, then a literal 1");
    assert_eq!(java_replace(&caps, r"0.\$$2"), "0.$b");
    assert_eq!(to_safe_name("0.99 ms--x"), "_0_99_ms_x");
}

// ---- dashboards against a real Prometheus ----

/// Every query of every dashboard as (where, PromQL), template variables replaced by what
/// "All" selects; variable queries `label_values(m, l)` become `count by (l) (m)`.
fn dashboard_queries() -> Vec<(String, String)> {
    dashboard_queries_selecting(&[])
}

/// The same, with some variables set to one value (`("$app", "spark")`) instead of "All".
fn dashboard_queries_selecting(selected: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let label_values = regex_lite::Regex::new(r"^label_values\((.+), *(\w+)\)$").unwrap();
    for (file, json) in content::dashboards() {
        let d: Value = serde_json::from_str(json).unwrap();
        for v in d["templating"]["list"].as_array().unwrap() {
            let q = v["query"]["query"].as_str().unwrap();
            let caps = label_values.captures(q).unwrap_or_else(|| panic!("{file}: variable query {q}"));
            out.push((format!("{file} variable {}", v["name"]), format!("count by ({}) ({})", &caps[2], &caps[1])));
        }
        for p in d["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().unwrap() {
                out.push((format!("{file} panel {}", p["title"]), t["expr"].as_str().unwrap().to_string()));
            }
        }
    }
    for (_, e) in &mut out {
        *e = e.replace("$__rate_interval", "1m");
        for var in ["$namespace", "$topic", "$app", "$pod"] {
            let value = selected.iter().find(|(v, _)| *v == var).map_or(".*", |(_, value)| *value);
            *e = e.replace(var, value);
        }
        assert!(!e.contains('$'), "unknown template variable in {e}");
    }
    out
}

#[test]
fn dashboards_are_grafana_dashboards_on_the_provisioned_datasource() {
    let mut uids = BTreeSet::new();
    for (file, json) in content::dashboards() {
        let d: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{file}: {e}"));
        // What Grafana's dashboard model needs to load a provisioned file.
        assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty() && u.len() <= 40), "{file}: uid");
        assert!(uids.insert(d["uid"].as_str().unwrap().to_string()), "{file}: duplicate uid");
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "{file}: title");
        assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "{file}: schemaVersion");
        let mut ids = BTreeSet::new();
        for p in d["panels"].as_array().unwrap() {
            let title = &p["title"];
            assert!(ids.insert(p["id"].as_u64().unwrap()), "{file}: duplicate panel id");
            assert!(["timeseries", "stat"].contains(&p["type"].as_str().unwrap()), "{file} {title}: type");
            for k in ["h", "w", "x", "y"] {
                assert!(p["gridPos"][k].is_u64(), "{file} {title}: gridPos.{k}");
            }
            let ds = json!({"type": "prometheus", "uid": content::DATASOURCE_UID});
            assert_eq!(p["datasource"], ds, "{file} {title}");
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{file} {title}: no query");
            for t in targets {
                assert_eq!(t["datasource"], ds, "{file} {title}");
                assert!(t["refId"].is_string() && t["expr"].is_string(), "{file} {title}");
            }
        }
        for v in d["templating"]["list"].as_array().unwrap() {
            assert_eq!(v["datasource"]["uid"], content::DATASOURCE_UID, "{file}: variable {}", v["name"]);
        }
    }
    assert_eq!(uids.len(), 5);
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GET over HTTP/1.0 (the server closes; no chunking): the body, or None if not reachable.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

fn query(port: u16, expr: &str) -> Value {
    let (status, body) = get(port, &format!("/api/v1/query?query={}", percent_encode(expr))).unwrap();
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{status} {body}"));
    assert_eq!(v["status"], "success", "{expr}: {body}");
    v
}

/// Labels each fixture target gets, as the pod job's relabelling would give them.
fn target_labels(name: &str) -> (&'static str, Value) {
    let pod = |ns: &str, pod: &str, app: &str, component: Option<&str>| {
        let mut l = json!({"namespace": ns, "pod": pod, "node": "worker-1", "app": app});
        if let Some(c) = component {
            l["component"] = json!(c);
        }
        ("kubernetes-pods", l)
    };
    match name {
        "node-exporter" => pod("monitoring", "node-exporter-x1", "node-exporter", None),
        "kube-state-metrics" => pod("monitoring", "kube-state-metrics-0", "kube-state-metrics", None),
        "kafka-exporter" => pod("monitoring", "kafka-exporter-0", "kafka-exporter", None),
        "kafka-0" => pod("kafka", "kafka-0", "kafka", Some("broker")),
        "cassandra-0" => pod("cassandra", "cassandra-0", "cassandra", None),
        "spark-master" => pod("spark", "spark-master-0", "spark", Some("master")),
        "spark-worker" => pod("spark", "spark-worker-0", "spark", Some("worker")),
        "spark-driver" => pod("spark", "spark-pi-driver", "spark-pi", None),
        "kubelet" => ("kubernetes-nodes", json!({"node": "worker-1"})),
        "cadvisor" => ("kubernetes-cadvisor", json!({"node": "worker-1"})),
        "apiserver" => ("kubernetes-apiservers", json!({})),
        other => panic!("no labels for {other}"),
    }
}

fn jvm_samples() -> Vec<Value> {
    // client_java 1.7.0 JvmMemoryMetrics / JvmGarbageCollectorMetrics / JvmThreadsMetrics.
    let gc = "G1 Young Generation";
    vec![
        json!({"name": "jvm_memory_used_bytes", "labels": {"area": "heap"}, "value": 5e8}),
        json!({"name": "jvm_memory_used_bytes", "labels": {"area": "nonheap"}, "value": 1e8}),
        json!({"name": "jvm_memory_max_bytes", "labels": {"area": "heap"}, "value": 1e9}),
        json!({"name": "jvm_memory_max_bytes", "labels": {"area": "nonheap"}, "value": -1}),
        json!({"name": "jvm_gc_collection_seconds_count", "labels": {"gc": gc}, "value": 10}),
        json!({"name": "jvm_gc_collection_seconds_sum", "labels": {"gc": gc}, "value": 0.3}),
        json!({"name": "jvm_threads_current", "labels": {}, "value": 42}),
    ]
}

#[test]
fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let (Some(prometheus), Some(python)) = (program("TAGSTACK_TEST_PROMETHEUS", "prometheus"), python()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();

    // Fixture targets: the static ones, plus Kafka and Cassandra with what their JMX rules
    // make of the documented MBeans, and the agent's JVM metrics.
    let fixtures = root().join("tests/fixtures/monitoring");
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("exporters.json")).unwrap()).unwrap();
    let (kafka, cassandra) = jmx_samples(&python);
    let as_json = |samples: Vec<Sample>| -> Vec<Value> {
        let mut v: Vec<Value> =
            samples.into_iter().map(|s| json!({"name": s.name, "labels": s.labels, "value": s.value})).collect();
        v.extend(jvm_samples());
        v
    };
    // The Spark daemons run no agent: their JVM metrics are their JvmSource's, in exporters.json.
    let targets = spec["targets"].as_array_mut().unwrap();
    targets.push(json!({"name": "kafka-0", "samples": as_json(kafka)}));
    targets.push(json!({"name": "cassandra-0", "samples": as_json(cassandra)}));
    let spec_path = dir.path().join("exporters.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let mut exporters = Killed(
        Command::new(&python)
            .arg(fixtures.join("exporters.py"))
            .arg(&spec_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(exporters.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let ports: BTreeMap<String, u16> = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));

    // Prometheus scraping them every second, jobs and labels as the real configuration's
    // relabelling yields them, with the real alerting rules loaded.
    let mut jobs: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (name, port) in &ports {
        let (job, labels) = target_labels(name);
        jobs.entry(job).or_default().push(json!({"targets": [format!("127.0.0.1:{port}")], "labels": labels}));
    }
    let scrape_configs: Vec<Value> = jobs
        .into_iter()
        .map(|(job, static_configs)| {
            json!({"job_name": job, "honor_labels": job == "kubernetes-pods", "static_configs": static_configs})
        })
        .collect();
    let config = json!({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [content::RULES_FILE],
        "scrape_configs": scrape_configs,
    });
    // JSON is YAML.
    std::fs::write(dir.path().join("prometheus.yml"), config.to_string()).unwrap();
    std::fs::write(dir.path().join(content::RULES_FILE), content::alert_rules()).unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = Killed(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    // Wait (bounded) until every query has data: rate() needs two scrapes.
    // The JVM dashboard must also answer for the Spark daemons alone (their JvmSource names, not
    // the agent's), every panel but Threads, which JvmSource does not report.
    let mut queries = dashboard_queries();
    queries.extend(
        dashboard_queries_selecting(&[("$app", "spark")])
            .into_iter()
            .filter(|(w, _)| w.starts_with("jvm.json") && !w.ends_with("\"Threads\""))
            .map(|(w, e)| (format!("{w} (Spark only)"), e)),
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let empty = loop {
        let ready = get(port, "/-/ready").is_some_and(|(s, _)| s == 200);
        let empty: Vec<&(String, String)> = if ready {
            queries.iter().filter(|(_, e)| query(port, e)["data"]["result"].as_array().unwrap().is_empty()).collect()
        } else {
            queries.iter().collect()
        };
        if empty.is_empty() || Instant::now() > deadline {
            break empty;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap();
    assert!(empty.is_empty(), "dashboard queries without data (nobody exports what they ask for):\n{empty:#?}\n{log}");

    // Every target was scraped and every alerting rule evaluates without error.
    let up = query(port, "up == 0");
    assert!(up["data"]["result"].as_array().unwrap().is_empty(), "targets down: {up}");
    let (_, rules) = get(port, "/api/v1/rules").unwrap();
    let rules: Value = serde_json::from_str(&rules).unwrap();
    let mut evaluated = 0;
    for g in rules["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            assert_eq!(r["health"], "ok", "{r}");
            evaluated += 1;
        }
    }
    assert_eq!(evaluated, 10);
    drop(exporters.0.stdin.take());
}
