//! Kafka in KRaft mode: its manifest (`templates/stack/kafka.yaml.j2` with one StatefulSet per
//! set of roles, the static quorum, the replication it can afford, its JVM budget and its
//! security: TLS on every listener with the environment's CA, SASL/SCRAM for clients, ACLs on),
//! the StatefulSets `up` waits for, the bootstrap servers, its smoke check (one message produced
//! on the first broker and consumed on the last, as the admin user over SASL_SSL), and its users
//! (`kafka-users.sh.j2`: a SCRAM credential whose password is made on the control plane into a
//! Secret, and its ACLs), and the client.properties a user connects with. Pure: no secret ever
//! passes through here, only the commands that read it on the control plane (and
//! [`client_properties`], which formats what `ops` read for stdout).

use anyhow::Result;
use minijinja::context;
use serde::Serialize;

use super::model::{Component, DisruptionCheck, Endpoint, Manifest, Workload, WorkloadKind};
use super::render::{APPLY, KAFKA_PROBE, Part, labels, pod_selector, probe_script, template};
use super::smoke::{Check, Step, exec, sh_quote};
use super::tls;
use crate::config::{Jvm, JvmMemory, KafkaSpec, Spec};

const TEMPLATE: (&str, &str) = ("kafka.yaml", include_str!("../../templates/stack/kafka.yaml.j2"));
const USERS: (&str, &str) = ("kafka-users.sh", include_str!("../../templates/stack/kafka-users.sh.j2"));

/// Kafka's certificate (`tls.rs`): `certificate`, `keystore` (the unencrypted PKCS#8 key and
/// its certificate, the PEM keystore file of KIP-651), `ca`. One certificate for every Kafka
/// node: it names each pod, and its subject is the nodes' principal ([`node_principal`]).
pub const TLS_SECRET: &str = "kafka-tls";
/// Where the pods mount [`TLS_SECRET`] (`keystore.pem`, `ca.pem`).
pub const TLS_DIR: &str = "/etc/tagstack/tls";
/// The admin user's Secret (`username`, `password`), made on the control plane by
/// `kafka-users.sh` once Kafka is ready; a super user.
pub const ADMIN_SECRET: &str = "kafka-admin";
pub const ADMIN_USER: &str = "admin";
/// The one SASL mechanism of the client listener (docs/security.md: why SCRAM, not mTLS).
pub const SASL_MECHANISM: &str = "SCRAM-SHA-512";
/// CLIENT (SASL_SSL) for clients, INTERNAL (SSL, client certificates required) between
/// brokers, CONTROLLER (SSL, client certificates required) for the KRaft quorum.
pub const CLIENT_PORT: u16 = 9092;
pub const CONTROLLER_PORT: u16 = 9093;
pub const INTERNAL_PORT: u16 = 9094;
const PROTOCOL_MAP: &str = "CONTROLLER:SSL,INTERNAL:SSL,CLIENT:SASL_SSL";
/// The client configuration tagstack's own tools use inside a Kafka pod, against the pod's
/// INTERNAL listener with the node's certificate (a super user): no password involved. Written
/// to the pod's /tmp (an emptyDir) by [`put_file`] before each use.
const INTERNAL_CONFIG: &str = "/tmp/tagstack-internal.properties";
/// The admin user's client configuration for smoke, written and removed by the check.
const ADMIN_CONFIG: &str = "/tmp/tagstack-admin.properties";

/// The Secret of a user made by `tagstack kafka user add NAME`.
pub fn user_secret(name: &str) -> String {
    if name == ADMIN_USER { ADMIN_SECRET.to_string() } else { format!("kafka-user-{name}") }
}

/// The certificate's common name: the bootstrap Service's name.
fn common_name(k: &KafkaSpec) -> String {
    format!("kafka-bootstrap.{}.svc.cluster.local", k.namespace)
}

/// The principal of every Kafka node on the SSL listeners: the certificate's subject as
/// RFC 2253 prints it (most specific first), which the DEFAULT rule of
/// `ssl.principal.mapping.rules` keeps as is (apache/kafka DefaultKafkaPrincipalBuilder,
/// SslPrincipalMapper).
pub fn node_principal(k: &KafkaSpec) -> String {
    format!("User:CN={},O=tagstack", common_name(k))
}

