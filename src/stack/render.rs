//! Renders `templates/stack/` into plain manifests, one multi-document file per component,
//! and says which workloads each component runs and where its clients connect. Pure: spec in,
//! text out; every output is schema-validated and snapshot-tested.

use anyhow::{Context, Result};
use minijinja::{Environment, context};
use serde::Serialize;

use crate::config::{KafkaSpec, Spec};

const TEMPLATES: &[(&str, &str)] = &[
    ("kafka.yaml", include_str!("../../templates/stack/kafka.yaml.j2")),
    ("cassandra.yaml", include_str!("../../templates/stack/cassandra.yaml.j2")),
    ("spark.yaml", include_str!("../../templates/stack/spark.yaml.j2")),
    ("spark-pi.yaml", include_str!("../../templates/stack/spark-pi.yaml.j2")),
];

/// A component of the stack, in the order `up` applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    Kafka,
    Cassandra,
    Spark,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Kafka => "kafka",
            Component::Cassandra => "cassandra",
            Component::Spark => "spark",
        }
    }
}

/// One rendered file: `kafka.yaml` holds every object of Kafka, namespace first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub component: Component,
    pub file: String,
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WorkloadKind {
    StatefulSet,
    Deployment,
}

/// A StatefulSet or Deployment `up` waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workload {
    pub component: Component,
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub replicas: u32,
    /// The label selector of its pods: the same labels the templates put on them.
    #[serde(skip)]
    pub pod_selector: String,
}

/// `app.kubernetes.io/name=<app>,app.kubernetes.io/instance=<cluster>[,app.kubernetes.io/component=<c>]`
fn pod_selector(spec: &Spec, app: &str, component: Option<&str>) -> String {
    let mut sel = format!("app.kubernetes.io/name={app},app.kubernetes.io/instance={}", spec.cluster_name());
    if let Some(c) = component {
        sel.push_str(&format!(",app.kubernetes.io/component={c}"));
    }
    sel
}

/// Where clients connect, from inside the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub component: Component,
    pub what: &'static str,
    pub address: String,
}

fn env() -> Result<Environment<'static>> {
    crate::templates::environment(TEMPLATES)
}

/// The labels on every object tagstack applies; `app.kubernetes.io/managed-by` is how `up`,
/// `status` and `down` find them again.
fn labels(spec: &Spec) -> String {
    format!(
        "app.kubernetes.io/part-of: tagstack\napp.kubernetes.io/managed-by: tagstack\napp.kubernetes.io/instance: {}",
        spec.cluster_name()
    )
}

/// One StatefulSet of Kafka nodes with the same roles.
#[derive(Debug, Serialize)]
struct KafkaSet {
    name: &'static str,
    component: &'static str,
    replicas: u32,
    roles: &'static str,
    listeners: &'static str,
    broker: bool,
    controller: bool,
    node_id_offset: u32,
    probe_port: u16,
    /// [`KAFKA_PROBE`] on `probe_port`.
    probe: String,
}

/// Dedicated controllers take node ids from 0 and brokers from 100, so the two never collide.
const BROKER_ID_OFFSET: u32 = 100;

fn kafka_sets(k: &KafkaSpec) -> Vec<KafkaSet> {
    if k.controllers == 0 {
        return vec![KafkaSet {
            name: "kafka",
            component: "broker",
            replicas: k.brokers,
            roles: "broker,controller",
            listeners: "PLAINTEXT://:9092,CONTROLLER://:9093",
            broker: true,
            controller: true,
            node_id_offset: 0,
            probe_port: 9092,
            probe: probe_script(KAFKA_PROBE, 9092),
        }];
    }
    vec![
        KafkaSet {
            name: "kafka-controller",
            component: "controller",
            replicas: k.controllers,
            roles: "controller",
            listeners: "CONTROLLER://:9093",
            broker: false,
            controller: true,
            node_id_offset: 0,
            probe_port: 9093,
            probe: probe_script(KAFKA_PROBE, 9093),
        },
        KafkaSet {
            name: "kafka",
            component: "broker",
            replicas: k.brokers,
            roles: "broker",
            listeners: "PLAINTEXT://:9092",
            broker: true,
            controller: false,
            node_id_offset: BROKER_ID_OFFSET,
            probe_port: 9092,
            probe: probe_script(KAFKA_PROBE, 9092),
        },
    ]
}

