//! `[stack]`: Kafka, Cassandra and Spark on the cluster. Defaults fit a 1+3 cluster of
//! t3.large nodes (2 vCPU, 8 GiB: about 1.9 CPU and 7 GiB allocatable each). Same error shape
//! as `validate.rs`; every rejection names the key and says what would be accepted.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::error::ConfigError;
use super::field::{Ctx, deadline};
use super::raw::{RawCassandra, RawKafka, RawSpark, RawStack, S};
use super::sizing::{Jvm, JvmMemory};
use super::spec::{CassandraSpec, KafkaSpec, Resources, SparkSpec, StackSpec};

pub const KAFKA_IMAGE: &str = "apache/kafka:4.3.0";
pub const CASSANDRA_IMAGE: &str = "cassandra:5.0";
pub const SPARK_IMAGE: &str = "apache/spark:4.1.2";
/// The `[monitoring]` add-on's namespace (docs/monitoring.md); no stack component may take it.
pub const MONITORING_NAMESPACE: &str = "monitoring";
/// The add-on's second namespace, node-exporter's alone (Pod Security `privileged`); likewise.
pub const MONITORING_NODE_NAMESPACE: &str = "monitoring-node";

/// Reads one optional key, or its default.
fn opt<T>(v: Option<&S<T>>) -> Option<(&T, std::ops::Range<usize>)> {
    v.map(|v| (v.get_ref(), v.span()))
}

fn count(
    cx: &Ctx,
    v: Option<&S<i64>>,
    key: &str,
    range: std::ops::RangeInclusive<i64>,
    default: u32,
) -> Result<u32, ConfigError> {
    match opt(v) {
        None => Ok(default),
        Some((n, _)) if range.contains(n) => Ok(u32::try_from(*n).unwrap_or(default)),
        Some((n, span)) => {
            cx.err(span, key, format!("{n} is out of range"), &format!("use {} to {}", range.start(), range.end()))
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    s.len() <= 63
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
}

/// A Kubernetes namespace of the stack's own: `down` deletes it.
fn namespace(cx: &Ctx, v: Option<&S<String>>, key: &str, default: &str) -> Result<String, ConfigError> {
    let Some((ns, span)) = opt(v) else { return Ok(default.to_string()) };
    if !is_dns_label(ns) {
        return cx.err(
            span,
            key,
            format!("{ns:?} is not a namespace name"),
            "use lowercase letters, digits and dashes, e.g. \"kafka\"",
        );
    }
    if ns == "default" || ns.starts_with("kube-") {
        return cx.err(
            span,
            key,
            format!("{ns:?} is a namespace Kubernetes owns"),
            "give the component a namespace of its own: `tagstack down` deletes it",
        );
    }
    if ns == MONITORING_NAMESPACE || ns == MONITORING_NODE_NAMESPACE {
        return cx.err(
            span,
            key,
            format!("{ns:?} is the namespace of tagstack's monitoring add-on"),
            "give the component a namespace of its own: `tagstack down` deletes it",
        );
    }
    Ok(ns.clone())
}

fn image(cx: &Ctx, v: Option<&S<String>>, key: &str, default: &str) -> Result<String, ConfigError> {
    let Some((img, span)) = opt(v) else { return Ok(default.to_string()) };
    let name = img.rsplit('/').next().unwrap_or(img);
    if img.is_empty() || img.chars().any(char::is_whitespace) || !(name.contains(':') || img.contains("@sha256:")) {
        return cx.err(
            span,
            key,
            format!("{img:?} is not a pinned image reference"),
            &format!("name a tag or digest, e.g. \"{default}\" (a moving `latest` makes environments differ)"),
        );
    }
    if img.starts_with("bitnami/") || img.contains("/bitnami/") || img.starts_with("bitnamilegacy/") {
        return cx.err(
            span,
            key,
            format!("{img:?} is a Bitnami image"),
            &format!(
                "Bitnami's free images stopped receiving updates in 2025; use the official one, e.g. \"{default}\""
            ),
        );
    }
    Ok(img.clone())
}

/// `500m`, `1`, `1.5`: a CPU request.
fn cpu(cx: &Ctx, v: Option<&S<String>>, key: &str, default: &str) -> Result<String, ConfigError> {
    let Some((q, span)) = opt(v) else { return Ok(default.to_string()) };
    let milli = q.strip_suffix('m').is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) && n != "0");
    let cores = !q.ends_with('m') && q.parse::<f64>().is_ok_and(|c| c > 0.0 && c <= 192.0);
    if !(milli || cores) {
        return cx.err(
            span,
            key,
            format!("{q:?} is not a CPU quantity"),
            "write millicores or cores, e.g. \"500m\" or \"1.5\"",
        );
    }
    Ok(q.clone())
}

