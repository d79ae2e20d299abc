//! How the monitoring add-on runs on the cluster: its one manifest
//! (`templates/monitoring/monitoring.yaml.j2`, fed with the files of `content.rs`), the pinned
//! images and their resource sizes, the workloads `up` waits for, the JMX exporter agent that
//! the Kafka and Cassandra templates add to their pods, Spark's built-in Prometheus servlet,
//! and the script that makes Grafana's admin Secret on the control plane. Pure: spec in, text
//! out. It must not decide what is scraped, alerted on or drawn (`content.rs` does).

use anyhow::Result;
use minijinja::context;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::content;
use crate::config::Spec;
use crate::stack::render::{labels, pod_selector, template};
use crate::stack::{Component, Manifest, Workload, WorkloadKind};

const TEMPLATE: (&str, &str) = ("monitoring.yaml", include_str!("../../templates/monitoring/monitoring.yaml.j2"));

/// The namespace of the add-on; labelled like the stack's, so `down` deletes it with its claim.
pub const NAMESPACE: &str = "monitoring";
/// The Secret holding Grafana's admin user and generated password (`admin-user`,
/// `admin-password`), made on the control plane by [`GRAFANA_SECRET_SCRIPT`].
pub const GRAFANA_SECRET: &str = "grafana-admin";
/// Where the alert rule files are mounted; `content::prometheus_config` loads them from here.
pub const RULES_DIR: &str = "/etc/prometheus-rules";
/// Where the dashboard files are mounted; the dashboard provider points here.
pub const DASHBOARDS_DIR: &str = "/var/lib/grafana-dashboards";

/// The images, pinned by tag; each tag checked upstream on 2026-11-30:
/// - Prometheus v3.14.0, Alertmanager v0.34.0, node_exporter v1.12.1: the tags of
///   prometheus/{prometheus,alertmanager,node_exporter}, whose `publish_release` CI job pushes
///   every `v*` tag to quay.io/prometheus (and docker.io/prom);
/// - kube-state-metrics v2.20.0: its README lists
///   `registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0`, compatible with
///   Kubernetes 1.36 (README "Compatibility matrix");
/// - Grafana 13.2.2: grafana/grafana:13.2.2 is in public use pinned by its digest
///   (`sha256:ac461fb352abc50da10a51c7d02462e9c05488f11f53f14b3ad79a8145f638a0`);
/// - curl 8.21.0 (the JMX agent's download): curl/curl-container tag 8.21.0 (alpine 3.24.1),
///   pushed to docker.io/curlimages/curl by its `build_latest_release_multi` workflow.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Images {
    pub prometheus: &'static str,
    pub alertmanager: &'static str,
    pub grafana: &'static str,
    pub node_exporter: &'static str,
    pub kube_state_metrics: &'static str,
    pub curl: &'static str,
}

pub const IMAGES: Images = Images {
    prometheus: "quay.io/prometheus/prometheus:v3.14.0",
    alertmanager: "quay.io/prometheus/alertmanager:v0.34.0",
    grafana: "docker.io/grafana/grafana:13.2.2",
    node_exporter: "quay.io/prometheus/node-exporter:v1.12.1",
    kube_state_metrics: "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0",
    curl: "docker.io/curlimages/curl:8.21.0",
};

/// A container's CPU request, memory request and memory limit.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Size {
    pub cpu: &'static str,
    pub memory: &'static str,
    pub limit: &'static str,
}

/// Sized for the default 1+3 t3.large cluster, whose workers the default stack leaves about
/// 1.1 CPU and 2 GiB each: about 0.25 CPU and 1.5 GiB requested in all (README
/// "Monitoring"). Prometheus holds ~25 000 series of a default stack in well under 1 GiB.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sizes {
    pub prometheus: Size,
    pub alertmanager: Size,
    pub grafana: Size,
    pub kube_state_metrics: Size,
    /// Per node.
    pub node_exporter: Size,
    /// The JMX agent's download, per Kafka and Cassandra pod, while it starts.
    pub jmx_fetch: Size,
}