/// `super.users`: the admin and the nodes (semicolon-separated: a DN holds commas).
fn super_users(k: &KafkaSpec) -> String {
    format!("User:{ADMIN_USER};{}", node_principal(k))
}

/// Whether a live Kafka StatefulSet's `KAFKA_LISTENER_SECURITY_PROTOCOL_MAP` still has a
/// PLAINTEXT listener: an environment created before TLS and SCRAM, whose clients connect
/// without either.
pub fn runs_plaintext(protocol_map: &str) -> bool {
    protocol_map.split(',').any(|l| l.rsplit(':').next().is_some_and(|p| p.trim() == "PLAINTEXT"))
}

/// Every Kafka pod's headless-Service name: what the certificate must name (the advertised
/// listeners and the quorum voters use them, and clients check them).
pub fn pod_names(k: &KafkaSpec) -> Vec<String> {
    sets(k)
        .iter()
        .flat_map(|set| {
            (0..set.replicas).map(move |i| format!("{}-{i}.kafka-headless.{}.svc.cluster.local", set.name, k.namespace))
        })
        .collect()
}

/// `kubectl exec -i` of a shell that writes its stdin to `path` in the pod, readable by the
/// pod's user only: how a client configuration reaches a Kafka pod without a command line.
fn put_file(kubectl: &str, ns: &str, pod: &str, path: &str) -> String {
    exec(kubectl, ns, pod, "kafka", true, &["/bin/sh", "-c", &format!("umask 077 && cat > {path}")])
}

/// The client properties of the INTERNAL listener (mutual TLS with the node's own PEM files).
fn internal_properties() -> Vec<String> {
    vec![
        "security.protocol=SSL".into(),
        "ssl.keystore.type=PEM".into(),
        format!("ssl.keystore.location={TLS_DIR}/keystore.pem"),
        "ssl.truststore.type=PEM".into(),
        format!("ssl.truststore.location={TLS_DIR}/ca.pem"),
    ]
}

/// A command line writing [`INTERNAL_CONFIG`] into `pod`.
fn put_internal_config(kubectl: &str, ns: &str, pod: &str) -> String {
    let lines: Vec<String> = internal_properties().iter().map(|l| sh_quote(l)).collect();
    format!("printf '%s\\n' {} | {}", lines.join(" "), put_file(kubectl, ns, pod, INTERNAL_CONFIG))
}

/// A command line writing [`ADMIN_CONFIG`] into `pod`: SASL_SSL with the admin's SCRAM
/// password, which the control plane's shell reads from [`ADMIN_SECRET`] into printf (a bash
/// builtin: no process holds it on its command line).
fn put_admin_config(kubectl: &str, ns: &str, pod: &str) -> String {
    let fixed = [
        "security.protocol=SASL_SSL".to_string(),
        format!("sasl.mechanism={SASL_MECHANISM}"),
        "ssl.truststore.type=PEM".into(),
        format!("ssl.truststore.location={TLS_DIR}/ca.pem"),
    ];
    let fixed: Vec<String> = fixed.iter().map(|l| sh_quote(l)).collect();
    format!(
        "{{ printf '%s\\n' {fixed}; printf 'sasl.jaas.config={JAAS} username=\"%s\" password=\"%s\";\\n' {ADMIN_USER} \"$({kubectl} get secret {ADMIN_SECRET} -n {ns} -o jsonpath='{{.data.password}}' | base64 -d)\"; }} | {put}",
        fixed = fixed.join(" "),
        put = put_file(kubectl, ns, pod, ADMIN_CONFIG),
    )
}

/// The SCRAM login module a client names in `sasl.jaas.config`.
const JAAS: &str = "org.apache.kafka.common.security.scram.ScramLoginModule required";

/// Kafka as configured in `[stack.kafka]`.
pub struct Kafka<'a> {
    spec: &'a Spec,
    k: &'a KafkaSpec,
}

