//! What the cluster answers about the monitoring add-on, read back: the number of firing alerts
//! (Prometheus's `/api/v1/alerts` through the API server's service proxy), Grafana's admin
//! password from its Secret, and what `tagstack monitoring open` forwards. Pure; the
//! password is only ever returned to the one caller that prints it on request.

use anyhow::{Context, Result, anyhow};
use serde::Serialize;
use serde_json::Value;

use super::deploy::{GRAFANA_SECRET, NAMESPACE};

/// `kubectl get --raw` of Prometheus's alerts through the API server's proxy to the Service
/// (Kubernetes API: `GET /api/v1/namespaces/{ns}/services/{name}:{port}/proxy/{path}`), so no
/// port-forward or client in the cluster is needed.
pub fn alerts_path() -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/services/prometheus:9090/proxy/api/v1/alerts")
}

/// The firing alerts in Prometheus's answer to `/api/v1/alerts` (Prometheus HTTP API:
/// `{"status":"success","data":{"alerts":[{"labels":{"alertname":..},"state":"firing"|"pending",..}]}}`):
/// their names, sorted, one per alert (an alert firing for three pods is three).
pub fn firing(json: &str) -> Result<Vec<String>> {
    let doc: Value = serde_json::from_str(json).context("parsing Prometheus's /api/v1/alerts answer")?;
    if doc.get("status").and_then(Value::as_str) != Some("success") {
        return Err(anyhow!(
            "Prometheus answered /api/v1/alerts with {}",
            doc.get("error").and_then(Value::as_str).unwrap_or("no success status")
        ));
    }
    let alerts = doc.pointer("/data/alerts").and_then(Value::as_array).context("no data.alerts in the answer")?;
    let mut names: Vec<String> = alerts
        .iter()
        .filter(|a| a.get("state").and_then(Value::as_str) == Some("firing"))
        .map(|a| a.pointer("/labels/alertname").and_then(Value::as_str).unwrap_or("?").to_string())
        .collect();
    names.sort();
    Ok(names)
}

/// `kubectl get secret grafana-admin -n monitoring -o json`: the admin user and password.
pub fn grafana_credentials(json: &str) -> Result<(String, String)> {
    let doc: Value = serde_json::from_str(json).with_context(|| format!("parsing the Secret {GRAFANA_SECRET}"))?;
    let field = |key: &str| -> Result<String> {
        let b64 = doc
            .pointer(&format!("/data/{key}"))
            .and_then(Value::as_str)
            .with_context(|| format!("the Secret {NAMESPACE}/{GRAFANA_SECRET} has no {key}"))?;
        let bytes = crate::base64::decode(b64)
            .with_context(|| format!("{key} of the Secret {NAMESPACE}/{GRAFANA_SECRET} is not base64"))?;
        String::from_utf8(bytes).with_context(|| format!("{key} of the Secret {GRAFANA_SECRET} is not text"))
    };
    Ok((field("admin-user")?, field("admin-password")?))
}

/// What `tagstack monitoring open` forwards to this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Grafana,
    Prometheus,
    Alertmanager,
}

impl Target {
    pub fn service(self) -> &'static str {
        match self {
            Target::Grafana => "grafana",
            Target::Prometheus => "prometheus",
            Target::Alertmanager => "alertmanager",
        }
    }

    /// The Service's port, also the default local port.
    pub fn port(self) -> u16 {
        match self {
            Target::Grafana => 3000,
            Target::Prometheus => 9090,
            Target::Alertmanager => 9093,
        }
    }
}

/// The command run on the control plane for the tunnel: `kubectl port-forward` on its loopback,
/// in the background, until ssh's stdin closes (tagstack holds it open while it runs; when it
/// ends, ssh closes the channel, `cat` sees end of file and the forward is stopped). Without a
/// terminal sshd does not hang up the remote command when the client goes away, so this is
/// what ends it.
pub fn port_forward_command(kubectl: &str, target: Target, remote_port: u16) -> String {
    format!(
        "{kubectl} port-forward --address 127.0.0.1 -n {NAMESPACE} service/{} {remote_port}:{} & pf=$!; cat >/dev/null; kill $pf 2>/dev/null; wait $pf 2>/dev/null; exit 0",
        target.service(),
        target.port()
    )
}

/// kubectl port-forward's line once it listens: `Forwarding from 127.0.0.1:PORT -> PORT`
/// (k8s.io/client-go `tools/portforward/portforward.go`, `listenOnPortAndAddress`).
pub fn is_forwarding(line: &str, port: u16) -> bool {
    line.trim_start().starts_with(&format!("Forwarding from 127.0.0.1:{port} "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_firing_alerts() {
        let json = r#"{"status":"success","data":{"alerts":[
            {"labels":{"alertname":"KafkaUnderReplicatedPartitions"},"state":"firing"},
            {"labels":{"alertname":"NodeNotReady"},"state":"pending"},
            {"labels":{"alertname":"CassandraNodeDown"},"state":"firing"}]}}"#;
        assert_eq!(firing(json).unwrap(), ["CassandraNodeDown", "KafkaUnderReplicatedPartitions"]);
        assert!(firing(r#"{"status":"error","error":"bad"}"#).unwrap_err().to_string().contains("bad"));
    }

    #[test]
    fn reads_the_grafana_secret() {
        let json = r#"{"data":{"admin-user":"YWRtaW4=","admin-password":"czNjcjN0"}}"#;
        assert_eq!(grafana_credentials(json).unwrap(), ("admin".to_string(), "s3cr3t".to_string()));
        assert!(grafana_credentials(r#"{"data":{}}"#).is_err());
    }

    #[test]
    fn the_forward_listens_on_loopback_and_ends_with_the_tunnel() {
        let c = port_forward_command("kubectl", Target::Grafana, 3000);
        assert!(c.contains("port-forward --address 127.0.0.1 -n monitoring service/grafana 3000:3000 &"), "{c}");
        assert!(c.contains("cat >/dev/null; kill $pf"), "{c}");
        assert!(is_forwarding("Forwarding from 127.0.0.1:3000 -> 3000", 3000));
        assert!(!is_forwarding("Forwarding from [::1]:3000 -> 3000", 3000));
    }
}
