//! Turns the raw file into a [`Spec`]: defaults, names, CIDRs, ranges. Every rejection is a
//! [`ConfigError`] that points at the offending key. The only I/O is the injected reader for
//! the files the config names (the SSH public key, `ssh.known_hosts`), so all of this runs in
//! unit tests.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;

use super::error::{ConfigError, line_col};
use super::field::{Ctx, TIMEOUT, TTL, duration, is_valid_name};
use super::id::EnvId;
use super::raw::{RawConfig, RawNetwork, RawNodeGroup, S};
use super::spec::{
    AmiSpec, KubeVersion, NetworkSpec, NodeGroupSpec, NodeRole, Provider, Spec, SshSpec, SubnetSpec, Timeouts,
};

/// Kubernetes minors this release knows how to bootstrap (kubeadm v1beta4, containerd 2).
/// The minors tagstack can install: each has a containerd pin (`cluster::versions`, from
/// containerd's RELEASES.md) and an AWS cloud-controller-manager release (`cluster::addons`);
/// a unit test keeps the three in step.
pub const KUBE_MINORS: std::ops::RangeInclusive<u32> = 33..=36;
pub const DEFAULT_KUBE_VERSION: &str = "1.36";
pub const MAX_WORKERS: i64 = 200;
/// Canonical's account and the Ubuntu 24.04 gp3 image family, resolved with DescribeImages.
pub const DEFAULT_AMI_OWNER: &str = "099720109477";
pub const DEFAULT_AMI_NAME: &str = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*";

/// What a [`Spec`] is loaded for, which decides the local files it must find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// Every command that may connect to the nodes: `ssh.known_hosts` must be readable and
    /// list every static node without a `host_key`.
    Connect,
    /// `tagstack render`: nothing rendered uses the nodes' host keys, so no file is read for them.
    Render,
}

/// Parses and validates an environment file. `read` loads the files it names: the SSH public
/// key and `ssh.known_hosts`.
pub fn parse(
    file: &Path,
    source: &str,
    home: Option<&Path>,
    read: &dyn Fn(&Path) -> io::Result<String>,
) -> Result<Spec, ConfigError> {
    parse_for(file, source, home, read, Purpose::Connect)
}

