//! The monitoring content: Prometheus's configuration and alerting rules, Alertmanager's
//! configuration, Grafana's provisioning and dashboards, and the JMX exporter rules of the
//! stack's JVMs, from `templates/monitoring/` (embedded in the binary). Pure: plain arguments
//! in, text out; it does not know the Spec, write manifests or decide what is deployed.
//!
//! # Scrape contract (what the deployment must provide; docs/monitoring.md)
//!
//! - Prometheus runs in namespace [`NAMESPACE`] with a ServiceAccount token (RBAC: get/list/
//!   watch nodes, pods, endpoints; get nodes/metrics), its configuration file
//!   [`PROMETHEUS_CONFIG_FILE`] and [`RULES_FILE`] in the same directory (one ConfigMap), and
//!   Alertmanager reachable at [`ALERTMANAGER_ADDRESS`]; Grafana reaches it at [`PROMETHEUS_URL`].
//! - Everything but the API server and the kubelets is scraped through pod annotations
//!   ([`ANNOTATION_SCRAPE`] `"true"`, [`ANNOTATION_PORT`], optional [`ANNOTATION_PATH`]):
//!   the pods and ports of [`SCRAPE_TARGETS`]. Each gets the labels `namespace`, `pod`, `node`,
//!   `app` (pod label `app.kubernetes.io/name`) and `component` (`app.kubernetes.io/component`).
//! - Pinned upstream versions this content is checked against: [`VERSIONS`].

use anyhow::{Context, Result, bail};
use minijinja::context;

/// The namespace the monitoring components run in.
pub const NAMESPACE: &str = "monitoring";
/// Where Prometheus sends alerts (Service `alertmanager` in [`NAMESPACE`]).
pub const ALERTMANAGER_ADDRESS: &str = "alertmanager.monitoring.svc:9093";
/// Where Grafana's provisioned datasource reads from (Service `prometheus` in [`NAMESPACE`]).
pub const PROMETHEUS_URL: &str = "http://prometheus.monitoring.svc:9090";
/// The uid of Grafana's provisioned Prometheus datasource; every dashboard panel names it.
pub const DATASOURCE_UID: &str = "prometheus";
/// Prometheus's configuration file name; [`RULES_FILE`] sits beside it (relative path).
pub const PROMETHEUS_CONFIG_FILE: &str = "prometheus.yml";
/// The alerting rules' file name, next to [`PROMETHEUS_CONFIG_FILE`].
pub const RULES_FILE: &str = "alerts.yml";
/// Where Grafana's dashboard provider ([`grafana_provisioning`]) reads the dashboards from.
pub const GRAFANA_DASHBOARDS_DIR: &str = "/var/lib/grafana/dashboards";
/// The JMX exporter java agent's HTTP port on Kafka, Cassandra and Spark daemon pods
/// (`-javaagent:<jar>=9404:<rules file>`).
pub const JMX_EXPORTER_PORT: u16 = 9404;

/// Annotation that opts a pod into scraping (value `"true"`).
pub const ANNOTATION_SCRAPE: &str = "prometheus.io/scrape";
/// Annotation naming the port to scrape.
pub const ANNOTATION_PORT: &str = "prometheus.io/port";
/// Annotation naming the path to scrape (default `/metrics`).
pub const ANNOTATION_PATH: &str = "prometheus.io/path";

/// Upstream versions the content is written and checked against (metric names, rule syntax,
/// configuration fields); the deployment pins these images.
pub const VERSIONS: &[(&str, &str)] = &[
    ("prometheus (image; the tests use Debian's 2.42.0)", PROMETHEUS_IMAGE),
    ("node-exporter", NODE_EXPORTER_IMAGE),
    ("kube-state-metrics", KUBE_STATE_METRICS_IMAGE),
    ("alertmanager (the tests use Debian's amtool 0.25)", ALERTMANAGER_IMAGE),
    // Run with --kafka.version=4.0.0: its sarama 1.45.0 knows Kafka up to 4.0 (utils.go
    // MaxVersion) and defaults to 2.1.0, and Kafka 4 removed the oldest request versions (KIP-896).
    ("kafka_exporter (consumer lag)", KAFKA_EXPORTER_IMAGE),
    ("JMX exporter java agent (Maven Central)", "io.prometheus.jmx:jmx_prometheus_javaagent:1.6.0"),
];

/// The images [`VERSIONS`] names, one constant each so the deployment runs exactly these.
pub const PROMETHEUS_IMAGE: &str = "quay.io/prometheus/prometheus:v3.14.0";
pub const NODE_EXPORTER_IMAGE: &str = "quay.io/prometheus/node-exporter:v1.12.1";
pub const KUBE_STATE_METRICS_IMAGE: &str = "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0";
pub const ALERTMANAGER_IMAGE: &str = "quay.io/prometheus/alertmanager:v0.34.0";
pub const KAFKA_EXPORTER_IMAGE: &str = "docker.io/danielqsj/kafka-exporter:v1.9.0";

