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

/// The namespace of the add-on (the scrape contract's, `content`'s); labelled like the stack's,
/// so `down` deletes it with its claim. Pod Security `restricted`: every pod in it qualifies.
pub use super::content::NAMESPACE;
/// node-exporter's namespace: it needs the host's network, PID namespace and filesystems, which
/// only Pod Security `privileged` admits; alone there, it leaves `monitoring` restricted.
/// Labelled alike (`down` deletes it); scraped like the others.
pub const NODE_NAMESPACE: &str = crate::config::MONITORING_NODE_NAMESPACE;

/// Both namespaces of the add-on, in the order the manifest makes them.
pub fn namespaces() -> [&'static str; 2] {
    [NAMESPACE, NODE_NAMESPACE]
}
/// The Secret holding Grafana's admin user and generated password (`admin-user`,
/// `admin-password`), made on the control plane by [`GRAFANA_SECRET_SCRIPT`].
pub const GRAFANA_SECRET: &str = "grafana-admin";

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
///   pushed to docker.io/curlimages/curl by its `build_latest_release_multi` workflow;
/// - kafka_exporter v1.9.0 (consumer lag, `content::VERSIONS`): danielqsj/kafka_exporter tag
///   v1.9.0, whose Makefile pushes `$(DOCKER_USERNAME)/kafka-exporter:$(GIT_TAG_NAME)`; its image
///   runs as `nobody`.
///
/// The versions content checks against are `content::VERSIONS`'s images, used by name here.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Images {
    pub prometheus: &'static str,
    pub alertmanager: &'static str,
    pub grafana: &'static str,
    pub node_exporter: &'static str,
    pub kube_state_metrics: &'static str,
    pub kafka_exporter: &'static str,
    pub curl: &'static str,
}

