//! The monitoring add-on over real SSH on the test bed: `up` applies it after the stack (the
//! Grafana admin Secret made on the control plane) and waits for its rollouts, DaemonSet
//! included; `status` shows it with the firing alerts; `monitoring password` prints the
//! password, `monitoring open` tunnels a port-forward to this machine's loopback; `down` removes
//! the namespace, its claim and the ClusterRoles. The generated password appears in no output
//! and no log but the one `monitoring password` prints. kubectl is the STAND-IN of
//! tests/fixtures/node-bin/ (DaemonSet status, the service proxy to Prometheus's alerts and
//! port-forward are modelled there, see its README).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use crate::support::bed::{Bed, add_storage_class, env_with};

fn applied(bed: &Bed) -> String {
    std::fs::read_to_string(bed.cluster_state("applied.log")).unwrap_or_default()
}

/// The password as the stand-in API server stores the Secret (base64 in `data`).
fn stored_password(bed: &Bed) -> String {
    secret_value(bed, "grafana-admin", "admin-password")
}

/// One key of a Secret as the stand-in API server stores it, decoded.
fn secret_value(bed: &Bed, name: &str, key: &str) -> String {
    let objects: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bed.cluster_state("objects.json")).unwrap()).unwrap();
    let secret = objects
        .as_object()
        .unwrap()
        .values()
        .find(|o| o["kind"] == "Secret" && o["name"] == name)
        .unwrap_or_else(|| panic!("no {name} Secret was applied"));
    let digest: serde_json::Value = match &secret["digest"] {
        serde_json::Value::String(s) => serde_json::from_str(s).unwrap(),
        other => other.clone(),
    };
    let b64 = digest["data"][key].as_str().unwrap_or_else(|| panic!("{key}: {secret}"));
    String::from_utf8(tagstack::base64::decode(b64).unwrap()).unwrap()
}

/// The ACLs the stand-in's Kafka holds for `principal`, as `operation resourceType name patternType`.
fn kafka_acls(bed: &Bed, principal: &str) -> Vec<String> {
    let acls: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bed.cluster_state("stack/kafka/acls.json")).unwrap()).unwrap();
    let mut out: Vec<String> = acls
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["principal"] == principal)
        .map(|a| {
            format!("{} {} {} {}", a["operation"], a["resourceType"], a["name"], a["patternType"]).replace('"', "")
        })
        .collect();
    out.sort();
    out
}

fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { files_under(&p, out) } else { out.push(p) }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn up_applies_monitoring_after_the_stack_status_shows_it_down_removes_it_and_the_password_stays_secret() {
    let bed = Bed::up(4);
    let env = env_with(
        &bed,
        "mon",
        "[stack]\nready_timeout = \"2m\"\n[stack.spark]\nworkers = 1\n\n[monitoring]\nenabled = true\nalert_webhooks = [\"https://hooks.example.com/t0ken-abc\"]\n",
    );
    // Every output of the test, to look for the password in at the end.
    let mut outputs: Vec<String> = Vec::new();
    let text = |r: &crate::support::Run| format!("{}\n{}", r.stdout, r.stderr);

    let cluster = env.tagstack().args(&["up", "--only", "cluster"]).run().success();
    outputs.push(text(&cluster));
    add_storage_class(&env, &bed);
    // A `monitoring` namespace tagstack did not make is never taken over (down would delete it).
    std::fs::write(
        bed.fs(0, "var/lib/tagstack/ns.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: monitoring\n",
    )
    .unwrap();
    let kubectl = ["ssh", "cp", "--", "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"];
    env.tagstack().args(&kubectl).args(&["apply", "-f", "/var/lib/tagstack/ns.yaml"]).run().success();
    let refused = env.tagstack().arg("up").run().code(1);
    outputs.push(text(&refused));
    assert!(
        refused.stderr.contains("the namespace monitoring exists in the cluster without tagstack's labels"),
        "{}",
        refused.stderr
    );
    assert!(!applied(&bed).contains("monitoring.yaml"), "applied despite the refusal");
    env.tagstack().args(&kubectl).args(&["delete", "namespace", "monitoring"]).run().success();
    let up = env.tagstack().args(&["up", "--output", "json"]).run().success();
    outputs.push(text(&up));
    let doc = up.json();
    let names: Vec<&str> =
        doc["monitoring"]["workloads"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["prometheus", "alertmanager", "grafana", "kube-state-metrics", "node-exporter", "kafka-exporter"],
        "{doc}"
    );
    assert!(doc["monitoring"]["workloads"].as_array().unwrap().iter().all(|w| w["done"] == true), "{doc}");
    // node-exporter on every node, the control plane included.
    assert_eq!(doc["monitoring"]["workloads"][4]["desired"], 4, "{doc}");
    // After the stack, whose Kafka and Cassandra pods carry the agent.
    let log = applied(&bed);
    let at = |file: &str| log.find(&format!("{file}\n")).unwrap_or_else(|| panic!("{file} not applied: {log}"));
    assert!(at("/var/lib/tagstack/monitoring/monitoring.yaml") > at("/var/lib/tagstack/stack/kafka.yaml"), "{log}");
    assert!(at("/var/lib/tagstack/monitoring/monitoring.yaml") > at("/var/lib/tagstack/stack/cassandra.yaml"), "{log}");
    let password = stored_password(&bed);
    assert_eq!(password.len(), 32, "a generated password");
    assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));
    // kafka_exporter's own Kafka user: its Secret in `monitoring` (password, the CA's
    // certificate and nothing of its key), its SCRAM credential, describe-only ACLs.
    let exporter_password = secret_value(&bed, "kafka-exporter", "password");
    assert_eq!(exporter_password.len(), 48, "openssl rand -hex 24");
    assert_eq!(secret_value(&bed, "kafka-exporter", "username"), "kafka-exporter");
    assert_eq!(secret_value(&bed, "kafka-exporter", "ca.crt"), secret_value(&bed, "tagstack-ca", "certificate"));
    assert!(!secret_value(&bed, "kafka-exporter", "ca.crt").contains("PRIVATE KEY"));
    let scram = std::fs::read_to_string(bed.cluster_state("stack/kafka/scram.json")).unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(&scram).unwrap()["kafka-exporter"]["SCRAM-SHA-512"].is_string(),
        "{scram}"
    );
    assert_eq!(
        kafka_acls(&bed, "User:kafka-exporter"),
        ["DESCRIBE GROUP * LITERAL", "DESCRIBE TOPIC * LITERAL"],
        "describe on every topic and group, nothing on the cluster"
    );

    // status: the add-on and its alerts (none, then those the stand-in Prometheus reports).
    let st = env.tagstack().arg("status").run().success();
    outputs.push(text(&st));
    assert!(st.stdout.contains("Monitoring of"), "{}", st.stdout);
    // node-exporter in its own privileged namespace, the rest in the restricted `monitoring`.
    assert!(st.stdout.contains("monitoring-node/node-exporter"), "{}", st.stdout);
    assert!(st.stdout.contains("monitoring/prometheus"), "{}", st.stdout);
    assert!(st.stdout.contains("Alerts: none firing"), "{}", st.stdout);
    std::fs::write(
        bed.cluster_state("stack/prometheus-alerts.json"),
        r#"[{"labels":{"alertname":"KafkaUnderReplicatedPartitions","severity":"critical"},"state":"firing"},
            {"labels":{"alertname":"NodeDiskFilling"},"state":"pending"},
            {"labels":{"alertname":"CassandraNodeDown"},"state":"firing"}]"#,
    )
    .unwrap();
    let st = env.tagstack().args(&["status", "--output", "json"]).run().success();
    outputs.push(text(&st));
    let doc = st.json();
    assert_eq!(doc["monitoring"]["firing"], serde_json::json!(["CassandraNodeDown", "KafkaUnderReplicatedPartitions"]));
    let st = env.tagstack().arg("status").run().success();
    outputs.push(text(&st));
    assert!(st.stdout.contains("Alerts: 2 firing: CassandraNodeDown, KafkaUnderReplicatedPartitions"), "{}", st.stdout);

    // The password, on request, to stdout only.
    let pw = env.tagstack().args(&["monitoring", "password"]).run().success();
    assert_eq!(pw.stdout, format!("{password}\n"));
    assert!(!pw.stderr.contains(&password), "{}", pw.stderr);
    // A second up keeps the Secret (and so the password).
    let again = env.tagstack().arg("up").run().success();
    outputs.push(text(&again));
    assert_eq!(stored_password(&bed), password);
    assert_eq!(secret_value(&bed, "kafka-exporter", "password"), exporter_password, "kept on rerun");
    assert_eq!(kafka_acls(&bed, "User:kafka-exporter").len(), 2);

    // open: a tunnel to the port-forward on the control plane's loopback; the URL on stdout.
    let port = free_port();
    let mut child = env.tagstack().args(&["monitoring", "open", "grafana", "--port", &port.to_string()]).spawn();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert_eq!(first, format!("http://127.0.0.1:{port}/\n"));
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("STAND-IN kubectl port-forward: monitoring/grafana-"), "{answer}");
    assert!(answer.contains("port 3000"), "{answer}");
    drop(conn);
    // SIGTERM, as a service manager would stop it: tagstack ends the tunnel and exits 0.
    let term = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    outputs.push(String::from_utf8_lossy(&out.stderr).into_owned());

    // down: the namespace with Prometheus's claim, and the ClusterRoles, by their labels.
    let down = env.tagstack().args(&["down", "--yes", "--output", "json"]).run().success();
    outputs.push(text(&down));
    let doc = down.json();
    assert_eq!(
        doc["cluster_cleanup"]["namespaces"],
        serde_json::json!(["cassandra", "kafka", "monitoring", "monitoring-node", "spark"]),
        "{doc}"
    );
    assert_eq!(doc["cluster_cleanup"]["errors"], serde_json::json!([]), "{doc}");
    let deleted = std::fs::read_to_string(bed.cluster_state("stack/deleted.log")).unwrap();
    assert!(deleted.contains("monitoring/data-prometheus-0"), "{deleted}");
    assert!(deleted.contains(&format!("ClusterRole /{}-bed-prometheus", env.project)), "{deleted}");
    assert!(deleted.contains(&format!("ClusterRoleBinding /{}-bed-kube-state-metrics", env.project)), "{deleted}");
    let st = env.tagstack().args(&["status", "--output", "json"]).run().success();
    outputs.push(text(&st));
    assert!(st.json()["monitoring"]["workloads"].as_array().unwrap().iter().all(|w| w["missing"] == true));

    // Nowhere but where it was asked for: no output, no log, no file tagstack wrote here.
    for (i, o) in outputs.iter().enumerate() {
        assert!(!o.contains(&password), "output {i} shows the password:\n{o}");
        assert!(!o.contains(&exporter_password), "output {i} shows kafka_exporter's password:\n{o}");
        assert!(!o.contains("t0ken-abc"), "output {i} shows the webhook URL:\n{o}");
    }
    let mut written = Vec::new();
    files_under(env.dir.path(), &mut written);
    assert!(written.iter().any(|p| p.extension().is_some_and(|e| e == "log")), "{written:?}");
    for p in written {
        let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
        assert!(!text.contains(&password), "{} holds the password", p.display());
        assert!(!text.contains(&exporter_password), "{} holds kafka_exporter's password", p.display());
    }
}