/// One kind of pod the annotation-driven job scrapes: what it is, the port and path its
/// annotations must name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeTarget {
    pub what: &'static str,
    pub port: u16,
    pub path: &'static str,
}

/// Every pod kind the dashboards and alerts expect, with its annotations. Spark's paths are
/// its PrometheusServlet sinks (Spark 4.x docs/monitoring.md; the master and worker need the
/// `prometheusServlet` sink configured, the driver's executor endpoint is on by default since
/// Spark 4.0, SPARK-46886).
pub const SCRAPE_TARGETS: &[ScrapeTarget] = &[
    ScrapeTarget {
        what: "node-exporter DaemonSet (hostNetwork, namespace monitoring-node)",
        port: 9100,
        path: "/metrics",
    },
    ScrapeTarget { what: "kube-state-metrics", port: 8080, path: "/metrics" },
    ScrapeTarget { what: "kafka_exporter (consumer lag)", port: 9308, path: "/metrics" },
    ScrapeTarget {
        what: "Kafka brokers and controllers (JMX agent, jmx/kafka.yml)",
        port: JMX_EXPORTER_PORT,
        path: "/metrics",
    },
    ScrapeTarget { what: "Cassandra nodes (JMX agent, jmx/cassandra.yml)", port: JMX_EXPORTER_PORT, path: "/metrics" },
    ScrapeTarget { what: "Spark standalone master (web UI)", port: 8080, path: "/metrics/master/prometheus/" },
    ScrapeTarget { what: "Spark standalone worker (web UI)", port: 8081, path: "/metrics/prometheus/" },
    ScrapeTarget {
        what: "Spark driver (application UI): its executors",
        port: 4040,
        path: "/metrics/executors/prometheus/",
    },
];

/// The JVMs the JMX exporter agent runs in, each with its rule file. The Spark daemons run
/// none: their JVM metrics come from Spark's own JvmSource on the servlet they are scraped on
/// (one annotated port per pod), `metrics_jvm_*_Value` (docs/monitoring.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jvm {
    Kafka,
    Cassandra,
}

/// The JMX exporter rule file (YAML) for `jvm`.
pub fn jmx_rules(jvm: Jvm) -> &'static str {
    match jvm {
        Jvm::Kafka => include_str!("../../templates/monitoring/jmx/kafka.yml"),
        Jvm::Cassandra => include_str!("../../templates/monitoring/jmx/cassandra.yml"),
    }
}

const PROMETHEUS: (&str, &str) = ("prometheus.yml.j2", include_str!("../../templates/monitoring/prometheus.yml.j2"));
const ALERTMANAGER: (&str, &str) =
    ("alertmanager.yml.j2", include_str!("../../templates/monitoring/alertmanager.yml.j2"));

/// Where a pod's ServiceAccount token and CA are mounted (Kubernetes' default).
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Prometheus's configuration for the cluster named `cluster` (the `cluster` external label
/// on every alert). `pod_namespaces` limits the annotation-driven pod job to those namespaces
/// (empty: all; the ServiceAccount then needs a ClusterRole).
pub fn prometheus_config(cluster: &str, pod_namespaces: &[String]) -> Result<String> {
    if cluster.is_empty() {
        bail!("the Prometheus configuration needs a cluster name");
    }
    let kubelet_jobs = [
        context! { name => "kubernetes-nodes", path => "/metrics", what => "The kubelet's own metrics (volume stats)" },
        context! { name => "kubernetes-cadvisor", path => "/metrics/cadvisor", what => "cAdvisor's container metrics" },
    ];
    let env = crate::templates::environment(&[PROMETHEUS])?;
    env.get_template(PROMETHEUS.0)?
        .render(context! {
            cluster,
            cluster_quoted => yaml_quoted(cluster)?,
            namespaces => pod_namespaces,
            namespaces_quoted => serde_json::to_string(pod_namespaces)?,
            alertmanager_quoted => yaml_quoted(ALERTMANAGER_ADDRESS)?,
            rules_file => RULES_FILE,
            sa_dir => SERVICE_ACCOUNT_DIR,
            kubelet_jobs,
        })
        .with_context(|| format!("rendering {}", PROMETHEUS.0))
}