/// `0@kafka-0.kafka-headless.<ns>.svc.cluster.local:9093,...`: the static KRaft quorum.
pub fn kafka_voters(k: &KafkaSpec) -> String {
    let (set, count) = if k.controllers == 0 { ("kafka", k.brokers) } else { ("kafka-controller", k.controllers) };
    (0..count)
        .map(|i| format!("{i}@{set}-{i}.kafka-headless.{}.svc.cluster.local:9093", k.namespace))
        .collect::<Vec<_>>()
        .join(",")
}

/// Replicas of every topic (and of Kafka's internal ones): three where there are brokers for it.
pub fn kafka_replication_factor(k: &KafkaSpec) -> u32 {
    k.brokers.min(3)
}

fn kafka(spec: &Spec, k: &KafkaSpec) -> Result<String> {
    let replication_factor = kafka_replication_factor(k);
    env()?
        .get_template("kafka.yaml")?
        .render(context! {
            cluster_name => spec.cluster_name(),
            labels => labels(spec),
            storage_class => spec.stack.storage_class,
            k => k,
            sets => kafka_sets(k),
            voters => kafka_voters(k),
            replication_factor => replication_factor,
            // With one or two brokers a write must not wait for a replica that cannot exist.
            min_insync => if replication_factor >= 3 { 2 } else { 1 },
            jvm => JvmMemory::new(Jvm::Kafka, k.heap_mib, &k.resources.cpu),
            jvm_flags => JvmMemory::new(Jvm::Kafka, k.heap_mib, &k.resources.cpu).flags(),
        })
        .context("rendering kafka.yaml")
}

/// Which JVM a [`JvmMemory`] budget is for: the two differ in how much direct memory they use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jvm {
    Kafka,
    Cassandra,
}

/// Every memory pool of a JVM that a flag can bound, and the threads sized from the CPU, derived
/// from the configured heap and CPU request. `total_mib` must fit the container's memory limit:
/// `config` refuses a heap whose budget does not (the rest of the limit is the page cache's, and
/// Cassandra's native off-heap structures').
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct JvmMemory {
    pub heap_mib: u32,
    /// `-XX:MaxDirectMemorySize`. Unset, HotSpot allows as much as the heap, and Cassandra 5.0's
    /// cassandra-env.sh sets a quarter of the host's RAM.
    pub direct_mib: u32,
    /// `-XX:MaxMetaspaceSize` (unbounded by default).
    pub metaspace_mib: u32,
    /// `-XX:ReservedCodeCacheSize`: the JDK's own default with tiered compilation, made explicit
    /// so that it is counted.
    pub code_cache_mib: u32,
    /// Thread stacks, GC bookkeeping, the class-data archive and malloc: no flag bounds these.
    pub overhead_mib: u32,
    /// `-XX:ActiveProcessorCount` and `-XX:ParallelGCThreads`: the CPU request rounded up, at
    /// least 2. Without it the JVM sizes its GC and every thread pool from the host's cores (the
    /// containers set no CPU limit).
    pub processors: u32,
    /// `-XX:ConcGCThreads`.
    pub conc_gc_threads: u32,
    /// The sum of the pools above: what the JVM may use at most, in MiB.
    pub total_mib: u32,
}

/// Not bounded by any flag; measured use is well below it for both JVMs at these heap sizes.
pub const JVM_OVERHEAD_MIB: u32 = 256;
/// The JDK default of `-XX:ReservedCodeCacheSize` with tiered compilation (240m).
pub const JVM_CODE_CACHE_MIB: u32 = 240;