pub const IMAGES: Images = Images {
    prometheus: content::PROMETHEUS_IMAGE,
    alertmanager: content::ALERTMANAGER_IMAGE,
    grafana: "docker.io/grafana/grafana:13.2.2",
    node_exporter: content::NODE_EXPORTER_IMAGE,
    kube_state_metrics: content::KUBE_STATE_METRICS_IMAGE,
    kafka_exporter: content::KAFKA_EXPORTER_IMAGE,
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
/// 1.1 CPU and 2 GiB each: 0.22 CPU and 1.5 GiB requested in all (README "Monitoring"). Prometheus holds ~25 000 series of a default stack in well under 1 GiB.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sizes {
    pub prometheus: Size,
    pub alertmanager: Size,
    pub grafana: Size,
    pub kube_state_metrics: Size,
    /// With Kafka only.
    pub kafka_exporter: Size,
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
    kafka_exporter: Size { cpu: "10m", memory: "32Mi", limit: "96Mi" },
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
    // The annotation-driven job looks at the stack's namespaces and this one only: pods of
    // the cluster's other users are not scraped.
    let mut scraped = spec.stack.namespaces();
    scraped.extend(namespaces().map(str::to_string));
    let prometheus_yml = content::prometheus_config(&spec.id.cluster_name(), &scraped)?;
    let rules = content::alert_rules().to_string();
    let alertmanager_yml = content::alertmanager_config(&m.alert_webhooks)?;
    let provisioning = content::grafana_provisioning();
    let in_dir = |dir: &str| -> Vec<(String, String)> {
        provisioning.iter().filter(|(d, _, _)| *d == dir).map(|(_, f, c)| (f.to_string(), c.to_string())).collect()
    };
    let (datasources, providers) = (in_dir("datasources"), in_dir("dashboards"));
    let dashboards: Vec<(String, String)> =
        content::dashboards().into_iter().map(|(f, c)| (f.to_string(), c.to_string())).collect();
    let joined = |list: &[(String, String)]| list.iter().map(|(k, v)| format!("{k}\n{v}")).collect::<String>();
    let prometheus_digest = digest(&[&prometheus_yml, &rules]);
    let grafana_digest = digest(&[&joined(&datasources), &joined(&providers), &joined(&dashboards)]);
    let alertmanager_digest = digest(&[&alertmanager_yml]);
    // The rule file sits beside the configuration, which names it relatively (the contract).
    let configmaps = vec![
        ConfigMap {
            name: "prometheus-config",
            files: files(vec![
                (content::PROMETHEUS_CONFIG_FILE.into(), prometheus_yml),
                (content::RULES_FILE.into(), rules),
            ]),
        },
        ConfigMap { name: "grafana-datasources", files: files(datasources) },
        ConfigMap { name: "grafana-dashboard-providers", files: files(providers) },
        ConfigMap { name: "grafana-dashboards", files: files(dashboards) },
    ];
    let kafka_exporter = spec.stack.kafka.as_ref().map(|k| {
        context! {
            bootstrap => format!("kafka-bootstrap.{}.svc.cluster.local:9092", k.namespace),
            // Its sarama knows Kafka up to 4.0 and defaults to 2.1.0 (content::VERSIONS).
            version => "4.0.0",
            // Its own SCRAM user (stack::kafka::User::exporter, made by `up` before it starts).
            // `--sasl.mechanism` takes "scram-sha512" (lowercased; kafka_exporter v1.9.0).
            mechanism => "scram-sha512",
            user => crate::stack::kafka::EXPORTER_USER,
            secret => crate::stack::kafka::EXPORTER_SECRET,
            ca_dir => "/etc/kafka-exporter",
            // The name Kafka's one certificate carries for every broker (stack::kafka's common
            // name, also a SAN), checked on each broker connection; never skipped.
            server_name => format!("kafka-bootstrap.{}.svc.cluster.local", k.namespace),
        }
    });
    let content = template(
        TEMPLATE,
        context! {
            cluster_name => spec.id.cluster_name(),
            labels => labels(spec),
            namespace => NAMESPACE,
            node_namespace => NODE_NAMESPACE,
            storage_class => spec.stack.storage_class,
            m => m,
            retention => m.retention_flag(),
            retention_size => m.retention_size_flag(),
            images => IMAGES,
            sizes => SIZES,
            paths => context! { config_file => content::PROMETHEUS_CONFIG_FILE, dashboards => content::GRAFANA_DASHBOARDS_DIR },
            kafka_exporter => kafka_exporter,
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
        namespace: if kind == WorkloadKind::DaemonSet { NODE_NAMESPACE } else { NAMESPACE }.into(),
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
    .into_iter()
    .chain(spec.stack.kafka.is_some().then(|| w(WorkloadKind::Deployment, "kafka-exporter")))
    .collect()
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

pub fn jmx_agent(spec: &Spec, jvm: content::Jvm) -> Option<JmxAgent> {
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
        rules: content::jmx_rules(jvm).to_string(),
    })
}

/// Spark's built-in Prometheus endpoints on the standalone master and workers (Spark
/// docs/monitoring.md, "Metrics", the PrometheusServlet sink; `spark.ui.prometheus.enabled`
/// adds `/metrics/executors/prometheus` on drivers, set explicitly since its default changed
/// between releases). The daemons read the file named by `-Dspark.metrics.conf`. Their JVM
/// metrics come from Spark's JvmSource on the same servlet, not from a JMX agent: Prometheus
/// finds one annotated port per pod, and the servlet already is it. JvmSource (sourceName
/// `jvm`, core/.../metrics/source/JvmSource.scala) registers Dropwizard's MemoryUsageGaugeSet
/// (`heap.used`, `heap.max`, `non-heap.used`, ...) and GarbageCollectorMetricSet
/// (`<collector>.count`, `<collector>.time` in ms); on a master or worker the registry name is
/// the source name (MetricsSystem.buildRegistryName), so the servlet writes
/// `metrics_jvm_heap_used_Value{type="gauges"}` (docs/monitoring.md).
#[derive(Debug, Clone, Serialize)]
pub struct SparkMetrics {
    pub properties: String,
    pub opts: String,
    pub dir: &'static str,
    /// Where a driver's executor metrics are scraped: its application UI's port and
    /// PrometheusResource's path (`content::SCRAPE_TARGETS`), as the annotations of SparkPi's
    /// driver pod name them. A pod annotation names one path: the driver's own servlet
    /// (`/metrics/prometheus/`, its `<app id>.driver.*` names) is not scraped.
    pub driver_port: u16,
    pub driver_path: &'static str,
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
            "*.source.jvm.class=org.apache.spark.metrics.source.JvmSource",
            "",
        ]
        .join("\n"),
        opts: format!("-Dspark.metrics.conf={dir}/metrics.properties -Dspark.ui.prometheus.enabled=true"),
        dir,
        driver_port: 4040,
        driver_path: "/metrics/executors/prometheus/",
    })
}