/// `2Gi`, `1536Mi`: a memory request (and limit), in MiB.
fn memory(cx: &Ctx, v: Option<&S<String>>, key: &str, default_mib: u32) -> Result<u32, ConfigError> {
    let Some((q, span)) = opt(v) else { return Ok(default_mib) };
    let mib = q
        .strip_suffix("Gi")
        .and_then(|n| n.parse::<u32>().ok()?.checked_mul(1024))
        .or_else(|| q.strip_suffix("Mi").and_then(|n| n.parse::<u32>().ok()))
        .filter(|m| *m >= 256);
    match mib {
        Some(m) => Ok(m),
        None => cx.err(
            span,
            key,
            format!("{q:?} is not a memory size of at least 256Mi"),
            "write e.g. \"2Gi\" or \"1536Mi\"",
        ),
    }
}

/// `1g`, `768m`: a JVM heap, in MiB, which must leave a quarter of the container's memory to
/// the JVM's own overhead (metaspace, threads, direct buffers) and the page cache.
fn heap(
    cx: &Ctx,
    v: Option<&S<String>>,
    key: &str,
    default_mib: u32,
    memory_mib: u32,
    memory_v: Option<&S<String>>,
    memory_key: &str,
) -> Result<u32, ConfigError> {
    let (mib, span) = match opt(v) {
        None => (default_mib, 0..0),
        Some((h, span)) => {
            let lower = h.to_ascii_lowercase();
            let mib = lower
                .strip_suffix('g')
                .and_then(|n| n.parse::<u32>().ok()?.checked_mul(1024))
                .or_else(|| lower.strip_suffix('m').and_then(|n| n.parse::<u32>().ok()))
                .filter(|m| *m >= 128);
            match mib {
                Some(m) => (m, span),
                None => {
                    return cx.err(
                        span,
                        key,
                        format!("{h:?} is not a heap size of at least 128m"),
                        "write e.g. \"1g\" or \"768m\"",
                    );
                }
            }
        }
    };
    if u64::from(mib) * 4 > u64::from(memory_mib) * 3 {
        if span.is_empty() {
            // The heap is the default: the key the user wrote is the memory.
            return cx.err(
                memory_v.map_or(0..0, S::span),
                memory_key,
                format!("{memory_mib} MiB is too little for the default heap of {mib} MiB ({key})"),
                &format!(
                    "keep the heap at most three quarters of {memory_key}: raise the memory or set a smaller {key}"
                ),
            );
        }
        return cx.err(
            span,
            key,
            format!("a heap of {mib} MiB leaves too little of {memory_key} = {memory_mib} MiB"),
            &format!("keep the heap at most three quarters of {memory_key}: lower the heap or raise the memory"),
        );
    }
    Ok(mib)
}

/// The heap and every JVM pool bounded from it (direct memory, metaspace, code cache) plus the
/// JVM's unbounded overhead must fit the container's memory limit, or the kernel kills the JVM
/// before its own limits ever apply. The budget is the one the manifests set
/// ([`JvmMemory::flags`]).
fn jvm_fits(
    cx: &Ctx,
    jvm: Jvm,
    heap: (u32, Option<&S<String>>, &str),
    memory: (u32, Option<&S<String>>, &str),
    cpu: &str,
) -> Result<(), ConfigError> {
    let (heap_mib, heap_v, heap_key) = heap;
    let (memory_mib, memory_v, memory_key) = memory;
    let b = JvmMemory::new(jvm, heap_mib, cpu);
    if b.total_mib <= memory_mib {
        return Ok(());
    }
    // Point at the key the user wrote: the memory when it is set, else the heap.
    let (span, key) = match (memory_v, heap_v) {
        (Some(m), _) => (m.span(), memory_key),
        (None, Some(h)) => (h.span(), heap_key),
        (None, None) => (0..0, memory_key),
    };
    cx.err(
        span,
        key,
        format!(
            "{memory_key} = {memory_mib} MiB cannot hold the JVM: heap {} + direct memory {} + metaspace {} + code cache {} + overhead {} = {} MiB",
            b.heap_mib, b.direct_mib, b.metaspace_mib, b.code_cache_mib, b.overhead_mib, b.total_mib
        ),
        &format!(
            "set {memory_key} to at least \"{}Mi\", or lower {heap_key} (direct memory follows the heap)",
            b.total_mib
        ),
    )
}