pub(super) fn parse_for(
    file: &Path,
    source: &str,
    home: Option<&Path>,
    read: &dyn Fn(&Path) -> io::Result<String>,
    purpose: Purpose,
) -> Result<Spec, ConfigError> {
    let raw: RawConfig = toml::from_str(source).map_err(|e| toml_error(file, source, &e))?;
    let cx = Ctx::new(file, source);

    let project = name(&cx, &raw.project, "project")?;
    let environment = name(&cx, &raw.environment, "environment")?;
    // IAM role names are capped at 64 characters: tagstack-<project>-<env>-control-plane.
    let combined = project.len() + environment.len();
    if combined > 40 {
        return cx.err(
            raw.environment.span(),
            "environment",
            format!("project and environment together are {combined} characters; at most 40 fit in IAM role names"),
            "shorten the project or environment name",
        );
    }
    let provider = super::cluster::provider(&cx, &raw)?;
    let is_aws = provider == Provider::Aws;
    let required = |key: &str| {
        ConfigError::new(file, format!("missing field `{key}`"))
            .key(key)
            .hint("add the key (provider = \"aws\" needs it); the README's config reference shows an example")
    };
    let region = match (&raw.region, is_aws) {
        (Some(r), _) => region(&cx, r)?,
        (None, true) => return Err(required("region")),
        (None, false) => String::new(),
    };
    let endpoint_url = match &raw.endpoint_url {
        Some(url) => Some(endpoint(&cx, url)?),
        None => None,
    };
    let admin_cidrs = match (&raw.admin_cidrs, is_aws) {
        (Some(a), _) => admin_cidrs(&cx, a)?,
        (None, true) => return Err(required("admin_cidrs")),
        (None, false) => Vec::new(),
    };
    // The default is read like a written value: its one home is the text.
    let kubernetes_version = match &raw.kubernetes_version {
        Some(v) => kube_version(&cx, v.get_ref(), v.span())?,
        None => kube_version(&cx, DEFAULT_KUBE_VERSION, 0..0)?,
    };
    let network = match (&raw.network, is_aws) {
        (Some(n), _) => network(&cx, n, &region)?,
        (None, true) => return Err(required("network")),
        (None, false) => NetworkSpec { vpc_cidr: Ipv4Net::default(), subnets: Vec::new() },
    };
    let cluster = super::cluster::cluster(&cx, &raw)?;
    if is_aws {
        for (what, net) in [("pod network", cluster.pod_cidr), ("service network", cluster.service_cidr)] {
            if net.contains(&network.vpc_cidr) || network.vpc_cidr.contains(&net) {
                let span = raw.network.as_ref().map_or(0..0, |n| n.vpc_cidr.span());
                return cx.err(
                    span,
                    "network.vpc_cidr",
                    format!("{} overlaps the Kubernetes {what} {net}", network.vpc_cidr),
                    &format!(
                        "pick a VPC block outside {} and {}, e.g. \"10.20.0.0/16\"",
                        cluster.pod_cidr, cluster.service_cidr
                    ),
                );
            }
        }
    }
    let ssh = ssh(&cx, &raw, home, read, is_aws)?;
    if purpose == Purpose::Connect
        && let Some(path) = &ssh.known_hosts
    {
        let text = known_hosts_text(&cx, &raw, path, read)?;
        if let Provider::Static { nodes } = &provider {
            super::cluster::listed_in_known_hosts(&cx, &raw, nodes, path, &text)?;
        }
    }
    let ami = ami(&cx, &raw)?;
    if let Some(c) = raw.control_plane.as_ref().and_then(|g| g.count.as_ref())
        && *c.get_ref() != 1
    {
        return cx.err(
            c.span(),
            "control_plane.count",
            format!("{} control-plane nodes requested; tagstack runs exactly 1", c.get_ref()),
            "remove the key or set it to 1",
        );
    }
    let control_plane = group(&cx, raw.control_plane.as_ref(), "control_plane", 1, 30)?;
    let mut workers = group(&cx, raw.workers.as_ref(), "workers", 3, 50)?;
    if let Provider::Static { nodes } = &provider {
        workers.count = u32::try_from(nodes.iter().filter(|n| n.role == NodeRole::Worker).count()).unwrap_or(0);
    }
    let timeouts = timeouts(&cx, &raw)?;
    let stack = super::stack::stack(&cx, raw.stack.as_ref(), &project, &environment, is_aws)?;
    let ttl = raw.ttl.as_ref().map(|v| duration(&cx, v, "ttl", &TTL)).transpose()?;
    let backup = super::backup::backup(&cx, raw.backup.as_ref(), is_aws)?;
    let monitoring = super::monitoring::monitoring(&cx, raw.monitoring.as_ref())?;

    Ok(Spec {
        file: file.to_path_buf(),
        id: EnvId { project, environment },
        region,
        endpoint_url,
        admin_cidrs,
        kubernetes_version,
        network,
        ssh,
        ami,
        control_plane,
        workers,
        timeouts,
        provider,
        cluster,
        stack,
        ttl,
        backup,
        monitoring,
    })
}

/// toml's own errors (syntax, unknown key, wrong type, missing key) carry a span; turn them
/// into the same shape as ours, with the dotted key recovered from the text.
fn toml_error(file: &Path, source: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().to_string();
    let mut err = ConfigError::new(file, message.clone());
    let missing = message.strip_prefix("missing field `").and_then(|r| r.split_once('`')).map(|(f, _)| f);
    // A missing top-level field comes with an empty span at 0: it has no place in the file.
    if let Some(span) = e.span().filter(|s| missing.is_none() || !s.is_empty()) {
        err = err.at(source, span.clone());
        if let Some(key) = key_at(source, span.start) {
            // For a missing field the span is its table's header.
            err = err.key(match missing {
                Some(f) => format!("{key}.{f}"),
                None => key,
            });
        }
    } else if let Some(f) = missing {
        err = err.key(f);
    }
    let hint = if message.starts_with("unknown field") {
        "remove the key or fix its spelling; the README lists every key"
    } else if message.starts_with("missing field") {
        "add the key; the README's config reference shows an example"
    } else if message.starts_with("invalid type") {
        "check the value's type: strings are quoted, numbers are not"
    } else {
        "check the TOML syntax at that place"
    };
    err.hint(hint)
}