impl<'a> Kafka<'a> {
    /// `None` when Kafka is disabled.
    pub fn of(spec: &'a Spec) -> Option<Kafka<'a>> {
        spec.stack.kafka.as_ref().map(|k| Kafka { spec, k })
    }
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

fn sets(k: &KafkaSpec) -> Vec<KafkaSet> {
    if k.controllers == 0 {
        return vec![KafkaSet {
            name: "kafka",
            component: "broker",
            replicas: k.brokers,
            roles: "broker,controller",
            listeners: "CLIENT://:9092,INTERNAL://:9094,CONTROLLER://:9093",
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
            listeners: "CLIENT://:9092,INTERNAL://:9094",
            broker: true,
            controller: false,
            node_id_offset: BROKER_ID_OFFSET,
            probe_port: 9092,
            probe: probe_script(KAFKA_PROBE, 9092),
        },
    ]
}

/// `0@kafka-0.kafka-headless.<ns>.svc.cluster.local:9093,...`: the static KRaft quorum. `up`
/// compares it with the running StatefulSets' before applying (a quorum cannot change in place).
pub fn voters(k: &KafkaSpec) -> String {
    let (set, count) = if k.controllers == 0 { ("kafka", k.brokers) } else { ("kafka-controller", k.controllers) };
    (0..count)
        .map(|i| format!("{i}@{set}-{i}.kafka-headless.{}.svc.cluster.local:9093", k.namespace))
        .collect::<Vec<_>>()
        .join(",")
}

/// Replicas of every topic (and of Kafka's internal ones): three where there are brokers for it.
pub fn replication_factor(k: &KafkaSpec) -> u32 {
    k.brokers.min(3)
}

impl Part for Kafka<'_> {
    fn component(&self) -> Component {
        Component::Kafka
    }

    fn manifest(&self) -> Result<Manifest> {
        let (spec, k) = (self.spec, self.k);
        let replication_factor = replication_factor(k);
        let content = template(
            TEMPLATE,
            context! {
                cluster_name => spec.id.cluster_name(),
                labels => labels(spec),
                storage_class => spec.stack.storage_class,
                k => k,
                sets => sets(k),
                voters => voters(k),
                replication_factor => replication_factor,
                // With one or two brokers a write must not wait for a replica that cannot exist.
                min_insync => if replication_factor >= 3 { 2 } else { 1 },
                jvm => JvmMemory::new(Jvm::Kafka, k.heap_mib, &k.resources.cpu),
                jvm_flags => JvmMemory::new(Jvm::Kafka, k.heap_mib, &k.resources.cpu).flags(),
                jmx => crate::monitoring::deploy::jmx_agent(spec, crate::monitoring::content::Jvm::Kafka),
                tls_secret => TLS_SECRET,
                tls_dir => TLS_DIR,
                protocol_map => PROTOCOL_MAP,
                sasl_mechanism => SASL_MECHANISM,
                super_users => super_users(k),
                node_principal => node_principal(k),
            },
        )?;
        Ok(Manifest { component: Component::Kafka, file: TEMPLATE.0.into(), content })
    }

    /// The namespace (the manifest's first document), then `tls.sh`: the environment's CA and
    /// Kafka's certificate, before the pods that mount it are applied.
    fn before_apply(&self, kubectl: &str, stack_dir: &str) -> Result<Vec<Manifest>> {
        let (spec, k) = (self.spec, self.k);
        let manifest = self.manifest()?;
        let namespace_doc = manifest.content.split("\n---\n").next().unwrap_or_default().trim_end().to_string();
        let ns = &k.namespace;
        let namespace = format!(
            "#!/usr/bin/env bash\n# Kafka's namespace, before its certificate's Secret is made in it (the same document kafka.yaml\n# starts with, applied again with it).\nset -euo pipefail\nmkdir -p {dir}\ncat > {dir}/{ns}-namespace.yaml <<'NAMESPACE'\n{namespace_doc}\nNAMESPACE\n{kubectl} {APPLY} -f {dir}/{ns}-namespace.yaml >/dev/null\n",
            dir = format!("{stack_dir}/secrets"),
        );
        let mut extra = vec![format!("*.kafka-headless.{ns}.svc.cluster.local")];
        extra.extend([
            common_name(k),
            format!("kafka-bootstrap.{ns}.svc"),
            format!("kafka-bootstrap.{ns}"),
            "localhost".into(),
        ]);
        let tls = tls::script(
            spec,
            kubectl,
            stack_dir,
            &tls::Request {
                namespace: ns,
                secret: TLS_SECRET,
                what: "Kafka's listeners (clients, brokers, controllers)",
                common_name: &common_name(k),
                required: pod_names(k),
                extra,
                // Kafka reads its PEM key and certificate at start only (a running broker takes
                // a new keystore through a dynamic config update, KIP-226, not from the file).
                restart: Some(pod_selector(spec, "kafka", None)),
            },
        )?;
        Ok(vec![
            Manifest { component: Component::Kafka, file: "kafka-namespace.sh".into(), content: namespace },
            Manifest { component: Component::Kafka, file: "kafka-tls.sh".into(), content: tls },
        ])
    }

    /// `kafka-users.sh` for the admin: its Secret when absent, its SCRAM credential set from it.
    fn after_ready(&self, kubectl: &str, stack_dir: &str) -> Result<Option<Manifest>> {
        Ok(Some(user_script(self.spec, kubectl, stack_dir, &User::admin())?))
    }

    fn workloads(&self) -> Vec<Workload> {
        sets(self.k)
            .into_iter()
            .map(|set| Workload {
                component: Component::Kafka,
                kind: WorkloadKind::StatefulSet,
                namespace: self.k.namespace.clone(),
                name: set.name.into(),
                replicas: set.replicas,
                pod_selector: pod_selector(self.spec, "kafka", Some(set.component)),
            })
            .collect()
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint {
            component: Component::Kafka,
            what: "bootstrap servers",
            address: format!("kafka-bootstrap.{}.svc.cluster.local:9092", self.k.namespace),
        }
    }

    /// A broker is about to stop: every partition must have its full replica set in sync first,
    /// or the partitions it leads or follows drop below their replication (below
    /// `min.insync.replicas`, producers with `acks=all` stop). `--under-replicated-partitions`
    /// prints one line per partition whose ISR is smaller than its replica set, nothing when
    /// all are in sync (apache/kafka TopicCommand, `kafka-topics.sh --help`).
    fn disruption_check(&self, kubectl: &str) -> Option<DisruptionCheck> {
        let k = self.k;
        let describe = exec(
            kubectl,
            &k.namespace,
            "kafka-0",
            "kafka",
            false,
            &[
                "env",
                "KAFKA_HEAP_OPTS=-Xmx256m",
                "/opt/kafka/bin/kafka-topics.sh",
                "--bootstrap-server",
                &format!("localhost:{INTERNAL_PORT}"),
                "--command-config",
                INTERNAL_CONFIG,
                "--describe",
                "--under-replicated-partitions",
            ],
        );
        Some(DisruptionCheck {
            component: Component::Kafka,
            namespace: k.namespace.clone(),
            what: "no under-replicated partitions",
            command: format!("{} && {describe}", put_internal_config(kubectl, &k.namespace, "kafka-0")),
            failing: under_replicated,
        })
    }

    /// As the admin user over SASL_SSL, the way a client connects (the broker's certificate
    /// checked against the CA, its host name too: `localhost` and the advertised names are in it).
    fn smoke(&self, kubectl: &str, _stack_dir: &str, nonce: &str) -> Check {
        let k = self.k;
        let ns = &k.namespace;
        let topic = format!("tagstack-smoke-{nonce}");
        let message = format!("tagstack smoke {nonce}");
        let bootstrap = format!("localhost:{CLIENT_PORT}");
        let bootstrap = bootstrap.as_str();
        let last = format!("kafka-{}", k.brokers.saturating_sub(1));
        let rf = replication_factor(k).to_string();
        let bin = |tool: &str| format!("/opt/kafka/bin/{tool}");
        // The tools would inherit the broker's KAFKA_HEAP_OPTS (-Xms = the broker's heap) inside
        // the broker's memory limit.
        let kexec = |pod: &str, stdin: bool, argv: &[&str]| {
            let mut with_heap = vec!["env", "KAFKA_HEAP_OPTS=-Xmx256m"];
            with_heap.extend_from_slice(argv);
            exec(kubectl, ns, pod, "kafka", stdin, &with_heap)
        };
        // kafka-topics.sh on kafka-0 as the admin, with `args` after the connection.
        let topics = |args: &[&str]| {
            let mut argv = vec![bin("kafka-topics.sh")];
            argv.extend(["--bootstrap-server", bootstrap, "--command-config", ADMIN_CONFIG].map(String::from));
            argv.extend(args.iter().map(|a| (*a).to_string()));
            kexec("kafka-0", false, &argv.iter().map(String::as_str).collect::<Vec<_>>())
        };
        let mut pods = vec!["kafka-0".to_string()];
        if last != "kafka-0" {
            pods.push(last.clone());
        }
        let mut steps: Vec<Step> = pods
            .iter()
            .map(|pod| Step {
                what: format!("{ADMIN_USER}'s client configuration in {pod}"),
                command: put_admin_config(kubectl, ns, pod),
                expect: None,
            })
            .collect();
        steps.extend([
            Step {
                what: format!("create topic {topic}"),
                command: topics(&[
                    "--create",
                    "--if-not-exists",
                    "--topic",
                    &topic,
                    "--partitions",
                    "1",
                    "--replication-factor",
                    &rf,
                ]),
                expect: None,
            },
            Step {
                what: "produce on kafka-0".into(),
                command: format!(
                    "printf '%s\\n' {} | {}",
                    sh_quote(&message),
                    kexec(
                        "kafka-0",
                        true,
                        &[
                            &bin("kafka-console-producer.sh"),
                            "--bootstrap-server",
                            bootstrap,
                            "--producer.config",
                            ADMIN_CONFIG,
                            "--topic",
                            &topic,
                        ]
                    )
                ),
                expect: None,
            },
            Step {
                what: format!("consume on {last}"),
                command: kexec(
                    &last,
                    false,
                    &[
                        &bin("kafka-console-consumer.sh"),
                        "--bootstrap-server",
                        bootstrap,
                        "--consumer.config",
                        ADMIN_CONFIG,
                        "--topic",
                        &topic,
                        "--from-beginning",
                        "--max-messages",
                        "1",
                        "--timeout-ms",
                        "60000",
                    ],
                ),
                expect: Some(message),
            },
        ]);
        let mut cleanup = vec![topics(&["--delete", "--topic", &topic])];
        cleanup.extend(pods.iter().map(|pod| exec(kubectl, ns, pod, "kafka", false, &["rm", "-f", ADMIN_CONFIG])));
        Check {
            component: Component::Kafka,
            name: "produce and consume one message",
            steps,
            cleanup: Some(cleanup.join("; ")),
        }
    }
}

/// Topics a user may read, write and describe: a name, or a prefix (`orders.*` in
/// `--topics`: every topic whose name starts with `orders.`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub name: String,
    pub prefixed: bool,
}

/// A Kafka user tagstack manages: the admin (a super user, no ACLs), one made by
/// `tagstack kafka user add NAME [--topics ...]`, or the monitoring add-on's kafka_exporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// Empty for the admin and the exporter.
    pub topics: Vec<Topics>,
    /// Whether this is [`User::exporter`]: its Secret lives in the monitoring namespace, with
    /// the CA certificate beside the password, and its ACLs only describe.
    pub exporter: bool,
}