pub const SIZES: Sizes = Sizes {
    prometheus: Size { cpu: "100m", memory: "1Gi", limit: "1536Mi" },
    alertmanager: Size { cpu: "10m", memory: "64Mi", limit: "128Mi" },
    grafana: Size { cpu: "50m", memory: "192Mi", limit: "384Mi" },
    kube_state_metrics: Size { cpu: "10m", memory: "64Mi", limit: "192Mi" },
    node_exporter: Size { cpu: "10m", memory: "32Mi", limit: "64Mi" },
    jmx_fetch: Size { cpu: "10m", memory: "32Mi", limit: "64Mi" },
};

/// kube-state-metrics v2.20.0's default collectors (`pkg/options/resource.go`,
/// `DefaultResources`) without `secrets`, which its ClusterRole does not grant.
const KSM_RESOURCES: &str = "certificatesigningrequests,configmaps,cronjobs,daemonsets,deployments,endpointslices,horizontalpodautoscalers,ingresses,jobs,leases,limitranges,mutatingadmissionpolicies,mutatingadmissionpolicybindings,mutatingwebhookconfigurations,namespaces,networkpolicies,nodes,persistentvolumes,persistentvolumeclaims,poddisruptionbudgets,pods,replicasets,replicationcontrollers,resourcequotas,services,statefulsets,storageclasses,validatingadmissionpolicies,validatingadmissionpolicybindings,validatingwebhookconfigurations,volumeattachments";

/// One file of a ConfigMap.
#[derive(Debug, Serialize)]
struct File {
    key: String,
    content: String,
}

#[derive(Debug, Serialize)]
struct ConfigMap {
    name: &'static str,
    files: Vec<File>,
}