/// The scrape path of a Spark daemon's servlet: the master's own metrics, or a worker's, as the
/// scrape contract names them (`content::SCRAPE_TARGETS`, with the trailing slash).
pub fn spark_metrics_path(component: &str) -> &'static str {
    if component == "master" { "/metrics/master/prometheus/" } else { "/metrics/prometheus/" }
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

/// The resource cost of the add-on (README "Monitoring"): the requests of every container
/// (node-exporter once per `nodes`), in millicores and MiB. The JMX agent's download runs only
/// while a pod starts.
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
    let mut each = vec![SIZES.prometheus, SIZES.alertmanager, SIZES.grafana, SIZES.kube_state_metrics];
    if spec.stack.kafka.is_some() {
        each.push(SIZES.kafka_exporter);
    }
    let cpu = each.iter().map(|s| parse_cpu(s.cpu)).sum::<u32>() + nodes * parse_cpu(SIZES.node_exporter.cpu);
    let mem = each.iter().map(|s| parse_mem(s.memory)).sum::<u32>() + nodes * parse_mem(SIZES.node_exporter.memory);
    (cpu, mem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{AWS_BASE, parse};

    fn monitored(extra: &str) -> Spec {
        parse(&format!("{AWS_BASE}{extra}\n[monitoring]\nenabled = true\n"))
    }

    /// The manifest with the bodies of `content.rs`'s files (ConfigMap and Secret data, which
    /// content's own tests check) left out: what this module decides, as a reviewer reads it.
    fn skeleton(manifest: &str) -> String {
        let mut out = Vec::new();
        let mut eliding = false;
        for line in manifest.lines() {
            if eliding && (line.starts_with("    ") || line.is_empty()) {
                continue;
            }
            eliding = false;
            // The digest follows the content; what matters here is that it is there.
            match line.split_once("tagstack.io/config-sha256: ") {
                Some((indent, _)) => out.push(format!("{indent}tagstack.io/config-sha256: <digest>")),
                None => out.push(line.to_string()),
            }
            if line.starts_with("  ") && !line.starts_with("   ") && line.ends_with(": |") {
                out.push("    <from src/monitoring/content.rs>".into());
                eliding = true;
            }
        }
        out.join("\n")
    }

    #[test]
    fn off_by_default_renders_nothing_and_changes_no_stack_manifest() {
        let spec = parse(AWS_BASE);
        assert!(manifest(&spec).unwrap().is_none());
        assert!(workloads(&spec).is_empty());
        assert!(jmx_agent(&spec, content::Jvm::Kafka).is_none());
        assert!(spark_metrics(&spec).is_none());
    }

    #[test]
    fn the_add_on_manifest() {
        let spec = monitored("[stack.spark]\nworkers = 1\n");
        let m = manifest(&spec).unwrap().unwrap();
        assert_eq!((m.component, m.file.as_str()), (Component::Monitoring, "monitoring.yaml"));
        insta::assert_snapshot!("monitoring_manifest", skeleton(&m.content));
        // The content is carried as it is, with the cluster and the stack's namespaces.
        assert!(m.content.contains("cluster: \"demo-dev\""), "{}", m.content);
        assert!(
            m.content.contains("names: [\"kafka\",\"cassandra\",\"spark\",\"monitoring\",\"monitoring-node\"]"),
            "{}",
            m.content
        );
    }

    #[test]
    fn the_stack_with_the_agent_and_the_servlet() {
        let spec = monitored("[stack.spark]\nworkers = 1\n");
        let stack: Vec<String> = crate::stack::manifests(&spec).unwrap().iter().map(|m| skeleton(&m.content)).collect();
        insta::assert_snapshot!("monitored_stack", stack.join("\n---\n"));
    }

    #[test]
    fn images_are_the_ones_the_content_is_checked_against() {
        for image in [IMAGES.prometheus, IMAGES.alertmanager, IMAGES.node_exporter, IMAGES.kube_state_metrics] {
            assert!(content::VERSIONS.iter().any(|(_, v)| *v == image), "{image} is not in content::VERSIONS");
        }
        assert!(content::VERSIONS.iter().any(|(_, v)| v.ends_with("danielqsj/kafka-exporter:v1.9.0")));
        assert!(content::VERSIONS.iter().any(|(_, v)| v.ends_with(&format!(":{JMX_AGENT_VERSION}"))));
        assert!(
            JMX_AGENT_URL.contains(&format!("/{JMX_AGENT_VERSION}/jmx_prometheus_javaagent-{JMX_AGENT_VERSION}.jar"))
        );
    }

    /// Every scrape annotation the manifests set names a port and path of the contract.
    #[test]
    fn every_annotated_pod_is_a_target_of_the_scrape_contract() {
        let spec = monitored("[stack.spark]\nworkers = 1\n");
        let mut texts: Vec<String> = crate::stack::manifests(&spec).unwrap().into_iter().map(|m| m.content).collect();
        texts.push(manifest(&spec).unwrap().unwrap().content);
        let mut seen = 0;
        for text in &texts {
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            for (i, l) in lines.iter().enumerate() {
                let Some(port) = l.strip_prefix("prometheus.io/port: ") else { continue };
                let port: u16 = port.trim_matches('"').parse().unwrap();
                let path = lines.get(i + 1).and_then(|n| n.strip_prefix("prometheus.io/path: ")).unwrap_or("/metrics");
                // Alertmanager's own metrics are an extra of the deployment's.
                if port == 9093 {
                    continue;
                }
                assert!(
                    content::SCRAPE_TARGETS.iter().any(|t| t.port == port && t.path == path),
                    "{port} {path} is not in content::SCRAPE_TARGETS"
                );
                seen += 1;
            }
        }
        // kafka, cassandra, spark master and worker, kube-state-metrics, node-exporter, kafka_exporter.
        assert_eq!(seen, 7);
    }

    /// SparkPi's driver is annotated for the scrape contract's driver target, and asks for the
    /// executor endpoint explicitly; without monitoring its Job is unchanged.
    #[test]
    fn the_spark_pi_driver_is_scraped_while_it_runs() {
        let job = crate::stack::spark::pi_job(&monitored("")).unwrap().unwrap();
        let lines: Vec<&str> = job.lines().map(str::trim).collect();
        let at = |l: &str| lines.iter().position(|x| *x == l);
        let port = at("prometheus.io/port: \"4040\"").unwrap();
        assert_eq!(lines[port - 1], "prometheus.io/scrape: \"true\"", "{job}");
        let path = lines[port + 1].strip_prefix("prometheus.io/path: ").unwrap();
        assert!(content::SCRAPE_TARGETS.iter().any(|t| t.port == 4040 && t.path == path), "{path}");
        assert!(at("- spark.ui.prometheus.enabled=true").is_some(), "{job}");
        let plain = crate::stack::spark::pi_job(&parse(AWS_BASE)).unwrap().unwrap();
        assert!(!plain.contains("prometheus"), "{plain}");
    }

    #[test]
    fn workloads_follow_the_stack() {
        let names = |s: &Spec| workloads(s).into_iter().map(|w| w.name).collect::<Vec<_>>();
        let all = monitored("");
        assert_eq!(
            names(&all),
            ["prometheus", "alertmanager", "grafana", "kube-state-metrics", "node-exporter", "kafka-exporter"]
        );
        let no_kafka = monitored("[stack.kafka]\nenabled = false\n");
        assert!(!names(&no_kafka).contains(&"kafka-exporter".to_string()));
        assert!(!manifest(&no_kafka).unwrap().unwrap().content.contains("kafka-exporter"));
    }

    /// README "Monitoring" states this cost.
    #[test]
    fn resource_cost_of_the_default_cluster() {
        assert_eq!(requested(&monitored(""), 4), (220, 1504));
    }

    #[test]
    fn the_password_never_reaches_a_command_line_or_the_output() {
        let script = grafana_secret_script(&monitored(""), "kubectl");
        for line in script.lines().filter(|l| l.contains("$password")) {
            assert!(
                line.starts_with("password=")
                    || line.starts_with("[ \"${#password}\"")
                    || line.contains("> \"$dir/secret.yaml\"")
                    || line.contains("base64 -w0"),
                "{line}"
            );
        }
        assert!(!script.contains("set -x"));
        assert!(script.contains("umask 077"));
        assert!(script.contains("trap 'rm -rf -- \"$dir\"' EXIT"));
        assert!(script.contains(">/dev/null\necho created"));
    }
}