/// The monitoring add-on's kafka_exporter: its user name, and its Secret in the monitoring
/// namespace (`username`, `password`, `ca.crt`) that its Deployment mounts.
pub const EXPORTER_USER: &str = "kafka-exporter";
pub const EXPORTER_SECRET: &str = "kafka-exporter";

/// Why a user name or a `--topics` entry is refused.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(
        "{0:?} is not a Kafka user name tagstack makes: lowercase letters, digits, '.' and '-', starting and ending with a letter or digit, at most 50 characters (its Secret is kafka-user-<name>)"
    )]
    Name(String),
    #[error("{0:?} is the admin user, which `tagstack up` makes; choose another name")]
    Admin(String),
    #[error("{0:?} is the monitoring add-on's kafka_exporter, which `tagstack up` makes; choose another name")]
    Exporter(String),
    #[error(
        "{0:?} is not a topic name or prefix: ASCII letters, digits, '.', '_' and '-', at most 249 characters, optionally ending in '*' (a prefix)"
    )]
    Topic(String),
}

impl User {
    pub fn admin() -> User {
        User { name: ADMIN_USER.into(), topics: Vec::new(), exporter: false }
    }

    /// kafka_exporter's identity (`up` makes it with the monitoring add-on, after the stack).
    pub fn exporter() -> User {
        User { name: EXPORTER_USER.into(), topics: Vec::new(), exporter: true }
    }