fn files(list: Vec<(String, String)>) -> Vec<File> {
    list.into_iter().map(|(key, content)| File { key, content }).collect()
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The add-on's manifest, `None` when `[monitoring]` is off. The ConfigMaps carry the files of
/// `content.rs` as they are; a digest of each server's files on its pod template restarts it
/// when they change (Prometheus, Alertmanager and Grafana read them at start).
pub fn manifest(spec: &Spec) -> Result<Option<Manifest>> {
    let Some(m) = &spec.monitoring else { return Ok(None) };
    let prometheus_yml = content::prometheus_config();
    let rules = content::alert_rules();
    let alertmanager_yml = content::alertmanager_config(&m.alert_webhooks);
    let datasources = content::grafana_datasources();
    let providers = content::grafana_dashboard_providers();
    let dashboards = content::dashboards();
    let joined = |list: &[(String, String)]| list.iter().map(|(k, v)| format!("{k}\n{v}")).collect::<String>();
    let prometheus_digest = digest(&[&prometheus_yml, &joined(&rules)]);
    let grafana_digest = digest(&[&joined(&datasources), &joined(&providers), &joined(&dashboards)]);
    let alertmanager_digest = digest(&[&alertmanager_yml]);
    let configmaps = vec![
        ConfigMap { name: "prometheus-config", files: files(vec![("prometheus.yml".into(), prometheus_yml)]) },
        ConfigMap { name: "prometheus-rules", files: files(rules) },
        ConfigMap { name: "grafana-datasources", files: files(datasources) },
        ConfigMap { name: "grafana-dashboard-providers", files: files(providers) },
        ConfigMap { name: "grafana-dashboards", files: files(dashboards) },
    ];
    let content = template(
        TEMPLATE,
        context! {
            cluster_name => spec.id.cluster_name(),
            labels => labels(spec),
            namespace => NAMESPACE,
            storage_class => spec.stack.storage_class,
            m => m,
            retention => m.retention_flag(),
            retention_size => m.retention_size_flag(),
            images => IMAGES,
            sizes => SIZES,
            paths => context! { rules => RULES_DIR, dashboards => DASHBOARDS_DIR },
            configmaps => configmaps,
            alertmanager_yml => alertmanager_yml,
            grafana_secret => GRAFANA_SECRET,
            ksm_resources => KSM_RESOURCES,
            prometheus_digest => prometheus_digest,
            alertmanager_digest => alertmanager_digest,
            grafana_digest => grafana_digest,
        },
    )?;
    Ok(Some(Manifest { component: Component::Monitoring, file: "monitoring.yaml".into(), content }))
}

/// What `up` waits for, in the order it reports them. node-exporter's count is the
/// DaemonSet's own (`desiredNumberScheduled`): one per node it tolerates, which is every node.
pub fn workloads(spec: &Spec) -> Vec<Workload> {
    if spec.monitoring.is_none() {
        return Vec::new();
    }
    let w = |kind, name: &str| Workload {
        component: Component::Monitoring,
        kind,
        namespace: NAMESPACE.into(),
        name: name.into(),
        replicas: 1,
        pod_selector: pod_selector(spec, name, None),
    };
    vec![
        w(WorkloadKind::StatefulSet, "prometheus"),
        w(WorkloadKind::Deployment, "alertmanager"),
        w(WorkloadKind::Deployment, "grafana"),
        w(WorkloadKind::Deployment, "kube-state-metrics"),
        w(WorkloadKind::DaemonSet, "node-exporter"),
    ]
}

/// The JMX exporter agent release: 1.x jars are published as GitHub release assets only
/// (jmx_exporter 1.6.0 `website/.../reference/artifacts.md`; its RELEASING.md deploys only the
/// `collector` module to Maven Central), each with a `.sha256`. The digest below is the
/// release asset's, as pinned independently by several public builds (e.g. Docker `ADD
/// --checksum=sha256:a95983fd...` of the same URL).
pub const JMX_AGENT_VERSION: &str = "1.6.0";
pub const JMX_AGENT_URL: &str =
    "https://github.com/prometheus/jmx_exporter/releases/download/1.6.0/jmx_prometheus_javaagent-1.6.0.jar";
pub const JMX_AGENT_SHA256: &str = "a95983fd96e865d2bcdf911cc500e7c82808c27ab9fd226bf96732b6c3d8c46e";
/// Where the init container puts the jar (an emptyDir) and where the rule file is mounted.
pub const JMX_AGENT_JAR: &str = "/opt/jmx-exporter/jmx_prometheus_javaagent.jar";
pub const JMX_CONFIG: &str = "/etc/jmx-exporter/config.yaml";

/// What the Kafka and Cassandra templates add to their pods when monitoring is on: an init
/// container that downloads the agent and checks its SHA-256 (the official images carry no
/// exporter; a jar that does not match is never run: the init container fails, and the
/// kubelet retries it), the rule file as a ConfigMap, the scrape annotations and the
/// `-javaagent` flag.
#[derive(Debug, Clone, Serialize)]
pub struct JmxAgent {
    pub image: &'static str,
    pub port: u16,
    pub size: Size,
    /// The init container's `sh -c` script.
    pub fetch: String,
    /// The JVM flag that loads the agent.
    pub javaagent: String,
    pub jar_dir: &'static str,
    pub config_dir: &'static str,
    /// The rule file (`content::jmx_rules`).
    pub rules: String,
}

pub fn jmx_agent(spec: &Spec, jvm: content::Jmx) -> Option<JmxAgent> {
    spec.monitoring.as_ref()?;
    let port = content::JMX_EXPORTER_PORT;
    Some(JmxAgent {
        image: IMAGES.curl,
        port,
        size: SIZES.jmx_fetch,
        fetch: format!(
            "set -eu\njar={JMX_AGENT_JAR}\ncurl -fsSL --retry 5 --retry-connrefused --max-time 300 -o \"$jar.part\" {JMX_AGENT_URL}\necho \"{JMX_AGENT_SHA256}  $jar.part\" | sha256sum -c -\nmv \"$jar.part\" \"$jar\"\n"
        ),
        javaagent: format!("-javaagent:{JMX_AGENT_JAR}={port}:{JMX_CONFIG}"),
        jar_dir: "/opt/jmx-exporter",
        config_dir: "/etc/jmx-exporter",
        rules: content::jmx_rules(jvm),
    })
}

/// Spark's built-in Prometheus endpoints on the standalone master and workers (Spark
/// docs/monitoring.md, "Metrics", the PrometheusServlet sink; `spark.ui.prometheus.enabled`
/// adds `/metrics/executors/prometheus` on drivers, set explicitly since its default changed
/// between releases). The daemons read the file named by `-Dspark.metrics.conf`.
#[derive(Debug, Clone, Serialize)]
pub struct SparkMetrics {
    pub properties: String,
    pub opts: String,
    pub dir: &'static str,
}

pub fn spark_metrics(spec: &Spec) -> Option<SparkMetrics> {
    spec.monitoring.as_ref()?;
    let dir = "/etc/spark-metrics";
    Some(SparkMetrics {
        properties: [
            "*.sink.prometheusServlet.class=org.apache.spark.metrics.sink.PrometheusServlet",
            "*.sink.prometheusServlet.path=/metrics/prometheus",
            "master.sink.prometheusServlet.path=/metrics/master/prometheus",
            "applications.sink.prometheusServlet.path=/metrics/applications/prometheus",
            "",
        ]
        .join("\n"),
        opts: format!("-Dspark.metrics.conf={dir}/metrics.properties -Dspark.ui.prometheus.enabled=true"),
        dir,
    })
}

/// The scrape path of a Spark daemon's servlet: the master's own metrics, or a worker's.
pub fn spark_metrics_path(component: &str) -> &'static str {
    if component == "master" { "/metrics/master/prometheus" } else { "/metrics/prometheus" }
}