/// The dotted key at a byte offset: the last `[table]` header above it plus the line's key.
fn key_at(source: &str, offset: usize) -> Option<String> {
    let (line_no, _) = line_col(source, offset);
    let mut table: Option<String> = None;
    let mut key = None;
    for (i, line) in source.lines().enumerate() {
        let t = line.trim();
        if i + 1 > line_no {
            break;
        }
        if t.starts_with('[') {
            table = Some(t.trim_matches(|c| c == '[' || c == ']').trim().to_string());
            key = None;
        } else if let Some((k, _)) = t.split_once('=')
            && i + 1 == line_no
        {
            key = Some(k.trim().trim_matches('"').to_string());
        }
    }
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(t), None) => Some(t),
        (None, None) => None,
    }
}

fn name(cx: &Ctx, v: &S<String>, key: &str) -> Result<String, ConfigError> {
    let s = v.get_ref();
    if !is_valid_name(s) {
        return cx.err(
            v.span(),
            key,
            format!("{s:?} is not a valid {key} name"),
            "use 1-24 characters: lowercase letters, digits and single dashes, starting with a letter (it goes into tags, IAM names and DNS names)",
        );
    }
    Ok(s.clone())
}

fn region(cx: &Ctx, v: &S<String>) -> Result<String, ConfigError> {
    let s = v.get_ref();
    let parts: Vec<&str> = s.split('-').collect();
    let ok = parts.len() >= 3
        && parts.last().is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()));
    if !ok {
        return cx.err(
            v.span(),
            "region",
            format!("{s:?} is not an AWS region"),
            "write a region code such as \"eu-west-3\" or \"us-east-1\"",
        );
    }
    Ok(s.clone())
}

fn endpoint(cx: &Ctx, v: &S<String>) -> Result<String, ConfigError> {
    let s = v.get_ref();
    let rest = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://"));
    if rest.is_none_or(|r| r.is_empty() || r.contains(char::is_whitespace)) {
        return cx.err(
            v.span(),
            "endpoint_url",
            format!("{s:?} is not an http(s) URL"),
            "for the local emulator write \"http://127.0.0.1:5000\"; leave it out for real AWS",
        );
    }
    Ok(s.trim_end_matches('/').to_string())
}

fn cidr(cx: &Ctx, v: &S<String>, key: &str) -> Result<Ipv4Net, ConfigError> {
    let s = v.get_ref();
    let Ok(net) = s.parse::<Ipv4Net>() else {
        return cx.err(v.span(), key, format!("{s:?} is not an IPv4 CIDR block"), "write it like \"10.20.0.0/16\"");
    };
    if net.trunc() != net {
        return cx.err(
            v.span(),
            key,
            format!("{s:?} has host bits set"),
            &format!("did you mean \"{}\"?", net.trunc()),
        );
    }
    Ok(net)
}

fn admin_cidrs(cx: &Ctx, v: &S<Vec<S<String>>>) -> Result<Vec<Ipv4Net>, ConfigError> {
    if v.get_ref().is_empty() {
        return cx.err(v.span(), "admin_cidrs", "is empty: nobody could reach SSH (22) or the API (6443)".into(), "list the networks allowed in, e.g. [\"203.0.113.7/32\"]; write \"0.0.0.0/0\" only if you really mean the whole internet");
    }
    let mut out = Vec::new();
    for (i, c) in v.get_ref().iter().enumerate() {
        let net = cidr(cx, c, &format!("admin_cidrs[{i}]"))?;
        if out.contains(&net) {
            return cx.err(
                c.span(),
                &format!("admin_cidrs[{i}]"),
                format!("{net} is listed twice"),
                "remove the duplicate",
            );
        }
        out.push(net);
    }
    Ok(out)
}

