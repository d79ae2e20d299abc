//! The cluster-stage parts of the environment file: `provider`, `[[nodes]]` for machines that
//! already exist, `[cluster]`, and the SSH client side. Same error shape as `validate.rs`.

use std::net::IpAddr;
use std::path::Path;

use super::error::ConfigError;
use super::field::{Ctx, deadline, is_valid_name};
use super::raw::{RawConfig, RawNode};
use super::spec::{ClusterSpec, NodeAddress, NodeRole, Provider, StaticNode};
use crate::known_hosts::{self, host_field};

pub const MAX_PARALLEL_SSH: i64 = 500;

pub fn provider(cx: &Ctx, raw: &RawConfig) -> Result<Provider, ConfigError> {
    let kind = raw.provider.as_ref();
    match kind.map(|k| k.get_ref().as_str()) {
        None | Some("aws") => {
            if let Some(nodes) = &raw.nodes {
                return cx.err(
                    nodes.span(),
                    "nodes",
                    "[[nodes]] lists existing machines, but provider is \"aws\" (tagstack creates the nodes)".into(),
                    "set provider = \"static\" to use your own machines, or remove the [[nodes]] tables",
                );
            }
            Ok(Provider::Aws)
        }
        Some("static") => static_nodes(cx, raw).map(|nodes| Provider::Static { nodes }),
        Some(other) => cx.err(
            kind.map_or(0..0, |k| k.span()),
            "provider",
            format!("{other:?} is not a provider"),
            "write \"aws\" (tagstack creates EC2 nodes) or \"static\" (your own machines in [[nodes]])",
        ),
    }
}

fn static_nodes(cx: &Ctx, raw: &RawConfig) -> Result<Vec<StaticNode>, ConfigError> {
    // AWS-only keys make no sense without AWS; say so rather than ignore them.
    let aws_only: [(&str, Option<std::ops::Range<usize>>); 4] = [
        ("region", raw.region.as_ref().map(|v| v.span())),
        ("admin_cidrs", raw.admin_cidrs.as_ref().map(|v| v.span())),
        ("network", raw.network.as_ref().map(|n| n.vpc_cidr.span())),
        ("ami", raw.ami.as_ref().and_then(|a| a.id.as_ref().or(a.owner.as_ref())).map(|v| v.span())),
    ];
    for (key, span) in aws_only {
        if let Some(span) = span {
            return cx.err(
                span,
                key,
                format!("`{key}` is only for provider = \"aws\""),
                "remove it: a static environment uses the machines in [[nodes]]",
            );
        }
    }
    let Some(nodes) = &raw.nodes else {
        return Err(ConfigError::new(cx.file, "provider = \"static\" needs [[nodes]]")
            .key("nodes")
            .hint("add one [[nodes]] table per machine: name, address, role, host_key"));
    };
    let known_hosts = raw.ssh.as_ref().and_then(|s| s.known_hosts.as_ref()).map(|k| k.get_ref().as_str());
    let mut out: Vec<StaticNode> = Vec::new();
    for (i, n) in nodes.get_ref().iter().enumerate() {
        let node = static_node(cx, i, n, known_hosts)?;
        if let Some(j) =
            out.iter().position(|o| o.name == node.name || (o.address == node.address && o.port == node.port))
        {
            return cx.err(
                n.name.span(),
                &format!("nodes[{i}]"),
                format!("{} repeats nodes[{j}] ({}:{})", node.name, out[j].address, out[j].port),
                "give every node its own name and address",
            );
        }
        out.push(node);
    }
    let cps = out.iter().filter(|n| n.role == NodeRole::ControlPlane).count();
    if cps != 1 {
        return cx.err(
            nodes.span(),
            "nodes",
            format!("{cps} nodes have role = \"control-plane\"; tagstack runs exactly 1"),
            "mark exactly one node as the control plane",
        );
    }
    Ok(out)
}