/// Makes Grafana's admin Secret on the control plane when it does not exist: the password is
/// 32 characters from /dev/urandom, written to a file only root can read, applied, and the file
/// removed; it is never on a command line, in the output or in a log. An existing Secret is
/// kept (a restarted Grafana keeps its password). Prints `created` or `kept`.
pub fn grafana_secret_script(spec: &Spec, kubectl: &str) -> String {
    let labels = labels(spec).lines().map(|l| format!("    {l}\n")).collect::<String>();
    format!(
        r#"set -euo pipefail
umask 077
if [ -n "$({kubectl} get secret -n {NAMESPACE} {GRAFANA_SECRET} --ignore-not-found -o name)" ]; then
  echo kept
  exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf -- "$dir"' EXIT
password=$(head -c 512 /dev/urandom | tr -dc 'A-Za-z0-9')
password=${{password:0:32}}
[ "${{#password}}" -eq 32 ] || {{ echo "could not generate a password" >&2; exit 1; }}
{{
  printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: {GRAFANA_SECRET}\n  namespace: {NAMESPACE}\n  labels:\n'
  printf '%s' '{labels}'
  printf 'type: Opaque\ndata:\n  admin-user: %s\n  admin-password: %s\n' "$(printf admin | base64 -w0)" "$(printf '%s' "$password" | base64 -w0)"
}} > "$dir/secret.yaml"
{kubectl} apply --server-side --field-manager=tagstack -f "$dir/secret.yaml" >/dev/null
echo created
"#
    )
}

/// The resource cost of the add-on, for `status`/docs: requests of every container (node-exporter
/// once per node), in millicores and MiB.
pub fn requested(spec: &Spec, nodes: u32) -> (u32, u32) {
    if spec.monitoring.is_none() {
        return (0, 0);
    }
    let parse_cpu = |s: &str| s.trim_end_matches('m').parse::<u32>().unwrap_or(0);
    let parse_mem = |s: &str| {
        s.strip_suffix("Gi")
            .and_then(|n| n.parse::<u32>().ok())
            .map(|g| g * 1024)
            .or_else(|| s.strip_suffix("Mi").and_then(|n| n.parse().ok()))
            .unwrap_or(0)
    };
    let each = [SIZES.prometheus, SIZES.alertmanager, SIZES.grafana, SIZES.kube_state_metrics];
    let cpu = each.iter().map(|s| parse_cpu(s.cpu)).sum::<u32>() + nodes * parse_cpu(SIZES.node_exporter.cpu);
    let mem = each.iter().map(|s| parse_mem(s.memory)).sum::<u32>() + nodes * parse_mem(SIZES.node_exporter.memory);
    (cpu, mem)
}