impl JvmMemory {
    pub fn new(jvm: Jvm, heap_mib: u32, cpu: &str) -> JvmMemory {
        let processors = cpu_cores(cpu).clamp(2, 64);
        let (direct_mib, metaspace_mib, conc_gc_threads) = match jvm {
            // Netty (client and internode), the chunk cache and the networking buffer pool:
            // cassandra.yaml sizes the last two from the heap (1/4 and 1/16 of it by default).
            // Cassandra sets ConcGCThreads equal to ParallelGCThreads (cassandra-env.sh).
            Jvm::Cassandra => ((heap_mib / 2).max(256), 256, processors),
            // Socket I/O goes through per-thread temporary direct buffers. HotSpot's own
            // ConcGCThreads rule: (ParallelGCThreads + 2) / 4.
            Jvm::Kafka => ((heap_mib / 4).max(128), 192, ((processors + 2) / 4).max(1)),
        };
        JvmMemory {
            heap_mib,
            direct_mib,
            metaspace_mib,
            code_cache_mib: JVM_CODE_CACHE_MIB,
            overhead_mib: JVM_OVERHEAD_MIB,
            processors,
            conc_gc_threads,
            total_mib: heap_mib + direct_mib + metaspace_mib + JVM_CODE_CACHE_MIB + JVM_OVERHEAD_MIB,
        }
    }

    /// The bounds as JVM flags (not the heap: each image has its own variable for it).
    pub fn flags(&self) -> String {
        format!(
            "-XX:MaxDirectMemorySize={}m -XX:MaxMetaspaceSize={}m -XX:ReservedCodeCacheSize={}m -XX:ActiveProcessorCount={} -XX:ParallelGCThreads={} -XX:ConcGCThreads={}",
            self.direct_mib,
            self.metaspace_mib,
            self.code_cache_mib,
            self.processors,
            self.processors,
            self.conc_gc_threads
        )
    }
}

/// Whole cores for a CPU request (`1500m` and `1.5` give 2).
fn cpu_cores(cpu: &str) -> u32 {
    let cores = match cpu.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().map(|m| m / 1000.0),
        None => cpu.parse::<f64>(),
    };
    // A CPU request is validated to be at most 192 cores, so the cast cannot truncate.
    cores.map_or(1, |c| c.ceil().max(1.0) as u32)
}

/// What both probes start with: C locale, the port, a 4 s deadline, `fail` naming the
/// component, and `byte`, which reads one byte of the answer from fd 3 into `b` within the
/// deadline (bash builtins only).
macro_rules! probe_prelude {
    ($component:literal) => {
        concat!(
            "export LC_ALL=C\nport=__PORT__\ndeadline=$((SECONDS + 4))\n",
            "fail() { echo \"",
            $component,
            r#" on 127.0.0.1:$port: $*" >&2; exit 1; }
byte() {
  local c t=$((deadline - SECONDS))
  [ "$t" -gt 0 ] || return 1
  IFS= read -r -d '' -n 1 -t "$t" c <&3 || return 1
  if [ -z "$c" ]; then b=0; else printf -v b '%d' "'$c"; fi
}
"#
        )
    };
}

/// The readiness and startup check of Kafka: an ApiVersions request (api_key 18, v3, request
/// header v2) with a fixed correlation id, over bash's /dev/tcp to the pod's own listener. Ready
/// means the broker answered with that correlation id (ApiVersions responses keep header v0) and
/// error code 0, or 35 (UNSUPPORTED_VERSION, still an answer of the request pipeline). Only bash
/// builtins: no JVM, no tools the image may lack. Bounded by its own 4 s deadline.
pub const KAFKA_PROBE: &str = concat!(
    "# Kafka ApiVersions check (tagstack, src/stack/render.rs): only bash builtins, 4 s at most.\n",
    probe_prelude!("kafka"),
    r#"int() {
  local i
  v=0
  for ((i = 0; i < $1; i++)); do byte || fail "no ApiVersions answer within 4 s"; v=$((v * 256 + b)); done
}
exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "connection refused"
# size 31; api_key 18 (ApiVersions), version 3; correlation id 0x74616773; client id "tagstack";
# no header tags; body: software name "tagstack", version "1" (compact strings), no tags.
printf '\x00\x00\x00\x1f\x00\x12\x00\x03\x74\x61\x67\x73\x00\x08tagstack\x00\x09tagstack\x021\x00' >&3 ||
  fail "cannot send"
int 4
int 4
[ "$v" -eq $((0x74616773)) ] || fail "answer to correlation id $v, not ours"
int 2
[ "$v" -eq 0 ] || [ "$v" -eq 35 ] || fail "ApiVersions error code $v"
"#
);