    /// A named user. `topics` as given to `--topics` (names, or prefixes ending in `*`); none:
    /// the topics whose names start with `<name>.`.
    pub fn named(name: &str, topics: &[String]) -> Result<User, UserError> {
        let ok_name = !name.is_empty()
            && name.len() <= 50
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
        if !ok_name {
            return Err(UserError::Name(name.into()));
        }
        if name == ADMIN_USER {
            return Err(UserError::Admin(name.into()));
        }
        if name == EXPORTER_USER {
            return Err(UserError::Exporter(name.into()));
        }
        let topics = if topics.is_empty() {
            vec![Topics { name: format!("{name}."), prefixed: true }]
        } else {
            topics
                .iter()
                .map(|t| {
                    let (base, prefixed) = match t.strip_suffix('*') {
                        Some(b) => (b, true),
                        None => (t.as_str(), false),
                    };
                    // Kafka's own rule for topic names (Topic.validate: legal characters, 249).
                    let legal = !base.is_empty()
                        && base.len() <= 249
                        && base.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
                    if legal && base != "." && base != ".." {
                        Ok(Topics { name: base.into(), prefixed })
                    } else {
                        Err(UserError::Topic(t.clone()))
                    }
                })
                .collect::<Result<_, _>>()?
        };
        Ok(User { name: name.into(), topics, exporter: false })
    }