fn static_node(cx: &Ctx, i: usize, n: &RawNode, raw_known_hosts: Option<&str>) -> Result<StaticNode, ConfigError> {
    let name = n.name.get_ref();
    if !is_valid_name(name) {
        return cx.err(
            n.name.span(),
            &format!("nodes[{i}].name"),
            format!("{name:?} is not a valid node name"),
            "use lowercase letters, digits and dashes (it becomes the Kubernetes node name)",
        );
    }
    let address = n.address.get_ref();
    if let Err(why) = check_address(address) {
        return cx.err(
            n.address.span(),
            &format!("nodes[{i}].address"),
            format!("{address:?} is not an IP address or a host name: {why}"),
            "write an IPv4 address (\"10.0.0.11\") or an RFC 1123 host name (\"node1.example.com\")",
        );
    }
    if address.parse::<std::net::Ipv6Addr>().is_ok() {
        return cx.err(
            n.address.span(),
            &format!("nodes[{i}].address"),
            format!("{address:?} is an IPv6 address: the cluster tagstack builds is IPv4 only (pod and service networks, kubeadm's endpoints)"),
            "use the node's IPv4 address",
        );
    }
    let port = match &n.port {
        None => 22,
        Some(p) => match u16::try_from(*p.get_ref()) {
            Ok(port) if port > 0 => port,
            _ => {
                return cx.err(
                    p.span(),
                    &format!("nodes[{i}].port"),
                    format!("{} is not a TCP port", p.get_ref()),
                    "use 1 to 65535 (default 22)",
                );
            }
        },
    };
    let role = match NodeRole::parse(n.role.get_ref()) {
        Some(r) => r,
        None => {
            return cx.err(
                n.role.span(),
                &format!("nodes[{i}].role"),
                format!("{:?} is not a node role", n.role.get_ref()),
                "write \"control-plane\" or \"worker\"",
            );
        }
    };
    let host_key = match &n.host_key {
        None => None,
        Some(k) => {
            let parts: Vec<&str> = k.get_ref().split_whitespace().collect();
            let kinds = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"];
            if parts.len() < 2 || !kinds.contains(&parts[0]) {
                return cx.err(
                    k.span(),
                    &format!("nodes[{i}].host_key"),
                    "is not an SSH host public key".into(),
                    "copy the node's /etc/ssh/ssh_host_ed25519_key.pub, e.g. \"ssh-ed25519 AAAA...\"",
                );
            }
            Some(format!("{} {}", parts[0], parts[1]))
        }
    };
    let user = match &n.user {
        None => None,
        Some(u) if is_valid_login(u.get_ref()) => Some(u.get_ref().clone()),
        Some(u) => {
            return cx.err(
                u.span(),
                &format!("nodes[{i}].user"),
                format!("{:?} is not a valid login name", u.get_ref()),
                LOGIN_HINT,
            );
        }
    };
    // Never trust on first use: without a pinned key (here or in ssh.known_hosts) the first
    // connection would fail host-key verification; say so before anything runs.
    if host_key.is_none() && raw_known_hosts.is_none() {
        return cx.err(
            n.name.span(),
            &format!("nodes[{i}].host_key"),
            format!("node {name} has no host_key and ssh.known_hosts is not set: tagstack never trusts a host key on first use"),
            "add host_key = \"ssh-ed25519 AAAA...\" (the node's /etc/ssh/ssh_host_ed25519_key.pub), or point ssh.known_hosts at a file that lists the node",
        );
    }
    Ok(StaticNode { name: name.clone(), address: address.clone(), port, user, role, host_key })
}

/// Without a `host_key`, a static node is trusted only through `ssh.known_hosts` (`text`, read
/// from `file`): it must list the node by the name ssh looks it up by (`[address]:port` off
/// port 22; plain, wildcard or hashed), checked here so that a node ssh would refuse stops the
/// load (exit 2) before anything connects.
pub fn listed_in_known_hosts(
    cx: &Ctx,
    raw: &RawConfig,
    nodes: &[StaticNode],
    file: &Path,
    text: &str,
) -> Result<(), ConfigError> {
    let raw_nodes = raw.nodes.as_ref().map_or(&[][..], |n| n.get_ref().as_slice());
    // `static_nodes` made one node per table, in order.
    for (i, (n, r)) in nodes.iter().zip(raw_nodes).enumerate() {
        let host = host_field(&n.address, n.port);
        if n.host_key.is_some() || known_hosts::listing_line(text, &host).is_some() {
            continue;
        }
        return cx.err(
            r.name.span(),
            &format!("nodes[{i}].host_key"),
            format!(
                "node {} has no host_key and {} does not list {host}: tagstack never trusts a host key on first use",
                n.name,
                file.display()
            ),
            &format!(
                "add host_key = \"ssh-ed25519 AAAA...\" (the node's /etc/ssh/ssh_host_ed25519_key.pub), or run `ssh-keyscan -p {port} {address} >> {file}` and check the fingerprint it added (`ssh-keygen -lF '{host}' -f {file}`) against the node's own, read out of band",
                port = n.port,
                address = n.address,
                file = file.display(),
            ),
        );
    }
    Ok(())
}