fn enabled(v: Option<&S<bool>>) -> bool {
    v.is_none_or(|e| *e.get_ref())
}

/// 22 characters of URL-safe base64 (16 bytes), the form `kafka-storage random-uuid` prints.
fn is_kafka_cluster_id(s: &str) -> bool {
    s.len() == 22 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A fixed cluster id per environment, so a re-created pod formats its log dir with the id
/// the rest of the cluster has.
pub fn default_kafka_cluster_id(project: &str, environment: &str) -> String {
    const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let digest = Sha256::digest(format!("tagstack kafka {project}/{environment}").as_bytes());
    let mut bits: u128 = 0;
    for b in &digest[..16] {
        bits = (bits << 8) | u128::from(*b);
    }
    // 22 six-bit digits cover 132 bits: the top 4 are zero, as in base64 of 16 bytes.
    (0..22).rev().map(|i| char::from(URL_SAFE[usize::try_from((bits >> (i * 6)) & 63).unwrap_or(0)])).collect()
}

fn kafka(cx: &Ctx, k: Option<&RawKafka>, project: &str, environment: &str) -> Result<Option<KafkaSpec>, ConfigError> {
    if !enabled(k.and_then(|k| k.enabled.as_ref())) {
        return Ok(None);
    }
    let get = |f: fn(&RawKafka) -> Option<&S<String>>| k.and_then(f);
    let controllers = count(cx, k.and_then(|k| k.controllers.as_ref()), "stack.kafka.controllers", 0..=9, 0)?;
    if controllers % 2 == 0 && controllers > 0 {
        let span = k.and_then(|k| k.controllers.as_ref()).map_or(0..0, S::span);
        return cx.err(
            span,
            "stack.kafka.controllers",
            format!("{controllers} controllers cannot outvote a split"),
            "use 0 (brokers are also controllers), or an odd count: 1, 3 or 5",
        );
    }
    let brokers = count(cx, k.and_then(|k| k.brokers.as_ref()), "stack.kafka.brokers", 1..=30, 3)?;
    if controllers == 0 && ![1, 3, 5].contains(&brokers) {
        let span = k.and_then(|k| k.brokers.as_ref()).map_or(0..0, S::span);
        return cx.err(
            span,
            "stack.kafka.brokers",
            format!("{brokers} brokers would all be KRaft voters (controllers = 0)"),
            "in combined mode use 1, 3 or 5 brokers (an odd quorum); for other counts add dedicated controllers, e.g. controllers = 3",
        );
    }
    let memory_mib = memory(cx, get(|k| k.memory.as_ref()), "stack.kafka.memory", 2048)?;
    let cluster_id = match opt(get(|k| k.cluster_id.as_ref())) {
        None => default_kafka_cluster_id(project, environment),
        Some((id, _)) if is_kafka_cluster_id(id) => id.clone(),
        Some((id, span)) => {
            return cx.err(
                span,
                "stack.kafka.cluster_id",
                format!("{id:?} is not a Kafka cluster id"),
                "use 22 characters of URL-safe base64 (what `kafka-storage.sh random-uuid` prints), or remove it for a fixed id per environment",
            );
        }
    };
    let heap_mib = heap(
        cx,
        get(|k| k.heap.as_ref()),
        "stack.kafka.heap",
        1024,
        memory_mib,
        get(|k| k.memory.as_ref()),
        "stack.kafka.memory",
    )?;
    let cpu = cpu(cx, get(|k| k.cpu.as_ref()), "stack.kafka.cpu", "250m")?;
    jvm_fits(
        cx,
        Jvm::Kafka,
        (heap_mib, get(|k| k.heap.as_ref()), "stack.kafka.heap"),
        (memory_mib, get(|k| k.memory.as_ref()), "stack.kafka.memory"),
        &cpu,
    )?;
    Ok(Some(KafkaSpec {
        namespace: namespace(cx, get(|k| k.namespace.as_ref()), "stack.kafka.namespace", "kafka")?,
        image: image(cx, get(|k| k.image.as_ref()), "stack.kafka.image", KAFKA_IMAGE)?,
        brokers,
        controllers,
        storage_gb: count(cx, k.and_then(|k| k.storage_gb.as_ref()), "stack.kafka.storage_gb", 1..=16384, 20)?,
        heap_mib,
        resources: Resources { cpu, memory_mib },
        cluster_id,
    }))
}

fn cassandra(cx: &Ctx, c: Option<&RawCassandra>) -> Result<Option<CassandraSpec>, ConfigError> {
    if !enabled(c.and_then(|c| c.enabled.as_ref())) {
        return Ok(None);
    }
    let get = |f: fn(&RawCassandra) -> Option<&S<String>>| c.and_then(f);
    let memory_mib = memory(cx, get(|c| c.memory.as_ref()), "stack.cassandra.memory", 3072)?;
    let dc_rack = |v: Option<&S<String>>, key: &str, default: &str| -> Result<String, ConfigError> {
        match opt(v) {
            None => Ok(default.to_string()),
            Some((s, _))
                if !s.is_empty()
                    && s.len() <= 48
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                Ok(s.clone())
            }
            Some((s, span)) => cx.err(
                span,
                key,
                format!("{s:?} is not a name Cassandra accepts here"),
                "use letters, digits, dashes and underscores",
            ),
        }
    };
    let heap_mib = heap(
        cx,
        get(|c| c.heap.as_ref()),
        "stack.cassandra.heap",
        1024,
        memory_mib,
        get(|c| c.memory.as_ref()),
        "stack.cassandra.memory",
    )?;
    let cpu = cpu(cx, get(|c| c.cpu.as_ref()), "stack.cassandra.cpu", "500m")?;
    jvm_fits(
        cx,
        Jvm::Cassandra,
        (heap_mib, get(|c| c.heap.as_ref()), "stack.cassandra.heap"),
        (memory_mib, get(|c| c.memory.as_ref()), "stack.cassandra.memory"),
        &cpu,
    )?;
    Ok(Some(CassandraSpec {
        namespace: namespace(cx, get(|c| c.namespace.as_ref()), "stack.cassandra.namespace", "cassandra")?,
        image: image(cx, get(|c| c.image.as_ref()), "stack.cassandra.image", CASSANDRA_IMAGE)?,
        replicas: count(cx, c.and_then(|c| c.replicas.as_ref()), "stack.cassandra.replicas", 1..=30, 3)?,
        storage_gb: count(cx, c.and_then(|c| c.storage_gb.as_ref()), "stack.cassandra.storage_gb", 1..=16384, 20)?,
        heap_mib,
        resources: Resources { cpu, memory_mib },
        datacenter: dc_rack(get(|c| c.datacenter.as_ref()), "stack.cassandra.datacenter", "dc1")?,
        rack: dc_rack(get(|c| c.rack.as_ref()), "stack.cassandra.rack", "rack1")?,
    }))
}