/// Alertmanager's configuration: every alert to each webhook in `webhooks` (http or https
/// URLs), or to no receiver when there is none (alerts stay visible in Prometheus/Alertmanager).
pub fn alertmanager_config(webhooks: &[String]) -> Result<String> {
    for url in webhooks {
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        if rest.is_none_or(|r| r.is_empty() || r.contains(char::is_whitespace)) {
            bail!("alert webhook {url:?} is not an http(s) URL");
        }
    }
    let receiver = if webhooks.is_empty() { "\"null\"" } else { "webhook" };
    let quoted = webhooks.iter().map(|u| yaml_quoted(u)).collect::<Result<Vec<_>>>()?;
    let env = crate::templates::environment(&[ALERTMANAGER])?;
    env.get_template(ALERTMANAGER.0)?
        .render(context! { webhooks => quoted, receiver })
        .with_context(|| format!("rendering {}", ALERTMANAGER.0))
}

/// A YAML double-quoted scalar of `s`: a JSON string is one (YAML 1.2 is a JSON superset,
/// and the escapes JSON produces are YAML 1.1's too), whatever `s` holds.
fn yaml_quoted(s: &str) -> Result<String> {
    serde_json::to_string(s).context("quoting a YAML string")
}

/// The alerting rules ([`RULES_FILE`]), each alert with `summary` and `runbook` annotations.
pub fn alert_rules() -> &'static str {
    include_str!("../../templates/monitoring/alerts.yml")
}

/// The dashboards as (file name, Grafana dashboard JSON), for [`GRAFANA_DASHBOARDS_DIR`].
pub fn dashboards() -> Vec<(&'static str, &'static str)> {
    vec![
        ("cluster.json", include_str!("../../templates/monitoring/grafana/dashboards/cluster.json")),
        ("kafka.json", include_str!("../../templates/monitoring/grafana/dashboards/kafka.json")),
        ("cassandra.json", include_str!("../../templates/monitoring/grafana/dashboards/cassandra.json")),
        ("spark.json", include_str!("../../templates/monitoring/grafana/dashboards/spark.json")),
        ("jvm.json", include_str!("../../templates/monitoring/grafana/dashboards/jvm.json")),
    ]
}

/// Grafana's provisioning files as (directory under /etc/grafana/provisioning, file name,
/// content): the Prometheus datasource and the dashboard provider.
pub fn grafana_provisioning() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("datasources", "datasource.yml", include_str!("../../templates/monitoring/grafana/datasource.yml")),
        ("dashboards", "dashboards.yml", include_str!("../../templates/monitoring/grafana/dashboards.yml")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_config_names_the_cluster_and_the_namespaces() {
        let all = prometheus_config("demo-dev", &[]).unwrap();
        assert!(all.contains("cluster: \"demo-dev\""), "{all}");
        assert!(!all.contains("names: [\"kafka\""), "{all}");
        let some = prometheus_config("demo-dev", &["kafka".into(), "monitoring".into()]).unwrap();
        assert!(some.contains("names: [\"kafka\",\"monitoring\"]"), "{some}");
        assert!(some.contains(ALERTMANAGER_ADDRESS) && some.contains("- alerts.yml"), "{some}");
        assert!(prometheus_config("", &[]).is_err());
    }

    #[test]
    fn alertmanager_routes_to_the_webhooks_or_nowhere() {
        let none = alertmanager_config(&[]).unwrap();
        assert!(none.contains("receiver: \"null\"") && !none.contains("webhook_configs"), "{none}");
        let hooks = ["https://hooks.example.com/a b".to_string()];
        assert!(alertmanager_config(&hooks).is_err());
        let hooks = ["https://hooks.example.com/x?y=\"z\"".to_string(), "http://10.0.0.1:8080/".to_string()];
        let two = alertmanager_config(&hooks).unwrap();
        assert!(two.contains("receiver: webhook"), "{two}");
        assert!(two.contains(r#"url: "https://hooks.example.com/x?y=\"z\"""#), "{two}");
        assert!(alertmanager_config(&["ftp://x".into()]).is_err());
    }

    #[test]
    fn every_dashboard_uses_the_provisioned_datasource() {
        let provisioning = grafana_provisioning();
        assert!(provisioning[0].2.contains(&format!("uid: {DATASOURCE_UID}")));
        assert!(provisioning[0].2.contains(&format!("url: {PROMETHEUS_URL}")));
        assert!(provisioning[1].2.contains(&format!("path: {GRAFANA_DASHBOARDS_DIR}")));
        for (name, json) in dashboards() {
            let d: serde_json::Value = serde_json::from_str(json).unwrap();
            assert!(d["uid"].is_string() && d["title"].is_string(), "{name}");
            for p in d["panels"].as_array().unwrap() {
                assert_eq!(p["datasource"]["uid"], DATASOURCE_UID, "{name}: {}", p["title"]);
                for t in p["targets"].as_array().unwrap() {
                    assert_eq!(t["datasource"]["uid"], DATASOURCE_UID, "{name}: {}", p["title"]);
                }
            }
        }
    }
}