pub(super) const LOGIN_HINT: &str =
    "use the image's login user, e.g. \"ubuntu\" or \"admin\" (letters, digits, `_`, `-`, `.`; not starting with `-`)";

/// A login name ssh, sudo and a shell all take literally: POSIX portable characters, not
/// starting with `-` (it would read as an option), at most 32 characters.
pub fn is_valid_login(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 32
        && !user.starts_with('-')
        && user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Why `address` is neither an IP address nor an RFC 1123 host name (`Ok` when it is one).
/// Nothing that passes can be read as an option (`-...`) or carry a space, quote or `=`.
pub fn check_address(address: &str) -> Result<(), &'static str> {
    if address.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if address.is_empty() {
        return Err("it is empty");
    }
    if address.starts_with('-') {
        return Err("it starts with `-`, which ssh would read as an option");
    }
    if address.len() > 253 {
        return Err("it is longer than 253 characters");
    }
    if !address.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
        return Err("a host name has only letters, digits, `-` and `.`");
    }
    let name = address.strip_suffix('.').unwrap_or(address);
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err("every dot-separated label has 1 to 63 characters");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label neither starts nor ends with `-`");
        }
    }
    // RFC 1123 2.1: a name is never all-numeric at the top, so 10.0.0.300 is a bad IP address.
    if labels.last().is_some_and(|l| l.chars().all(|c| c.is_ascii_digit())) {
        return Err("it looks like a dotted-decimal IP address but is not one");
    }
    Ok(())
}

pub fn cluster(cx: &Ctx, raw: &RawConfig) -> Result<ClusterSpec, ConfigError> {
    let mut spec = ClusterSpec::default();
    let Some(c) = &raw.cluster else { return Ok(spec) };
    if let Some(p) = &c.max_parallel_ssh {
        let default = spec.max_parallel_ssh;
        if !(1..=MAX_PARALLEL_SSH).contains(p.get_ref()) {
            return cx.err(
                p.span(),
                "cluster.max_parallel_ssh",
                format!("{} is out of range", p.get_ref()),
                &format!(
                    "use 1 to {MAX_PARALLEL_SSH} (default {default}: a control plane and {} workers at once)",
                    default - 1
                ),
            );
        }
        spec.max_parallel_ssh = usize::try_from(*p.get_ref()).unwrap_or(default);
    }
    spec.bootstrap_timeout =
        deadline(cx, c.bootstrap_timeout.as_ref(), "cluster.bootstrap_timeout", spec.bootstrap_timeout)?;
    spec.drain_timeout = deadline(cx, c.drain_timeout.as_ref(), "cluster.drain_timeout", spec.drain_timeout)?;
    if let Some(a) = &c.node_address {
        spec.node_address = match a.get_ref().as_str() {
            "public" => NodeAddress::Public,
            "private" => NodeAddress::Private,
            other => {
                return cx.err(
                    a.span(),
                    "cluster.node_address",
                    format!("{other:?} is not an address kind"),
                    "use \"public\" (the default: the instances' public IPs) or \"private\" (from inside the VPC)",
                );
            }
        };
        if raw.provider.as_ref().is_some_and(|p| p.get_ref() == "static") {
            return cx.err(
                a.span(),
                "cluster.node_address",
                "applies to provider = \"aws\" only".to_string(),
                "remove it: static nodes are reached on their configured `address`",
            );
        }
    }
    Ok(spec)
}