/// The readiness and startup check of Cassandra: a CQL OPTIONS frame (protocol v4) to the native
/// port, which Cassandra opens only once the node has joined the ring and finished bootstrap;
/// ready means a SUPPORTED response to our stream id. Only bash builtins, no nodetool JVM.
pub const CASSANDRA_PROBE: &str = concat!(
    "# Cassandra CQL OPTIONS check (tagstack, src/stack/render.rs): only bash builtins, 4 s at most.\n",
    probe_prelude!("cassandra"),
    r#"exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "native transport not listening (starting or bootstrapping)"
# Protocol v4 request header: version 0x04, flags 0, stream 0x0074, opcode OPTIONS (0x05), body length 0.
printf '\x04\x00\x00\x74\x05\x00\x00\x00\x00' >&3 || fail "cannot send"
h=()
for _ in 1 2 3 4 5; do byte || fail "no answer to OPTIONS within 4 s"; h+=("$b"); done
# A response (0x84), to stream 0x0074, opcode SUPPORTED (0x06).
if ! [ "${h[0]}" -eq 132 ] || ! [ "${h[2]}" -eq 0 ] || ! [ "${h[3]}" -eq 116 ] || ! [ "${h[4]}" -eq 6 ]; then
  fail "not a SUPPORTED answer: ${h[*]}"
fi
"#
);

/// A probe script with its port filled in: the third argument of `bash -c`.
pub fn probe_script(script: &str, port: u16) -> String {
    script.replace("__PORT__", &port.to_string())
}

/// The first two pods (one when there is only one) seed the gossip.
pub fn cassandra_seeds(namespace: &str, replicas: u32) -> String {
    (0..replicas.clamp(1, 2))
        .map(|i| format!("cassandra-{i}.cassandra-headless.{namespace}.svc.cluster.local"))
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug, Serialize)]
struct SparkDeployment {
    name: &'static str,
    component: &'static str,
    replicas: u32,
    command: String,
    port_name: &'static str,
    port: u16,
    cpu: String,
    memory_mib: u32,
}

/// Heap of the standalone master and worker daemons themselves.
pub const SPARK_DAEMON_MIB: u32 = 256;

/// Whole cores a standalone worker offers for a CPU request (`1500m` and `1.5` offer 2).
fn spark_cores(cpu: &str) -> u32 {
    cpu_cores(cpu)
}

fn spark_master_url(namespace: &str) -> String {
    format!("spark://spark-master.{namespace}.svc.cluster.local:7077")
}

fn spark_deployments(s: &crate::config::SparkSpec) -> Vec<SparkDeployment> {
    if s.workers == 0 {
        return Vec::new();
    }
    let flow = |args: &[&str]| format!("[{}]", args.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", "));
    // Executors run inside the worker's container, next to the worker daemon's own heap
    // (SPARK_DAEMON_MEMORY) and the JVMs' overhead.
    let worker_mib = ((s.worker.memory_mib.saturating_sub(SPARK_DAEMON_MIB)) * 9 / 10).to_string() + "m";
    let cores = spark_cores(&s.worker.cpu).to_string();
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
                &spark_master_url(&s.namespace),
            ]),
            port_name: "web-ui",
            port: 8081,
            cpu: s.worker.cpu.clone(),
            memory_mib: s.worker.memory_mib,
        },
    ]
}

/// The examples jar of an `apache/spark` image, named after its Spark and Scala versions
/// (`spark-examples_2.13-4.1.0.jar`): the tag must start with the Spark version.
pub fn spark_examples_jar(image: &str) -> Option<String> {
    let tag = image.rsplit_once(':').map(|(_, t)| t).filter(|t| !t.contains('/'))?;
    let version: String = tag.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let parts: Vec<u32> = version.trim_end_matches('.').split('.').map(str::parse).collect::<Result<_, _>>().ok()?;
    let [major, _, _] = parts[..] else { return None };
    let scala = if major >= 4 { "2.13" } else { "2.12" };
    Some(format!("spark-examples_{scala}-{}.jar", version.trim_end_matches('.')))
}

/// The example job `smoke` runs: executors fit beside the stack on a 1+3 cluster.
pub fn spark_pi(spec: &Spec) -> Result<Option<String>> {
    let Some(s) = &spec.stack.spark else { return Ok(None) };
    env()?
        .get_template("spark-pi.yaml")?
        .render(context! {
            cluster_name => spec.cluster_name(),
            labels => labels(spec),
            s => s,
            executors => 2,
            examples_jar => spark_examples_jar(&s.image).context("stack.spark.image")?,
        })
        .context("rendering spark-pi.yaml")
        .map(Some)
}

