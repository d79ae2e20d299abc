//! Cassandra: its manifest (`templates/stack/cassandra.yaml.j2` with the gossip seeds, the CQL
//! probe, its JVM budget and authentication on), the StatefulSet `up` waits for, the contact
//! points, its smoke check (one CQL write and read at LOCAL_QUORUM, logged in as tagstack's
//! superuser), and the two scripts of its authentication (`cassandra-secrets.sh.j2` before the
//! apply: the superuser's Secret; `cassandra-roles.sh.j2` once ready: that superuser replaces the
//! default one). Pure: no secret ever passes through here, only the commands that read it on
//! the control plane.

use anyhow::Result;
use minijinja::context;

use super::model::{Component, DisruptionCheck, Endpoint, Manifest, Workload, WorkloadKind};
use super::render::{APPLY, Part, cassandra_probe, labels, pod_selector, template};
use super::smoke::{Check, Step, exec, sh_quote};
use super::{cassandra_ring, tls};
use crate::config::{CassandraSpec, Jvm, JvmMemory, Spec};

const TEMPLATE: (&str, &str) = ("cassandra.yaml", include_str!("../../templates/stack/cassandra.yaml.j2"));
const SECRETS: (&str, &str) = ("cassandra-secrets.sh", include_str!("../../templates/stack/cassandra-secrets.sh.j2"));
const ROLES: (&str, &str) = ("cassandra-roles.sh", include_str!("../../templates/stack/cassandra-roles.sh.j2"));

/// The Secret (in Cassandra's namespace) holding the superuser tagstack creates: `username`,
/// `password`. Made on the control plane by `cassandra-secrets.sh`, never by this process.
pub const ADMIN_SECRET: &str = "cassandra-admin";
/// The superuser that replaces Cassandra's default `cassandra` role.
pub const ADMIN_USER: &str = "tagstack";
/// Cassandra's server certificate (`tls.rs`): `certificate`, `keystore` (key + certificate, the
/// PEM file PEMBasedSslContextFactory reads), `ca`.
pub const TLS_SECRET: &str = "cassandra-tls";
/// Where the pods mount [`TLS_SECRET`] (`keystore.pem`, `ca.pem`); a macro so that
/// [`CQLSH_TLS`] spells it once too.
macro_rules! tls_dir {
    () => {
        "/etc/tagstack/tls"
    };
}
pub const TLS_DIR: &str = tls_dir!();
/// Where the pods mount [`ADMIN_SECRET`].
const ADMIN_DIR: &str = "/etc/tagstack/cassandra-admin";
/// How often the roles script tries the default superuser (2 s apart) before it gives up: it
/// appears once the ring has formed, after CassandraRoleManager's setup delay (10 s by default,
/// `cassandra.superuser_setup_delay_ms`).
const DEFAULT_ROLE_TRIES: u32 = 90;

/// The start of the container's command: cassandra.yaml's top-level `authenticator:`,
/// `authorizer:`, `client_encryption_options:` and `server_encryption_options:` entries (a
/// one-line value or a block of indented lines) are dropped and tagstack's appended, written back
/// in place as the image's entrypoint does (`_sed-in-place`: the file may be a bind mount). The
/// markers the stand-in and the migration checks look for are the appended `class_name:
/// PasswordAuthenticator` and `internode_encryption: all`.
///
/// Both encryptions use PEMBasedSslContextFactory with files (apache/cassandra
/// `security/PEMBasedSslContextFactory.java`: `keystore` is a PEM file holding the unencrypted
/// PKCS#8 private key and its certificate chain, `truststore` a PEM of trusted certificates, no
/// passwords; file-based material is hot-reloaded, so a renewed Secret reaches a running node
/// without a restart). Keys as Cassandra 5.0's conf/cassandra.yaml spells them:
/// - client: `optional: false`, plaintext refused on 9042 (step 2 of enabling client encryption in
///   that file's comments; the probes, smoke and the roles script all speak TLS).
/// - internode: `internode_encryption: all` on the storage port (7000;
///   `legacy_ssl_storage_port_enabled: false`, the separate 7001 port is only for upgrades from
///   3.x), `optional: false` ("should only be true while in unencrypted or transitional
///   operation"), `require_client_auth: true` (mutual TLS: outbound connections present
///   `outbound_keystore`, which defaults to `keystore`, so the one certificate carries both
///   serverAuth and clientAuth, `tls.rs`), no `require_endpoint_verification` (peers connect by
///   pod IP; the certificate names pods by DNS). Every node trusts the environment's CA only.
const SECURITY_CONFIG: &str = r#"conf="$CASSANDRA_CONF/cassandra.yaml"
tmp="$(mktemp)"
{
  awk '/^(authenticator|authorizer|client_encryption_options|server_encryption_options):/ { skip = 1; next }
       skip && /^([ \t]|$)/ { next }
       { skip = 0; print }' "$conf"
  cat <<'SECURITY'
authenticator:
  class_name: PasswordAuthenticator
authorizer:
  class_name: CassandraAuthorizer
client_encryption_options:
  enabled: true
  optional: false
  ssl_context_factory:
    class_name: org.apache.cassandra.security.PEMBasedSslContextFactory
  keystore: __TLS_DIR__/keystore.pem
  truststore: __TLS_DIR__/ca.pem
  require_client_auth: false
server_encryption_options:
  internode_encryption: all
  optional: false
  legacy_ssl_storage_port_enabled: false
  ssl_context_factory:
    class_name: org.apache.cassandra.security.PEMBasedSslContextFactory
  keystore: __TLS_DIR__/keystore.pem
  truststore: __TLS_DIR__/ca.pem
  require_client_auth: true
  require_endpoint_verification: false
SECURITY
} > "$tmp"
cat "$tmp" > "$conf"
rm -f "$tmp""#;