fn kube_version(cx: &Ctx, s: &str, span: std::ops::Range<usize>) -> Result<KubeVersion, ConfigError> {
    let nums: Vec<Option<u32>> = s.trim_start_matches('v').split('.').map(|p| p.parse().ok()).collect();
    let parsed = match nums.as_slice() {
        [Some(1), Some(minor)] => Some(KubeVersion { major: 1, minor: *minor, patch: None }),
        [Some(1), Some(minor), Some(patch)] => Some(KubeVersion { major: 1, minor: *minor, patch: Some(*patch) }),
        _ => None,
    };
    let hint = format!(
        "write \"1.MINOR\" or \"1.MINOR.PATCH\"; supported: 1.{} to 1.{}, e.g. \"{DEFAULT_KUBE_VERSION}\"",
        KUBE_MINORS.start(),
        KUBE_MINORS.end()
    );
    match parsed {
        Some(kv) if KUBE_MINORS.contains(&kv.minor) => Ok(kv),
        Some(_) => cx.err(
            span,
            "kubernetes_version",
            format!(
                "Kubernetes {s} is not supported: tagstack pins a containerd release (containerd's RELEASES.md support table) and an AWS cloud-controller-manager release (cloud-provider-aws) per minor, and has none for it"
            ),
            &hint,
        ),
        None => cx.err(span, "kubernetes_version", format!("{s:?} is not a Kubernetes version"), &hint),
    }
}

fn network(cx: &Ctx, raw: &RawNetwork, region: &str) -> Result<NetworkSpec, ConfigError> {
    let vpc_cidr = cidr(cx, &raw.vpc_cidr, "network.vpc_cidr")?;
    if !(16..=28).contains(&vpc_cidr.prefix_len()) {
        return cx.err(
            raw.vpc_cidr.span(),
            "network.vpc_cidr",
            format!("a VPC block must be between /16 and /28, not /{}", vpc_cidr.prefix_len()),
            "use e.g. \"10.20.0.0/16\"",
        );
    }
    if raw.subnets.get_ref().is_empty() {
        return cx.err(
            raw.subnets.span(),
            "network.subnets",
            "no subnet is configured".into(),
            "add a [[network.subnets]] table with cidr and availability_zone",
        );
    }
    let mut subnets: Vec<SubnetSpec> = Vec::new();
    for (i, s) in raw.subnets.get_ref().iter().enumerate() {
        let key = format!("network.subnets[{i}].cidr");
        let net = cidr(cx, &s.cidr, &key)?;
        if !vpc_cidr.contains(&net) {
            return cx.err(
                s.cidr.span(),
                &key,
                format!("{net} is not inside the VPC block {vpc_cidr}"),
                "pick a block inside network.vpc_cidr",
            );
        }
        if !(16..=28).contains(&net.prefix_len()) {
            return cx.err(
                s.cidr.span(),
                &key,
                format!("a subnet must be between /16 and /28, not /{}", net.prefix_len()),
                "use e.g. a /24",
            );
        }
        if let Some((j, other)) =
            subnets.iter().enumerate().find(|(_, o)| o.cidr.contains(&net) || net.contains(&o.cidr))
        {
            return cx.err(
                s.cidr.span(),
                &key,
                format!("{net} overlaps network.subnets[{j}] ({})", other.cidr),
                "give each subnet its own block",
            );
        }
        let az = s.availability_zone.get_ref();
        let suffix = az.strip_prefix(region).unwrap_or("");
        // A zone letter (eu-west-3a) or a local zone (us-west-2-lax-1a); never another region's digit.
        let letter_first = suffix.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '-');
        if !letter_first || !suffix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return cx.err(
                s.availability_zone.span(),
                &format!("network.subnets[{i}].availability_zone"),
                format!("{az:?} is not an availability zone of {region}"),
                &format!("write e.g. \"{region}a\""),
            );
        }
        subnets.push(SubnetSpec { cidr: net, availability_zone: az.clone() });
    }
    Ok(NetworkSpec { vpc_cidr, subnets })
}

fn expand_path(raw: &str, config_file: &Path, home: Option<&Path>) -> Option<PathBuf> {
    if let Some(rest) = raw.strip_prefix("~/") {
        return home.map(|h| h.join(rest));
    }
    let p = Path::new(raw);
    if p.is_absolute() {
        return Some(p.to_path_buf());
    }
    // Relative paths are relative to the config file, so CI and laptops agree.
    Some(config_file.parent().unwrap_or(Path::new(".")).join(p))
}