/// Every component's manifest, in apply order.
pub fn manifests(spec: &Spec) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    let st = &spec.stack;
    if let Some(k) = &st.kafka {
        out.push(Manifest { component: Component::Kafka, file: "kafka.yaml".into(), content: kafka(spec, k)? });
    }
    if let Some(c) = &st.cassandra {
        let content = env()?
            .get_template("cassandra.yaml")?
            .render(context! {
                cluster_name => spec.cluster_name(),
                labels => labels(spec),
                storage_class => st.storage_class,
                c => c,
                seeds => cassandra_seeds(&c.namespace, c.replicas),
                jvm => JvmMemory::new(Jvm::Cassandra, c.heap_mib, &c.resources.cpu),
                jvm_flags => JvmMemory::new(Jvm::Cassandra, c.heap_mib, &c.resources.cpu).flags(),
                probe => probe_script(CASSANDRA_PROBE, 9042),
            })
            .context("rendering cassandra.yaml")?;
        out.push(Manifest { component: Component::Cassandra, file: "cassandra.yaml".into(), content });
    }
    if let Some(s) = &st.spark {
        let content = env()?
            .get_template("spark.yaml")?
            .render(context! {
                cluster_name => spec.cluster_name(),
                labels => labels(spec),
                s => s,
                deployments => spark_deployments(s),
                daemon_mib => SPARK_DAEMON_MIB,
            })
            .context("rendering spark.yaml")?;
        out.push(Manifest { component: Component::Spark, file: "spark.yaml".into(), content });
    }
    Ok(out)
}

/// The StatefulSets and Deployments `up` waits for, in apply order.
pub fn workloads(spec: &Spec) -> Vec<Workload> {
    let mut out = Vec::new();
    let st = &spec.stack;
    if let Some(k) = &st.kafka {
        for set in kafka_sets(k) {
            out.push(Workload {
                component: Component::Kafka,
                kind: WorkloadKind::StatefulSet,
                namespace: k.namespace.clone(),
                name: set.name.into(),
                replicas: set.replicas,
                pod_selector: pod_selector(spec, "kafka", Some(set.component)),
            });
        }
    }
    if let Some(c) = &st.cassandra {
        out.push(Workload {
            component: Component::Cassandra,
            kind: WorkloadKind::StatefulSet,
            namespace: c.namespace.clone(),
            name: "cassandra".into(),
            replicas: c.replicas,
            pod_selector: pod_selector(spec, "cassandra", None),
        });
    }
    if let Some(s) = &st.spark {
        for d in spark_deployments(s) {
            out.push(Workload {
                component: Component::Spark,
                kind: WorkloadKind::Deployment,
                namespace: s.namespace.clone(),
                name: d.name.into(),
                replicas: d.replicas,
                pod_selector: pod_selector(spec, "spark", Some(d.component)),
            });
        }
    }
    out
}

/// Client endpoints: Kafka bootstrap servers, Cassandra contact points, Spark's master URL
/// (or the API server for spark-submit when there is no standalone master).
pub fn endpoints(spec: &Spec) -> Vec<Endpoint> {
    let mut out = Vec::new();
    let st = &spec.stack;
    if let Some(k) = &st.kafka {
        out.push(Endpoint {
            component: Component::Kafka,
            what: "bootstrap servers",
            address: format!("kafka-bootstrap.{}.svc.cluster.local:9092", k.namespace),
        });
    }
    if let Some(c) = &st.cassandra {
        out.push(Endpoint {
            component: Component::Cassandra,
            what: "contact points",
            address: format!("cassandra-client.{}.svc.cluster.local:9042", c.namespace),
        });
    }
    if let Some(s) = &st.spark {
        let (what, address) = if s.workers > 0 {
            ("master URL", spark_master_url(&s.namespace))
        } else {
            ("spark-submit master", "k8s://https://kubernetes.default.svc:443".to_string())
        };
        out.push(Endpoint { component: Component::Spark, what, address });
    }
    out
}