/// Whether a live StatefulSet's container text (command and args) runs with authentication:
/// an environment created before tagstack turned it on does not.
pub fn runs_with_auth(container_text: &str) -> bool {
    container_text.contains("class_name: PasswordAuthenticator")
}

/// Whether a live StatefulSet's container text runs with TLS required: internode encryption on
/// (and, with it, client encryption `optional: false`). One created with client TLS optional and
/// plaintext gossip does not.
pub fn runs_with_required_tls(container_text: &str) -> bool {
    container_text.contains("internode_encryption: all")
}

/// Cassandra as configured in `[stack.cassandra]`.
pub struct Cassandra<'a> {
    spec: &'a Spec,
    c: &'a CassandraSpec,
    /// How its ring starts: [`cassandra_ring::STEADY`] unless `up` found a new ring.
    ring: cassandra_ring::Plan,
}

impl<'a> Cassandra<'a> {
    /// `None` when Cassandra is disabled.
    pub fn of(spec: &'a Spec) -> Option<Cassandra<'a>> {
        spec.stack.cassandra.as_ref().map(|c| Cassandra { spec, c, ring: cassandra_ring::STEADY })
    }

    /// The same component, rendered for `ring` (`cassandra_ring::decide`).
    pub fn with_ring(self, ring: cassandra_ring::Plan) -> Cassandra<'a> {
        Cassandra { ring, ..self }
    }
}

