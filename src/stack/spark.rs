//! Spark: its manifest (`templates/stack/spark.yaml.j2`: the namespace and service account for
//! spark-submit on Kubernetes, and with `workers > 0` a standalone master and workers sized
//! from the worker's CPU and memory), the Deployments `up` waits for, the master URL, and its
//! smoke check: the SparkPi Job (`templates/stack/spark-pi.yaml.j2`, named after the image's
//! examples jar) run to completion. Pure.

use anyhow::{Context, Result};
use minijinja::context;
use serde::Serialize;

use super::model::{Component, Endpoint, Manifest, Workload, WorkloadKind};
use super::render::{APPLY, Part, labels, pod_selector, template};
use super::smoke::{Check, Step};
use crate::config::{SparkSpec, Spec, cpu_cores, spark_image_version};

const TEMPLATE: (&str, &str) = ("spark.yaml", include_str!("../../templates/stack/spark.yaml.j2"));
const PI_TEMPLATE: (&str, &str) = ("spark-pi.yaml", include_str!("../../templates/stack/spark-pi.yaml.j2"));

/// Spark as configured in `[stack.spark]`.
pub struct Spark<'a> {
    spec: &'a Spec,
    s: &'a SparkSpec,
}

impl<'a> Spark<'a> {
    /// `None` when Spark is disabled.
    pub fn of(spec: &'a Spec) -> Option<Spark<'a>> {
        spec.stack.spark.as_ref().map(|s| Spark { spec, s })
    }

    /// The example job `smoke` runs: executors fit beside the stack on a 1+3 cluster.
    fn pi_job(&self) -> Result<String> {
        let (spec, s) = (self.spec, self.s);
        template(
            PI_TEMPLATE,
            context! {
                cluster_name => spec.id.cluster_name(),
                labels => labels(spec),
                s => s,
                executors => 2,
                examples_jar => examples_jar(&s.image).context("stack.spark.image")?,
                metrics => crate::monitoring::deploy::spark_metrics(spec),
            },
        )
    }
}

/// SparkPi's Job, when Spark is enabled (the file `tagstack render` writes as `spark-pi.yaml`).
pub fn pi_job(spec: &Spec) -> Result<Option<String>> {
    Spark::of(spec).map(|s| s.pi_job()).transpose()
}

#[derive(Debug, Serialize)]
struct SparkDeployment {
    name: &'static str,
    component: &'static str,
    replicas: u32,
    command: String,
    port_name: &'static str,
    port: u16,
    /// The daemon's web UI (Spark's defaults: master 8080, worker 8081), where its Prometheus
    /// servlet answers at `metrics_path` when monitoring is on.
    web_port: u16,
    metrics_path: &'static str,
    /// The variable `spark-class` passes to the daemon's JVM (Spark `conf/spark-env.sh.template`).
    opts_env: &'static str,
    cpu: String,
    memory_mib: u32,
}

/// Heap of the standalone master and worker daemons themselves.
pub const SPARK_DAEMON_MIB: u32 = 256;

fn master_url(namespace: &str) -> String {
    format!("spark://spark-master.{namespace}.svc.cluster.local:7077")
}

fn deployments(s: &SparkSpec) -> Vec<SparkDeployment> {
    if s.workers == 0 {
        return Vec::new();
    }
    let flow = |args: &[&str]| format!("[{}]", args.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", "));
    // Executors run inside the worker's container, next to the worker daemon's own heap
    // (SPARK_DAEMON_MEMORY) and the JVMs' overhead.
    let worker_mib = ((s.worker.memory_mib.saturating_sub(SPARK_DAEMON_MIB)) * 9 / 10).to_string() + "m";
    // Whole cores a standalone worker offers for a CPU request (`1500m` and `1.5` offer 2).
    let cores = cpu_cores(&s.worker.cpu).to_string();
    vec![
        SparkDeployment {
            name: "spark-master",
            component: "master",
            replicas: 1,
            // The pod's own address (Kubernetes expands $(POD_IP)): reachable from every pod,
            // unlike the pod name, and what the Service forwards to.
            command: flow(&[
                "/opt/spark/bin/spark-class",
                "org.apache.spark.deploy.master.Master",
                "--host",
                "$(POD_IP)",
            ]),
            port_name: "master",
            port: 7077,
            web_port: 8080,
            metrics_path: crate::monitoring::deploy::spark_metrics_path("master"),
            opts_env: "SPARK_MASTER_OPTS",
            cpu: "250m".into(),
            memory_mib: 1024,
        },
        SparkDeployment {
            name: "spark-worker",
            component: "worker",
            replicas: s.workers,
            command: flow(&[
                "/opt/spark/bin/spark-class",
                "org.apache.spark.deploy.worker.Worker",
                "--host",
                "$(POD_IP)",
                "--cores",
                &cores,
                "--memory",
                &worker_mib,
                &master_url(&s.namespace),
            ]),
            port_name: "web-ui",
            port: 8081,
            web_port: 8081,
            metrics_path: crate::monitoring::deploy::spark_metrics_path("worker"),
            opts_env: "SPARK_WORKER_OPTS",
            cpu: s.worker.cpu.clone(),
            memory_mib: s.worker.memory_mib,
        },
    ]
}