fn ssh(
    cx: &Ctx,
    raw: &RawConfig,
    home: Option<&Path>,
    read: &dyn Fn(&Path) -> io::Result<String>,
    need_public_key: bool,
) -> Result<SshSpec, ConfigError> {
    let private = raw.ssh.as_ref().and_then(|s| s.private_key.as_ref());
    let known_hosts = match raw.ssh.as_ref().and_then(|s| s.known_hosts.as_ref()) {
        None => None,
        Some(k) => match expand_path(k.get_ref(), cx.file, home) {
            Some(p) => Some(p),
            None => {
                return cx.err(
                    k.span(),
                    "ssh.known_hosts",
                    format!("cannot expand {:?}: HOME is not set", k.get_ref()),
                    "write an absolute path",
                );
            }
        },
    };
    let key = raw.ssh.as_ref().and_then(|s| s.public_key.as_ref());
    let (path_text, span) =
        key.map_or(("~/.ssh/id_ed25519.pub".to_string(), 0..0), |k| (k.get_ref().clone(), k.span()));
    let Some(path) = expand_path(&path_text, cx.file, home) else {
        return cx.err(
            span,
            "ssh.public_key",
            format!("cannot expand {path_text:?}: HOME is not set"),
            "write an absolute path",
        );
    };
    // The private key sits next to the public one unless configured; ssh reads it, we never do.
    let private_key_path = match private {
        Some(p) => match expand_path(p.get_ref(), cx.file, home) {
            Some(pp) => pp,
            None => {
                return cx.err(
                    p.span(),
                    "ssh.private_key",
                    format!("cannot expand {:?}: HOME is not set", p.get_ref()),
                    "write an absolute path",
                );
            }
        },
        None => path.with_extension(""),
    };
    let text = match (read(&path), need_public_key) {
        (Ok(t), _) => t,
        (Err(_), false) => String::new(),
        (Err(e), true) => {
            return cx.err(
                span,
                "ssh.public_key",
                format!("cannot read {}: {e}", path.display()),
                "create one with `ssh-keygen -t ed25519` or point ssh.public_key at an existing .pub file",
            );
        }
    };
    let line = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).unwrap_or("").to_string();
    let kinds = ["ssh-ed25519 ", "ssh-rsa ", "ecdsa-sha2-nistp256 ", "ecdsa-sha2-nistp384 ", "ecdsa-sha2-nistp521 "];
    if need_public_key && !kinds.iter().any(|k| line.starts_with(k)) {
        let hint = if line.contains("PRIVATE KEY") {
            "that is a private key: point at the .pub file"
        } else {
            "expected an OpenSSH public key line such as \"ssh-ed25519 AAAA... me@host\""
        };
        return cx.err(span, "ssh.public_key", format!("{} is not an OpenSSH public key", path.display()), hint);
    }
    let user = raw.ssh.as_ref().and_then(|s| s.user.as_ref());
    let user_name = user.map_or_else(|| "ubuntu".to_string(), |u| u.get_ref().clone());
    if !super::cluster::is_valid_login(&user_name) {
        return cx.err(
            user.map_or(0..0, |u| u.span()),
            "ssh.user",
            format!("{user_name:?} is not a valid login name"),
            super::cluster::LOGIN_HINT,
        );
    }
    Ok(SshSpec { public_key_path: path, private_key_path, known_hosts, public_key: line, user: user_name })
}

/// The text of `ssh.known_hosts`: a file tagstack is told to trust must exist, or ssh would
/// quietly trust nothing from it and fail at the first connection instead of here.
fn known_hosts_text(
    cx: &Ctx,
    raw: &RawConfig,
    path: &Path,
    read: &dyn Fn(&Path) -> io::Result<String>,
) -> Result<String, ConfigError> {
    read(path).or_else(|e| {
        let span = raw.ssh.as_ref().and_then(|s| s.known_hosts.as_ref()).map_or(0..0, |k| k.span());
        cx.err(
            span,
            "ssh.known_hosts",
            format!("cannot read {}: {e}", path.display()),
            "point ssh.known_hosts at an existing known_hosts file, or remove it and give every [[nodes]] a host_key",
        )
    })
}