/// A standalone worker's container holds the worker daemon and its executors: under 1536Mi
/// not even one executor with Spark's default 1g fits.
fn spark_worker_memory(cx: &Ctx, v: Option<&S<String>>) -> Result<u32, ConfigError> {
    let mib = memory(cx, v, "stack.spark.worker_memory", 2048)?;
    if mib < 1536 {
        return cx.err(
            v.map_or(0..0, S::span),
            "stack.spark.worker_memory",
            format!("{mib} MiB cannot hold the worker daemon and one executor"),
            "give a worker at least 1536Mi (default 2Gi)",
        );
    }
    Ok(mib)
}

/// The Spark version an image's tag starts with, and its major (`apache/spark:4.1.0-scala2.13`
/// gives `(4, "4.1.0")`): SparkPi's examples jar is named after it, so an image whose tag does
/// not say it is refused at load.
pub fn spark_image_version(image: &str) -> Option<(u32, &str)> {
    let tag = image.rsplit_once(':').map(|(_, t)| t).filter(|t| !t.contains('/'))?;
    let len = tag.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(tag.len());
    let version = tag[..len].trim_end_matches('.');
    let parts: Vec<u32> = version.split('.').map(str::parse).collect::<Result<_, _>>().ok()?;
    let [major, _, _] = parts[..] else { return None };
    Some((major, version))
}