/// The examples jar of an `apache/spark` image, named after its Spark and Scala versions
/// (`spark-examples_2.13-4.1.0.jar`): the tag must start with the Spark version, which
/// `config` checks at load.
pub fn examples_jar(image: &str) -> Option<String> {
    let (major, version) = spark_image_version(image)?;
    let scala = if major >= 4 { "2.13" } else { "2.12" };
    Some(format!("spark-examples_{scala}-{version}.jar"))
}

impl Part for Spark<'_> {
    fn component(&self) -> Component {
        Component::Spark
    }

    fn manifest(&self) -> Result<Manifest> {
        let (spec, s) = (self.spec, self.s);
        let content = template(
            TEMPLATE,
            context! {
                cluster_name => spec.id.cluster_name(),
                labels => labels(spec),
                s => s,
                deployments => deployments(s),
                daemon_mib => SPARK_DAEMON_MIB,
                metrics => crate::monitoring::deploy::spark_metrics(spec),
            },
        )?;
        Ok(Manifest { component: Component::Spark, file: TEMPLATE.0.into(), content })
    }

    /// None without standalone workers: Spark is then ready once applied.
    fn workloads(&self) -> Vec<Workload> {
        deployments(self.s)
            .into_iter()
            .map(|d| Workload {
                component: Component::Spark,
                kind: WorkloadKind::Deployment,
                namespace: self.s.namespace.clone(),
                name: d.name.into(),
                replicas: d.replicas,
                pod_selector: pod_selector(self.spec, "spark", Some(d.component)),
            })
            .collect()
    }

    /// The standalone master, or the API server for spark-submit when there is none.
    fn endpoint(&self) -> Endpoint {
        let (what, address) = if self.s.workers > 0 {
            ("master URL", master_url(&self.s.namespace))
        } else {
            ("spark-submit master", "k8s://https://kubernetes.default.svc:443".to_string())
        };
        Endpoint { component: Component::Spark, what, address }
    }

    fn smoke_manifests(&self) -> Result<Vec<Manifest>> {
        Ok(vec![Manifest { component: Component::Spark, file: PI_TEMPLATE.0.into(), content: self.pi_job()? }])
    }

    fn smoke(&self, kubectl: &str, stack_dir: &str, _nonce: &str) -> Check {
        let ns = &self.s.namespace;
        let job = PI_TEMPLATE.0;
        Check {
            component: Component::Spark,
            name: "SparkPi completes",
            steps: vec![
                Step {
                    what: "remove the previous run".into(),
                    command: format!(
                        "{kubectl} delete job -n {ns} spark-pi --ignore-not-found --wait=true --timeout=120s"
                    ),
                    expect: None,
                },
                Step {
                    what: "submit spark-pi".into(),
                    command: format!("{kubectl} {APPLY} -f {stack_dir}/{job}"),
                    expect: None,
                },
                Step {
                    what: "wait for spark-pi".into(),
                    // Polled rather than `kubectl wait --for=condition=complete`, which would sit
                    // out its whole timeout on a job that already failed.
                    command: format!(
                        "for _ in $(seq 1 300); do \
                         r=$({kubectl} get job -n {ns} spark-pi -o jsonpath='{{.status.succeeded}}/{{.status.failed}}'); \
                         case \"$r\" in 1/*) exit 0 ;; */?*) echo 'spark-pi failed:' >&2; \
                         {kubectl} logs -n {ns} job/spark-pi --tail=15 >&2; exit 1 ;; esac; sleep 2; done; \
                         echo 'spark-pi did not finish within 10 minutes' >&2; exit 1"
                    ),
                    expect: None,
                },
                Step {
                    what: "read the result".into(),
                    command: format!("{kubectl} logs -n {ns} job/spark-pi --tail=200"),
                    expect: Some("Pi is roughly".into()),
                },
            ],
            cleanup: None,
        }
    }
}