fn ami(cx: &Ctx, raw: &RawConfig) -> Result<AmiSpec, ConfigError> {
    let Some(a) = &raw.ami else {
        return Ok(AmiSpec::Lookup { owner: DEFAULT_AMI_OWNER.into(), name: DEFAULT_AMI_NAME.into() });
    };
    match (&a.id, &a.owner, &a.name) {
        (Some(id), None, None) => {
            let s = id.get_ref();
            let hex = s.strip_prefix("ami-").unwrap_or("");
            if !(hex.len() == 8 || hex.len() == 17) || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return cx.err(
                    id.span(),
                    "ami.id",
                    format!("{s:?} is not an AMI id"),
                    "AMI ids look like \"ami-0abcdef1234567890\"",
                );
            }
            Ok(AmiSpec::Id(s.clone()))
        }
        (None, Some(owner), Some(name)) => {
            if owner.get_ref().is_empty() || name.get_ref().is_empty() {
                return cx.err(
                    owner.span(),
                    "ami.owner",
                    "owner and name must not be empty".into(),
                    &format!("e.g. owner = \"{DEFAULT_AMI_OWNER}\", name = \"ubuntu/images/...-server-*\""),
                );
            }
            Ok(AmiSpec::Lookup { owner: owner.get_ref().clone(), name: name.get_ref().clone() })
        }
        (Some(id), _, _) => cx.err(
            id.span(),
            "ami.id",
            "give either ami.id or ami.owner + ami.name, not both".into(),
            "remove ami.id to look the image up by name, or remove owner and name",
        ),
        (None, Some(o), None) => cx.err(
            o.span(),
            "ami.name",
            "ami.owner needs ami.name".into(),
            &format!("add a name filter such as \"{DEFAULT_AMI_NAME}\""),
        ),
        (None, None, Some(n)) => cx.err(
            n.span(),
            "ami.owner",
            "ami.name needs ami.owner".into(),
            &format!("add the owning account id, e.g. \"{DEFAULT_AMI_OWNER}\" for Canonical"),
        ),
        (None, None, None) => Err(ConfigError::new(cx.file, "[ami] is empty")
            .key("ami")
            .hint("give ami.id, or ami.owner + ami.name, or remove the table for the Ubuntu 24.04 default")),
    }
}

fn group(
    cx: &Ctx,
    raw: Option<&RawNodeGroup>,
    key: &str,
    default_count: u32,
    default_gb: u32,
) -> Result<NodeGroupSpec, ConfigError> {
    let count = match raw.and_then(|g| g.count.as_ref()) {
        Some(c) if !(0..=MAX_WORKERS).contains(c.get_ref()) => {
            return cx.err(
                c.span(),
                &format!("{key}.count"),
                format!("{} is out of range", c.get_ref()),
                &format!("use 0 to {MAX_WORKERS}"),
            );
        }
        Some(c) => u32::try_from(*c.get_ref()).unwrap_or(default_count),
        None => default_count,
    };
    let instance_type = match raw.and_then(|g| g.instance_type.as_ref()) {
        Some(t) => {
            let s = t.get_ref();
            let ok = s.split_once('.').is_some_and(|(fam, size)| {
                let part = |p: &str| {
                    !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                };
                part(fam) && part(size)
            });
            if !ok {
                return cx.err(
                    t.span(),
                    &format!("{key}.instance_type"),
                    format!("{s:?} is not an EC2 instance type"),
                    "write family.size, e.g. \"t3.large\"",
                );
            }
            s.clone()
        }
        None => "t3.large".to_string(),
    };
    let root_volume_gb = match raw.and_then(|g| g.root_volume_gb.as_ref()) {
        Some(v) if !(8..=16384).contains(v.get_ref()) => {
            return cx.err(
                v.span(),
                &format!("{key}.root_volume_gb"),
                format!("{} GiB is out of range", v.get_ref()),
                "gp3 root volumes take 8 to 16384 GiB; kubeadm nodes want at least 20",
            );
        }
        Some(v) => u32::try_from(*v.get_ref()).unwrap_or(default_gb),
        None => default_gb,
    };
    Ok(NodeGroupSpec { count, instance_type, root_volume_gb })
}

fn timeouts(cx: &Ctx, raw: &RawConfig) -> Result<Timeouts, ConfigError> {
    let get = |v: Option<&S<String>>, key: &str, default: Duration| -> Result<Duration, ConfigError> {
        v.map_or(Ok(default), |v| duration(cx, v, key, &TIMEOUT))
    };
    let t = raw.timeouts.as_ref();
    let default = Timeouts::default();
    Ok(Timeouts {
        aws_consistency: get(
            t.and_then(|t| t.aws_consistency.as_ref()),
            "timeouts.aws_consistency",
            default.aws_consistency,
        )?,
        instances_running: get(
            t.and_then(|t| t.instances_running.as_ref()),
            "timeouts.instances_running",
            default.instances_running,
        )?,
    })
}
