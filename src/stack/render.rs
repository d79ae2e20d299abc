//! What every component of the stack renders with, and what each must provide: the [`Part`]
//! trait (implemented in `kafka.rs`, `cassandra.rs`, `spark.rs`), the strict template
//! environment a component renders its one template in, the labels and pod selectors every
//! template uses, how tagstack applies, and the probe scripts of Kafka (bash) and Cassandra (bash running the
//! image's python3, for TLS) (they
//! stay here because the rendered manifests name this file as their source). Pure: spec in,
//! text out; every output is schema-validated and snapshot-tested.

use anyhow::{Context, Result};

use super::model::{Component, DisruptionCheck, Endpoint, Manifest, OnePerNode, Workload};
use super::smoke::Check;
use crate::config::Spec;

/// How tagstack applies: server-side, owning its fields (so `kubectl edit` drift is taken back).
pub const APPLY: &str = "apply --server-side --force-conflicts --field-manager=tagstack";

/// One enabled component of the stack. Its module owns every decision about it but two: its
/// settings and their defaults (`config::stack`) and the rollout rules that judge its workloads
/// (`readiness.rs`); the component decides *which* workloads and how ready is probed.
pub trait Part {
    fn component(&self) -> Component;
    /// Its one manifest: which template, rendered with which context.
    fn manifest(&self) -> Result<Manifest>;
    /// The StatefulSets and Deployments `up` waits for, in apply order; none means the
    /// component is ready once applied.
    fn workloads(&self) -> Vec<Workload>;
    /// Where its clients connect, from inside the cluster.
    fn endpoint(&self) -> Endpoint;
    /// Files its smoke check applies itself (SparkPi's Job), uploaded beside the manifests and
    /// written by `tagstack render`, but not applied by `up`.
    fn smoke_manifests(&self) -> Result<Vec<Manifest>> {
        Ok(Vec::new())
    }
    /// Its smoke check as command lines for the control plane; `nonce` makes names and
    /// payloads unique per run, so what an earlier run left can never pass for this one.
    fn smoke(&self, kubectl: &str, stack_dir: &str, nonce: &str) -> Check;
    /// The scripts `up` runs on the control plane, in order, before it applies the manifest (e.g.
    /// creating the Secrets the pods mount, which never pass through tagstack).
    fn before_apply(&self, _kubectl: &str, _stack_dir: &str) -> Result<Vec<Manifest>> {
        Ok(Vec::new())
    }
    /// A script `up` runs on the control plane once the component is ready (e.g. replacing a
    /// default superuser). None: nothing to run.
    fn after_ready(&self, _kubectl: &str, _stack_dir: &str) -> Result<Option<Manifest>> {
        Ok(None)
    }
    /// What must hold before a node running one of its pods is drained (its PodDisruptionBudget
    /// only counts Ready pods; this asks the component itself). None: nothing beyond the budget.
    fn disruption_check(&self, _kubectl: &str) -> Option<DisruptionCheck> {
        None
    }
    /// Its StatefulSets whose template requires one node per pod (`podAntiAffinity`
    /// `requiredDuringSchedulingIgnoredDuringExecution` on `kubernetes.io/hostname`), which
    /// `plan` and `up` refuse to run with fewer workers. A *preferred* anti-affinity (Kafka's
    /// and Cassandra's: two pods may share a node when nodes are short) is not one; a unit test
    /// keeps this list true to the templates.
    fn one_per_node(&self) -> Vec<OnePerNode> {
        Vec::new()
    }
}

/// Renders one component's template (`name`, `source`) in tagstack's strict environment.
pub fn template((name, source): (&'static str, &'static str), ctx: minijinja::Value) -> Result<String> {
    crate::templates::environment(&[(name, source)])?
        .get_template(name)?
        .render(ctx)
        .with_context(|| format!("rendering {name}"))
}

/// The label keys tagstack sets and selects by, spelled once (the templates' pod labels, which
/// must match [`pod_selector`], are checked by a snapshot test).
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_PART_OF: &str = "app.kubernetes.io/part-of";
/// With the value [`MANAGER`]: tagstack applied the object.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// With the environment's cluster name as its value: which environment the object belongs to.
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const MANAGER: &str = "tagstack";

/// `app.kubernetes.io/name=<app>,app.kubernetes.io/instance=<cluster>[,app.kubernetes.io/component=<c>]`
pub fn pod_selector(spec: &Spec, app: &str, component: Option<&str>) -> String {
    let mut sel = format!("{LABEL_NAME}={app},{LABEL_INSTANCE}={}", spec.id.cluster_name());
    if let Some(c) = component {
        sel.push_str(&format!(",{LABEL_COMPONENT}={c}"));
    }
    sel
}

/// The labels on every object tagstack applies; managed-by and instance are how `up`,
/// `status` and `down` find them again ([`owned_selector`], [`is_owned`]).
pub fn labels(spec: &Spec) -> String {
    format!("{LABEL_PART_OF}: {MANAGER}\n{LABEL_MANAGED_BY}: {MANAGER}\n{LABEL_INSTANCE}: {}", spec.id.cluster_name())
}

/// The label selector of everything tagstack applied for the environment named `cluster`.
pub fn owned_selector(cluster: &str) -> String {
    format!("{LABEL_MANAGED_BY}={MANAGER},{LABEL_INSTANCE}={cluster}")
}