fn spark(cx: &Ctx, s: Option<&RawSpark>) -> Result<Option<SparkSpec>, ConfigError> {
    if !enabled(s.and_then(|s| s.enabled.as_ref())) {
        return Ok(None);
    }
    let get = |f: fn(&RawSpark) -> Option<&S<String>>| s.and_then(f);
    let image = image(cx, get(|s| s.image.as_ref()), "stack.spark.image", SPARK_IMAGE)?;
    if spark_image_version(&image).is_none() {
        let span = get(|s| s.image.as_ref()).map_or(0..0, S::span);
        return cx.err(
            span,
            "stack.spark.image",
            format!("{image:?} does not say its Spark version"),
            "use a tag that starts with it, e.g. \"apache/spark:4.1.2\" or \"apache/spark:4.1.2-scala2.13-java17-ubuntu\": the SparkPi job names the examples jar after it",
        );
    }
    Ok(Some(SparkSpec {
        namespace: namespace(cx, get(|s| s.namespace.as_ref()), "stack.spark.namespace", "spark")?,
        image,
        workers: count(cx, s.and_then(|s| s.workers.as_ref()), "stack.spark.workers", 0..=100, 0)?,
        worker: Resources {
            cpu: cpu(cx, get(|s| s.worker_cpu.as_ref()), "stack.spark.worker_cpu", "1")?,
            memory_mib: spark_worker_memory(cx, get(|s| s.worker_memory.as_ref()))?,
        },
    }))
}

pub fn stack(
    cx: &Ctx,
    raw: Option<&RawStack>,
    project: &str,
    environment: &str,
    is_aws: bool,
) -> Result<StackSpec, ConfigError> {
    let ready_timeout =
        deadline(cx, raw.and_then(|r| r.ready_timeout.as_ref()), "stack.ready_timeout", Duration::from_secs(900))?;
    let storage_class = match raw.and_then(|r| r.storage_class.as_ref()) {
        // On AWS the cluster stage installs the gp3 class; elsewhere the cluster's default.
        None => is_aws.then(|| "gp3".to_string()),
        Some(c) if c.get_ref().is_empty() => None,
        Some(c) if is_dns_label(c.get_ref()) => Some(c.get_ref().clone()),
        Some(c) => {
            return cx.err(
                c.span(),
                "stack.storage_class",
                format!("{:?} is not a StorageClass name", c.get_ref()),
                "use lowercase letters, digits and dashes, or \"\" for the cluster's default class",
            );
        }
    };
    let spec = StackSpec {
        ready_timeout,
        storage_class,
        kafka: kafka(cx, raw.and_then(|r| r.kafka.as_ref()), project, environment)?,
        cassandra: cassandra(cx, raw.and_then(|r| r.cassandra.as_ref()))?,
        spark: spark(cx, raw.and_then(|r| r.spark.as_ref()))?,
    };
    own_namespaces(cx, raw, &spec)?;
    if let Some(pin) = raw.and_then(|r| r.pin_digests.as_ref()).filter(|p| *p.get_ref()) {
        pinned_by_digest(cx, raw, &spec, pin.span())?;
    }
    Ok(spec)
}

