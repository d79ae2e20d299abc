//! The smoke checks as command lines: one Kafka message produced on the first broker and
//! consumed on the last, one CQL write and read on Cassandra, SparkPi run to completion. Pure;
//! `ops::stack` runs them on the control plane and judges their output with [`judge`].

use serde::Serialize;

use super::APPLY;
use super::render::Component;
use crate::config::Spec;
use crate::remote::Output;

/// Quotes one argument for `sh -c`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One step of a check: a shell command line on the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub what: String,
    pub command: String,
    /// The step passes only if its stdout contains this.
    pub expect: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub component: Component,
    pub name: &'static str,
    pub steps: Vec<Step>,
    /// Best effort after the steps, pass or fail (e.g. deleting the test topic).
    pub cleanup: Option<String>,
}

fn exec(kubectl: &str, namespace: &str, pod: &str, container: &str, stdin: bool, argv: &[&str]) -> String {
    let args: Vec<String> = argv.iter().map(|a| sh_quote(a)).collect();
    format!(
        "{kubectl} exec{} -n {namespace} {pod} -c {container} -- {}",
        if stdin { " -i" } else { "" },
        args.join(" ")
    )
}

/// The checks for every enabled component. `nonce` makes names and payloads unique per run,
/// so a message or row left by an earlier run can never pass for this one.
pub fn checks(spec: &Spec, kubectl: &str, stack_dir: &str, nonce: &str) -> Vec<Check> {
    let mut out = Vec::new();
    let st = &spec.stack;
    if let Some(k) = &st.kafka {
        let topic = format!("tagstack-smoke-{nonce}");
        let message = format!("tagstack smoke {nonce}");
        let bootstrap = "localhost:9092";
        let last = format!("kafka-{}", k.brokers.saturating_sub(1));
        let rf = super::render::kafka_replication_factor(k).to_string();
        let bin = |tool: &str| format!("/opt/kafka/bin/{tool}");
        // The tools would inherit the broker's KAFKA_HEAP_OPTS (-Xms = the broker's heap) inside
        // the broker's memory limit.
        let kexec = |pod: &str, stdin: bool, argv: &[&str]| {
            let mut with_heap = vec!["env", "KAFKA_HEAP_OPTS=-Xmx256m"];
            with_heap.extend_from_slice(argv);
            exec(kubectl, &k.namespace, pod, "kafka", stdin, &with_heap)
        };
        out.push(Check {
            component: Component::Kafka,
            name: "produce and consume one message",
            steps: vec![
                Step {
                    what: format!("create topic {topic}"),
                    command: kexec(
                        "kafka-0",
                        false,
                        &[
                            &bin("kafka-topics.sh"),
                            "--bootstrap-server",
                            bootstrap,
                            "--create",
                            "--if-not-exists",
                            "--topic",
                            &topic,
                            "--partitions",
                            "1",
                            "--replication-factor",
                            &rf,
                        ],
                    ),
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
                            &[&bin("kafka-console-producer.sh"), "--bootstrap-server", bootstrap, "--topic", &topic,]
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
            ],
            cleanup: Some(kexec(
                "kafka-0",
                false,
                &[&bin("kafka-topics.sh"), "--bootstrap-server", bootstrap, "--delete", "--topic", &topic],
            )),
        });
    }
    if let Some(c) = &st.cassandra {
        let value = format!("tagstack-{nonce}");
        let rf = c.replicas.min(3);
        let cql = format!(
            "CONSISTENCY LOCAL_QUORUM; CREATE KEYSPACE IF NOT EXISTS tagstack_smoke WITH replication = {{'class': 'NetworkTopologyStrategy', '{dc}': {rf}}}; \
             CREATE TABLE IF NOT EXISTS tagstack_smoke.roundtrip (id text PRIMARY KEY, value text); \
             INSERT INTO tagstack_smoke.roundtrip (id, value) VALUES ('{nonce}', '{value}'); \
             SELECT value FROM tagstack_smoke.roundtrip WHERE id = '{nonce}';",
            dc = c.datacenter,
        );
        out.push(Check {
            component: Component::Cassandra,
            name: "CQL write and read",
            steps: vec![Step {
                what: "cqlsh on cassandra-0".into(),
                command: exec(kubectl, &c.namespace, "cassandra-0", "cassandra", false, &["cqlsh", "-e", &cql]),
                expect: Some(value),
            }],
            cleanup: None,
        });
    }
    if let Some(s) = &st.spark {
        let ns = &s.namespace;
        out.push(Check {
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
                    command: format!("{kubectl} {APPLY} -f {stack_dir}/spark-pi.yaml"),
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
        });
    }
    out
}

/// The line of `output` that shows what a step expected, if it is there.
pub fn judge<'a>(output: &'a str, expect: &str) -> Option<&'a str> {
    output.lines().find(|l| l.contains(expect))
}

/// The last few lines of a command's output, stderr after stdout, on one line.
fn tail(out: &Output) -> String {
    let lines: Vec<&str> = out.stdout.lines().chain(out.stderr.lines()).filter(|l| !l.trim().is_empty()).collect();
    let last = &lines[lines.len().saturating_sub(5)..];
    if last.is_empty() { "no output".to_string() } else { last.join(" | ") }
}

/// Whether one step passed: it exited 0 and, if it expects something, printed it. The error
/// names the step and carries its last output lines (a Kafka consumer that timed out exits 0
/// and says why only on stderr).
pub fn judge_step(step: &Step, out: &Output) -> Result<(), String> {
    match out.code {
        Some(0) => {}
        Some(code) => return Err(format!("{} exited with {code}: {}", step.what, tail(out))),
        None => return Err(format!("{} was killed: {}", step.what, tail(out))),
    }
    match &step.expect {
        Some(expect) if judge(&out.stdout, expect).is_none() => {
            Err(format!("{}: expected {expect:?} in its output; got: {}", step.what, tail(out)))
        }
        _ => Ok(()),
    }
}