/// Whether an object's labels (`label(key)` is its value) say tagstack applied it for `cluster`.
pub fn is_owned<'a>(label: impl Fn(&str) -> Option<&'a str>, cluster: &str) -> bool {
    label(LABEL_INSTANCE) == Some(cluster) && label(LABEL_MANAGED_BY) == Some(MANAGER)
}

/// What the bash probe starts with: C locale, the port, a 4 s deadline, `fail` naming the
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

/// The readiness and startup check of Kafka: every listener speaks TLS (the client one
/// SASL_SSL, the controller one SSL with client certificates), so the check sends a TLS 1.2
/// ClientHello over bash's /dev/tcp to the pod's own listener and reads the first byte of the
/// answer. Ready means a handshake record (22: ServerHello) or an alert (21): either way the
/// broker's network layer accepted the connection and its TLS engine read our hello (Kafka 4
/// binds its listeners only once the node can serve). The hello offers
/// TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 and TLS_RSA_WITH_AES_128_GCM_SHA256 with the
/// secp256r1 group and rsa_pkcs1_sha256 signatures (RFC 5246 7.4.1.2, RFC 8422 5.1); no
/// certificate is checked, nothing is authenticated, so the probe needs no secret. Only bash
/// builtins, bounded by its own 4 s deadline.
pub const KAFKA_PROBE: &str = concat!(
    "# Kafka TLS check (tagstack, src/stack/render.rs): only bash builtins, 4 s at most.\n",
    probe_prelude!("kafka"),
    r#"exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "connection refused"
# Record: handshake (22), TLS 1.0 record version, 71 bytes; ClientHello (1), 67 bytes: version
# TLS 1.2, random "tagstack" x 4, no session id, 2 cipher suites, no compression, extensions
# supported_groups, ec_point_formats, signature_algorithms.
printf '\x16\x03\x01\x00\x47\x01\x00\x00\x43\x03\x03tagstacktagstacktagstacktagstack\x00\x00\x04\xc0\x2f\x00\x9c\x01\x00\x00\x16\x00\x0a\x00\x04\x00\x02\x00\x17\x00\x0b\x00\x02\x01\x00\x00\x0d\x00\x04\x00\x02\x04\x01' >&3 ||
  fail "cannot send"
byte || fail "no TLS answer within 4 s"
[ "$b" -eq 22 ] || [ "$b" -eq 21 ] || fail "not a TLS answer (first byte $b)"
"#
);

/// The readiness and startup check of Cassandra: a CQL OPTIONS frame (protocol v4) over TLS to
/// the native port, which Cassandra opens only once the node has joined the ring and finished
/// bootstrap; ready means a SUPPORTED response to our stream id. Client encryption is required
/// (`optional: false`), so the check speaks TLS: the image's python3 (docker-library/cassandra
/// 5.0/Dockerfile installs it for cqlsh) with its ssl module, verifying the node's certificate
/// against the environment's CA (no host-name check, as cqlsh), no nodetool JVM. Its own deadline is
/// 3.5 s, so that the interpreter's start fits in the probe's 5 s `timeoutSeconds`. `__CA__` is
/// the CA file's path: [`cassandra_probe`].
pub const CASSANDRA_PROBE: &str = r#"# Cassandra CQL OPTIONS check over TLS (tagstack, src/stack/render.rs): python3, 3.5 s of its own.
exec python3 -c '
import socket, ssl, sys, time
port, ca = int(sys.argv[1]), sys.argv[2]
deadline = time.monotonic() + 3.5
def fail(why):
    sys.stderr.write("cassandra on 127.0.0.1:%d: %s\n" % (port, why))
    sys.exit(1)
def left():
    t = deadline - time.monotonic()
    if t <= 0:
        fail("no answer to OPTIONS within 3.5 s")
    return t
try:
    raw = socket.create_connection(("127.0.0.1", port), timeout=left())
except OSError as e:
    fail("native transport not listening (starting or bootstrapping): %s" % e)
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
try:
    tls = ctx.wrap_socket(raw)
    # Protocol v4 request header: version 0x04, flags 0, stream 0x0074, opcode OPTIONS (0x05), body length 0.
    tls.sendall(b"\x04\x00\x00\x74\x05\x00\x00\x00\x00")
    h = b""
    while len(h) < 5:
        tls.settimeout(left())
        chunk = tls.recv(5 - len(h))
        if not chunk:
            fail("connection closed before an answer")
        h += chunk
except socket.timeout:
    fail("no answer to OPTIONS within 3.5 s")
except OSError as e:
    fail("TLS: %s" % e)
# A response (0x84), to stream 0x0074, opcode SUPPORTED (0x06).
if h[0] != 0x84 or h[2] != 0 or h[3] != 0x74 or h[4] != 6:
    fail("not a SUPPORTED answer: %s" % " ".join(str(b) for b in h))
' __PORT__ "__CA__"
"#;

/// [`CASSANDRA_PROBE`] on `port`, trusting the CA file `ca`.
pub fn cassandra_probe(port: u16, ca: &str) -> String {
    probe_script(CASSANDRA_PROBE, port).replace("__CA__", ca)
}

/// A probe script with its port filled in: the third argument of `bash -c`.
pub fn probe_script(script: &str, port: u16) -> String {
    script.replace("__PORT__", &port.to_string())
}