/// Each enabled component in a namespace of its own. A namespace is the unit of the stack's
/// isolation: its Pod Security level (Kafka and Cassandra `restricted`, Spark `baseline`, the
/// label is on the Namespace, so one of two components would lose its level or its pods), and
/// its NetworkPolicies (a component's default-deny selects every pod of the namespace, so
/// Cassandra's would cut Spark's egress, and Spark's in-namespace rule would open every
/// Cassandra port to Spark jobs). The error points at a key the user wrote (the defaults
/// differ, so one of the two is written).
fn own_namespaces(cx: &Ctx, raw: Option<&RawStack>, spec: &StackSpec) -> Result<(), ConfigError> {
    let written = |key: &str| -> Option<std::ops::Range<usize>> {
        let r = raw?;
        let v = match key {
            "stack.kafka.namespace" => r.kafka.as_ref()?.namespace.as_ref(),
            "stack.cassandra.namespace" => r.cassandra.as_ref()?.namespace.as_ref(),
            _ => r.spark.as_ref()?.namespace.as_ref(),
        };
        v.map(S::span)
    };
    let taken = [
        ("stack.kafka.namespace", spec.kafka.as_ref().map(|k| k.namespace.as_str())),
        ("stack.cassandra.namespace", spec.cassandra.as_ref().map(|c| c.namespace.as_str())),
        ("stack.spark.namespace", spec.spark.as_ref().map(|s| s.namespace.as_str())),
    ];
    let taken: Vec<(&str, &str)> = taken.into_iter().filter_map(|(k, ns)| Some((k, ns?))).collect();
    for (i, (key, ns)) in taken.iter().enumerate() {
        let Some((first, _)) = taken[..i].iter().find(|(_, other)| other == ns) else { continue };
        let (key, span) = match written(key) {
            Some(span) => (*key, span),
            None => (*first, written(first).unwrap_or_default()),
        };
        let other = if key == *first { taken[i].0 } else { *first };
        return cx.err(
            span,
            key,
            format!("{ns:?} is also the namespace of `{other}`"),
            "give each component a namespace of its own: the Pod Security level and the network policies apply to a whole namespace",
        );
    }
    Ok(())
}

/// `stack.pin_digests = true`: every enabled component's image names its digest
/// (`name:tag@sha256:<64 hex>`), so every node runs the same bytes whatever the registry later
/// points the tag at (docker-library rebuilds `cassandra:5.0` for each base-image update). The
/// digests come from the config, not from a table in tagstack: a table could not be checked
/// offline and would go stale with every rebuild, while the user pins what they tested, and the
/// container runtime refuses an image whose content does not hash to the digest. A tag is
/// kept beside it for people and for Spark (its examples jar is named after the version).
fn pinned_by_digest(
    cx: &Ctx,
    raw: Option<&RawStack>,
    spec: &StackSpec,
    pin_span: std::ops::Range<usize>,
) -> Result<(), ConfigError> {
    let raw_image = |key: &str| -> Option<&S<String>> {
        let r = raw?;
        match key {
            "stack.kafka.image" => r.kafka.as_ref()?.image.as_ref(),
            "stack.cassandra.image" => r.cassandra.as_ref()?.image.as_ref(),
            _ => r.spark.as_ref()?.image.as_ref(),
        }
    };
    let images = [
        ("stack.kafka.image", spec.kafka.as_ref().map(|k| k.image.as_str())),
        ("stack.cassandra.image", spec.cassandra.as_ref().map(|c| c.image.as_str())),
        ("stack.spark.image", spec.spark.as_ref().map(|s| s.image.as_str())),
    ];
    for (key, image) in images {
        let Some(image) = image else { continue };
        if has_digest(image) {
            continue;
        }
        let span = raw_image(key).map_or_else(|| pin_span.clone(), S::span);
        let tagged = image.split('@').next().unwrap_or(image);
        return cx.err(
            span,
            key,
            format!("{image:?} is not pinned by digest, and stack.pin_digests = true"),
            &format!(
                "set {key} = \"{tagged}@sha256:<digest>\"; `docker buildx imagetools inspect {tagged}` prints the digest of the index (\"Digest:\")"
            ),
        );
    }
    Ok(())
}

/// `...@sha256:` and 64 lowercase hex digits (the OCI image spec's digest for sha256).
pub fn has_digest(image: &str) -> bool {
    image.rsplit_once("@sha256:").is_some_and(|(name, hex)| {
        !name.is_empty() && hex.len() == 64 && hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}