    /// The `kafka-acls.sh --add --allow-principal User:<name>` arguments that follow, one ACL
    /// binding set per line: read, write and describe on each topic (name or prefix), and read
    /// and describe on the consumer groups whose ids start with the user's name (a consumer
    /// needs READ on its group: Kafka's authorization table in docs/security.html). Nothing on
    /// the cluster: no topic creation, which stays with the admin.
    ///
    /// The exporter only describes: every topic (METADATA lists the topics, LIST_OFFSETS reads
    /// their newest and oldest offsets, OFFSET_FETCH reads a group's offsets on them) and every
    /// group (LIST_GROUPS returns only the groups the principal may describe when it lacks
    /// DESCRIBE on the cluster, DESCRIBE_GROUPS, OFFSET_FETCH): Kafka's "Operations and
    /// Resources on Protocols" table (docs/security, authorization-and-acls). Those are the
    /// requests kafka_exporter v1.9.0's collector sends (kafka_exporter.go: `client.Topics`,
    /// `GetOffset`, `broker.ListGroups`, `DescribeGroups`, `FetchOffset`). Nothing on the
    /// cluster: DESCRIBE there would also let it read every ACL (DESCRIBE_ACLS). `*` with the
    /// literal pattern is Kafka's wildcard resource.
    pub fn acls(&self) -> Vec<String> {
        if self.exporter {
            return vec![
                "--operation Describe --topic '*' --resource-pattern-type literal".into(),
                "--operation Describe --group '*' --resource-pattern-type literal".into(),
            ];
        }
        if self.name == ADMIN_USER {
            return Vec::new();
        }
        let pattern = |prefixed: bool| if prefixed { "prefixed" } else { "literal" };
        let mut out: Vec<String> = self
            .topics
            .iter()
            .map(|t| {
                format!(
                    "--operation Read --operation Write --operation Describe --topic {} --resource-pattern-type {}",
                    sh_quote(&t.name),
                    pattern(t.prefixed)
                )
            })
            .collect();
        out.push(format!(
            "--operation Read --operation Describe --group {} --resource-pattern-type prefixed",
            sh_quote(&self.name)
        ));
        out
    }
}