/// The first two pods (one when there is only one) seed the gossip.
pub fn seeds(namespace: &str, replicas: u32) -> String {
    (0..replicas.clamp(1, 2))
        .map(|i| format!("cassandra-{i}.cassandra-headless.{namespace}.svc.cluster.local"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Part for Cassandra<'_> {
    fn component(&self) -> Component {
        Component::Cassandra
    }

    fn manifest(&self) -> Result<Manifest> {
        let (spec, c) = (self.spec, self.c);
        let content = template(
            TEMPLATE,
            context! {
                cluster_name => spec.id.cluster_name(),
                labels => labels(spec),
                storage_class => spec.stack.storage_class,
                c => c,
                seeds => seeds(&c.namespace, c.replicas),
                jvm => JvmMemory::new(Jvm::Cassandra, c.heap_mib, &c.resources.cpu),
                jvm_flags => JvmMemory::new(Jvm::Cassandra, c.heap_mib, &c.resources.cpu).flags(),
                probe => cassandra_probe(9042, &format!("{TLS_DIR}/ca.pem")),
                security_config => SECURITY_CONFIG.replace("__TLS_DIR__", TLS_DIR),
                ring_start => cassandra_ring::start_script(),
                ring_dir => cassandra_ring::DIR,
                ring_configmap => cassandra_ring::CONFIGMAP,
                pod_management => self.ring.policy.as_str(),
                new_ring_tokens => (self.ring.start == cassandra_ring::Start::New)
                    .then(|| cassandra_ring::token_entries(c.replicas)),
                tls_dir => TLS_DIR,
                tls_secret => TLS_SECRET,
                admin_dir => ADMIN_DIR,
                admin_secret => ADMIN_SECRET,
                jmx => crate::monitoring::deploy::jmx_agent(spec, crate::monitoring::content::Jvm::Cassandra),
            },
        )?;
        Ok(Manifest { component: Component::Cassandra, file: TEMPLATE.0.into(), content })
    }

    /// `cassandra-secrets.sh`: the namespace (the manifest's first document) and the superuser's
    /// Secret when absent; then `tls.sh`: the environment's CA and Cassandra's certificate; both
    /// before the pods that mount them are applied.
    fn before_apply(&self, kubectl: &str, stack_dir: &str) -> Result<Vec<Manifest>> {
        let (spec, c) = (self.spec, self.c);
        let manifest = self.manifest()?;
        let namespace_doc = manifest.content.split("\n---\n").next().unwrap_or_default().trim_end().to_string();
        let secret_head = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {ADMIN_SECRET}\n  namespace: {ns}\n  labels:\n{labels}\ntype: Opaque\ndata:",
            ns = c.namespace,
            labels = labels(spec).lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n"),
        );
        let content = template(
            SECRETS,
            context! {
                kubectl => kubectl,
                apply => APPLY,
                dir => format!("{stack_dir}/secrets"),
                ns => c.namespace,
                secret => ADMIN_SECRET,
                username => ADMIN_USER,
                namespace_doc => namespace_doc,
                secret_head => secret_head,
            },
        )?;
        let ns = &c.namespace;
        let tls = tls::script(
            spec,
            kubectl,
            stack_dir,
            &tls::Request {
                namespace: ns,
                secret: TLS_SECRET,
                what: "Cassandra's native transport (CQL)",
                common_name: &format!("cassandra-client.{ns}.svc.cluster.local"),
                required: (0..c.replicas)
                    .map(|i| format!("cassandra-{i}.cassandra-headless.{ns}.svc.cluster.local"))
                    .collect(),
                // PEMBasedSslContextFactory reloads file-based material (docs/security.md).
                restart: None,
                extra: vec![
                    format!("*.cassandra-headless.{ns}.svc.cluster.local"),
                    format!("cassandra-client.{ns}.svc.cluster.local"),
                    format!("cassandra-client.{ns}.svc"),
                    "localhost".into(),
                ],
            },
        )?;
        Ok(vec![
            Manifest { component: Component::Cassandra, file: SECRETS.0.into(), content },
            Manifest { component: Component::Cassandra, file: "cassandra-tls.sh".into(), content: tls },
        ])
    }

    /// `cassandra-roles.sh`: tagstack's superuser replaces the default one and `system_auth`
    /// gets the data centre's replication factor (the smoke keyspace's: up to 3).
    fn after_ready(&self, kubectl: &str, _stack_dir: &str) -> Result<Option<Manifest>> {
        let c = self.c;
        let content = template(
            ROLES,
            context! {
                kubectl => kubectl,
                ns => c.namespace,
                pod => "cassandra-0",
                secret => ADMIN_SECRET,
                username => ADMIN_USER,
                dc => c.datacenter,
                rf => c.replicas.min(3),
                tries => DEFAULT_ROLE_TRIES,
                cqlsh => CQLSH_TLS,
            },
        )?;
        Ok(Some(Manifest { component: Component::Cassandra, file: ROLES.0.into(), content }))
    }

    fn workloads(&self) -> Vec<Workload> {
        vec![Workload {
            component: Component::Cassandra,
            kind: WorkloadKind::StatefulSet,
            namespace: self.c.namespace.clone(),
            name: "cassandra".into(),
            replicas: self.c.replicas,
            pod_selector: pod_selector(self.spec, "cassandra", None),
        }]
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint {
            component: Component::Cassandra,
            what: "contact points",
            address: format!("cassandra-client.{}.svc.cluster.local:9042", self.c.namespace),
        }
    }

    /// A Cassandra node is about to stop: every other node must be Up and Normal (`UN` in
    /// `nodetool status`), or a replica set loses a second member and QUORUM reads and writes
    /// fail for its token ranges. The JVM of nodetool is kept small as in the preStop hook.
    fn disruption_check(&self, kubectl: &str) -> Option<DisruptionCheck> {
        let c = self.c;
        Some(DisruptionCheck {
            component: Component::Cassandra,
            namespace: c.namespace.clone(),
            what: "every node Up and Normal",
            command: status(kubectl, c),
            failing: not_up_normal,
        })
    }

    fn smoke(&self, kubectl: &str, _stack_dir: &str, nonce: &str) -> Check {
        let c = self.c;
        let value = format!("tagstack-{nonce}");
        let rf = c.replicas.min(3);
        let cql = format!(
            "CONSISTENCY LOCAL_QUORUM; CREATE KEYSPACE IF NOT EXISTS tagstack_smoke WITH replication = {{'class': 'NetworkTopologyStrategy', '{dc}': {rf}}}; \
             CREATE TABLE IF NOT EXISTS tagstack_smoke.roundtrip (id text PRIMARY KEY, value text); \
             INSERT INTO tagstack_smoke.roundtrip (id, value) VALUES ('{nonce}', '{value}'); \
             SELECT value FROM tagstack_smoke.roundtrip WHERE id = '{nonce}';",
            dc = c.datacenter,
        );
        Check {
            component: Component::Cassandra,
            name: "CQL write and read",
            steps: vec![Step {
                what: format!("cqlsh on cassandra-0 as {ADMIN_USER}"),
                command: cqlsh_as_admin(kubectl, c, &["-e", &cql]),
                expect: Some(value),
            }],
            cleanup: None,
        }
    }
}

/// cqlsh over TLS, verifying the node's certificate against the environment's CA (cqlshlib
/// `sslhandling.ssl_settings`: `--ssl`, SSL_CERTFILE, validation on by default; no host name
/// check).
const CQLSH_TLS: &str = concat!("env SSL_CERTFILE=", tls_dir!(), "/ca.pem cqlsh --ssl");

/// `cqlsh` in cassandra-0 logged in as [`ADMIN_USER`]: the password is read from
/// [`ADMIN_SECRET`] by the control plane's shell, so the command line tagstack builds, runs and
/// logs never holds it.
pub fn cqlsh_as_admin(kubectl: &str, c: &CassandraSpec, args: &[&str]) -> String {
    let password = format!(
        "\"$({kubectl} get secret {ADMIN_SECRET} -n {ns} -o jsonpath='{{.data.password}}' | base64 -d)\"",
        ns = c.namespace
    );
    let mut line = format!(
        "{kubectl} exec -n {ns} cassandra-0 -c cassandra -- {CQLSH_TLS} -u {ADMIN_USER} -p {password}",
        ns = c.namespace
    );
    for a in args {
        line.push(' ');
        line.push_str(&sh_quote(a));
    }
    line
}

/// The node lines of `nodetool status`: the first column is U(p)/D(own) then
/// N(ormal)/L(eaving)/J(oining)/M(oving), as its legend says.
fn node_lines(status: &str) -> impl Iterator<Item = &str> {
    status.lines().map(str::trim).filter(|l| {
        let mut c = l.chars();
        matches!(c.next(), Some('U' | 'D'))
            && matches!(c.next(), Some('N' | 'L' | 'J' | 'M'))
            && c.next().is_some_and(char::is_whitespace)
    })
}

/// The node lines of `nodetool status` whose state is not `UN` (Up/Normal).
pub fn not_up_normal(output: &str) -> Vec<String> {
    node_lines(output).filter(|l| !l.starts_with("UN")).map(str::to_string).collect()
}

/// `nodetool status` as seen from `cassandra-0`.
pub fn status(kubectl: &str, c: &CassandraSpec) -> String {
    exec(kubectl, &c.namespace, "cassandra-0", "cassandra", false, &["env", "MAX_HEAP_SIZE=128M", "nodetool", "status"])
}

/// `nodetool decommission` in the pod of `ordinal`: the node streams its token ranges to the
/// others and leaves the ring (Cassandra's "Removing nodes" docs). Cassandra itself refuses
/// while a keyspace's replication factor exceeds the nodes that would be left (5.0's
/// `StorageService.decommission`, unless `--force`, which tagstack never passes). A node that
/// already left answers a second decommission with exit 0.
pub fn decommission(kubectl: &str, c: &CassandraSpec, ordinal: u32) -> String {
    exec(
        kubectl,
        &c.namespace,
        &format!("cassandra-{ordinal}"),
        "cassandra",
        false,
        &["env", "MAX_HEAP_SIZE=128M", "nodetool", "decommission"],
    )
}

/// The claim of the pod `ordinal` (the StatefulSet's `data` volumeClaimTemplate): a StatefulSet
/// that shrinks keeps it, and with it an EBS volume and a decommissioned node's data.
pub fn claim(ordinal: u32) -> String {
    format!("data-cassandra-{ordinal}")
}

/// The addresses in `nodetool status`'s node lines: the ring's members.
pub fn ring_addresses(status: &str) -> Vec<String> {
    node_lines(status).filter_map(|l| l.split_whitespace().nth(1).map(str::to_string)).collect()
}
