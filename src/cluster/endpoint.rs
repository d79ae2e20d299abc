//! The control plane's endpoint: the `host:port` kubeadm records as `controlPlaneEndpoint`, that
//! workers join through and that every kubeconfig kubeadm writes for the cluster (admin.conf,
//! kubelet.conf, kube-proxy's) names. Owns one decision: which endpoint a cluster is built and
//! joined with. A new cluster gets the stable name of `EnvId::control_plane_endpoint_name`,
//! resolved on every node through the /etc/hosts line `prepare-node.sh` keeps
//! (`hosts_line`); a cluster tagstack already initialised keeps the endpoint its admin.conf
//! names, since kubeadm never changes it (an IP for clusters made before issue 12). Pure: the
//! caller reads the control plane (`EXISTING_ENDPOINT_COMMAND`); this module must not do I/O.
//! Why a name: docs/control-plane-endpoint.md.

use anyhow::{Context, Result, bail};

use crate::config::EnvId;

/// The API server's port (kubeadm's default `bindPort`, what tagstack's init config sets).
pub const API_SERVER_PORT: u16 = 6443;

/// Where the control plane's endpoint of an initialised cluster is read: kubeadm writes
/// admin.conf with `server: https://<controlPlaneEndpoint>` (kubernetes/kubernetes
/// cmd/kubeadm/app/phases/kubeconfig: admin.conf, super-admin.conf and kubelet.conf use
/// `GetControlPlaneEndpoint`, kubeconfig_test.go asserts it). Prints nothing on a control
/// plane tagstack has not initialised (no init-done marker, the one `init-control-plane.sh`
/// skips `kubeadm init` on), and fails when the marker is there but admin.conf is not.
pub const EXISTING_ENDPOINT_COMMAND: &str =
    "if [ -f /var/lib/tagstack/init-done ]; then sed -n 's/^ *server: *//p' /etc/kubernetes/admin.conf; fi";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// Whether `host` is the stable name (false: an older cluster's IP endpoint, kept).
    pub stable_name: bool,
}

impl Endpoint {
    /// `host:port` as kubeadm's `controlPlaneEndpoint` and `apiServerEndpoint` take it.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The endpoint of the cluster: the one the control plane's admin.conf names when tagstack
/// already initialised it (`existing`: the output of `EXISTING_ENDPOINT_COMMAND`), else the
/// environment's stable name.
pub fn decide(id: &EnvId, existing: &str) -> Result<Endpoint> {
    let name = id.control_plane_endpoint_name();
    let Some(server) = existing.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Ok(Endpoint { host: name, port: API_SERVER_PORT, stable_name: true });
    };
    let (host, port) = parse_server(server)
        .with_context(|| format!("the control plane's /etc/kubernetes/admin.conf names the server {server:?}"))?;
    Ok(Endpoint { stable_name: host == name, host, port })
}

/// `https://host:port` (a kubeconfig's `server`) -> (host, port).
fn parse_server(server: &str) -> Result<(String, u16)> {
    let rest = server.trim_matches('"').strip_prefix("https://").context("not an https:// URL")?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, port) = v6.split_once("]:").context("no port after the IPv6 address")?;
        (host, port)
    } else {
        rest.rsplit_once(':').context("no port")?
    };
    if host.is_empty() || host.contains('/') {
        bail!("no host");
    }
    Ok((host.to_string(), port.parse().with_context(|| format!("port {port:?}"))?))
}

/// The one /etc/hosts line `prepare-node.sh` keeps on every node (the marker finds it again),
/// so that the name resolves to the control plane's private address; on an older cluster,
/// whose endpoint is an IP, the line is written too and harmless (nothing looks the name up).
pub const HOSTS_MARKER: &str = "# tagstack: control-plane endpoint";

pub fn hosts_line(id: &EnvId, control_plane_address: &str) -> String {
    format!("{control_plane_address} {} {HOSTS_MARKER}", id.control_plane_endpoint_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> EnvId {
        EnvId::new("demo", "dev")
    }

    #[test]
    fn a_new_cluster_gets_the_stable_name() {
        let e = decide(&id(), "").unwrap();
        assert_eq!(e.host_port(), "control-plane.demo-dev.tagstack.internal:6443");
        assert!(e.stable_name);
        assert_eq!(decide(&id(), "\n  \n").unwrap(), e);
    }

    #[test]
    fn an_initialised_cluster_keeps_its_endpoint() {
        let old = decide(&id(), "https://10.20.1.4:6443\n").unwrap();
        assert_eq!((old.host_port(), old.stable_name), ("10.20.1.4:6443".to_string(), false));
        let named = decide(&id(), "https://control-plane.demo-dev.tagstack.internal:6443").unwrap();
        assert!(named.stable_name);
        let v6 = decide(&id(), "https://[fd00::5]:6443").unwrap();
        assert_eq!(v6.host_port(), "[fd00::5]:6443");
        for bad in ["http://10.0.0.1:6443", "https://10.0.0.1", "https://:6443", "https://10.0.0.1:x"] {
            let e = format!("{:#}", decide(&id(), bad).unwrap_err());
            assert!(e.contains("admin.conf names the server"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_hosts_line_maps_the_name_to_the_control_plane() {
        assert_eq!(
            hosts_line(&id(), "10.20.1.4"),
            "10.20.1.4 control-plane.demo-dev.tagstack.internal # tagstack: control-plane endpoint"
        );
    }
}