/// `kafka-users.sh` for `user`: its Secret when absent, its SCRAM credential, its ACLs. Run on
/// the control plane once Kafka is ready (`up` for the admin; `tagstack kafka user add`).
pub fn user_script(spec: &Spec, kubectl: &str, stack_dir: &str, user: &User) -> Result<Manifest> {
    let k = spec.stack.kafka.as_ref().ok_or_else(|| anyhow::anyhow!("Kafka is not enabled"))?;
    // The exporter's Secret is where its Deployment can mount it; every other user's is Kafka's.
    let (secret, secret_ns) = if user.exporter {
        (EXPORTER_SECRET.to_string(), crate::config::MONITORING_NAMESPACE.to_string())
    } else {
        (user_secret(&user.name), k.namespace.clone())
    };
    let secret_head = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {secret}\n  namespace: {secret_ns}\n  labels:\n{labels}\ntype: Opaque\ndata:",
        labels = labels(spec).lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n"),
    );
    let summary = if user.exporter {
        "describe on every topic and consumer group".to_string()
    } else {
        let topics = user
            .topics
            .iter()
            .map(|t| if t.prefixed { format!("{}*", t.name) } else { t.name.clone() })
            .collect::<Vec<_>>()
            .join(", ");
        format!("read/write/describe on topics {topics}; consumer groups {}*", user.name)
    };
    let content = template(
        USERS,
        context! {
            kubectl => kubectl,
            apply => APPLY,
            dir => format!("{stack_dir}/secrets"),
            ns => k.namespace,
            secret_ns => secret_ns,
            pod => "kafka-0",
            secret => secret,
            user => user.name,
            mechanism => SASL_MECHANISM,
            secret_head => secret_head,
            // The exporter checks the brokers' certificates against the environment's CA: its
            // certificate only, never the key (stack::tls).
            ca => user.exporter.then(|| context! { ns => "kube-system", secret => tls::CA_SECRET, key => "certificate" }),
            put_internal => put_internal_config(kubectl, &k.namespace, "kafka-0"),
            internal_port => INTERNAL_PORT,
            internal_config => INTERNAL_CONFIG,
            acls => user.acls(),
            summary => summary,
        },
    )?;
    let file = if user.name == ADMIN_USER {
        "kafka-users.sh".to_string()
    } else if user.exporter {
        "kafka-exporter-user.sh".to_string()
    } else {
        format!("kafka-user-{}.sh", user.name)
    };
    Ok(Manifest { component: Component::Kafka, file, content })
}

/// A `client.properties` for `user` (its `password` and the environment's CA certificate `ca`,
/// as `ops` read them from their Secrets): bootstrap servers, SASL_SSL with SCRAM, and the CA
/// inline as a PEM truststore (KIP-651 `ssl.truststore.certificates`). The PEM's lines are
/// joined by properties-file continuations (`\` at the end of a line; the next line's leading
/// blanks are dropped, java.util.Properties.load), each with a blank before the backslash: Kafka's
/// PemParser needs whitespace after `-----BEGIN CERTIFICATE-----` and after the END line.
pub fn client_properties(k: &KafkaSpec, user: &str, password: &str, ca: &str) -> String {
    let pem: Vec<&str> = ca.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    format!(
        "# Kafka client configuration for user {user} (tagstack kafka client-config {user}).\n\
         # Inside the cluster, from a namespace labelled tagstack/client=true.\n\
         bootstrap.servers=kafka-bootstrap.{ns}.svc.cluster.local:{CLIENT_PORT}\n\
         security.protocol=SASL_SSL\n\
         sasl.mechanism={SASL_MECHANISM}\n\
         sasl.jaas.config={JAAS} username=\"{user}\" password=\"{password}\";\n\
         ssl.truststore.type=PEM\n\
         ssl.truststore.certificates={pem}\n",
        ns = k.namespace,
        pem = pem.join(" \\\n  "),
    )
}

/// One key of a Secret read with `kubectl get secret -o json`, decoded (`ns`/`name` for errors).
pub fn secret_value(json: &str, ns: &str, name: &str, key: &str) -> Result<String> {
    use anyhow::Context;
    let doc: serde_json::Value =
        serde_json::from_str(json).with_context(|| format!("parsing the Secret {ns}/{name}"))?;
    let b64 = doc
        .pointer(&format!("/data/{key}"))
        .and_then(serde_json::Value::as_str)
        .with_context(|| format!("the Secret {ns}/{name} has no {key}"))?;
    let bytes = crate::base64::decode(b64).with_context(|| format!("{key} of the Secret {ns}/{name} is not base64"))?;
    String::from_utf8(bytes).with_context(|| format!("{key} of the Secret {ns}/{name} is not text"))
}

/// The partition lines of `kafka-topics.sh --describe --under-replicated-partitions`.
pub fn under_replicated(output: &str) -> Vec<String> {
    output.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}
