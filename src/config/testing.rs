//! Test support for other modules: an environment file parsed with a fixed SSH public key and
//! home directory, and the environments their tests start from (the one home of test config
//! text outside `config`'s own tests, whose cases are edits of their own base text).

use std::path::Path;

use super::Spec;

pub const PUBLIC_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd0BzvS3R+uygL7/APZNYODv64EwSfYypxOYC5em7nB me";

/// One subnet, defaults everywhere else.
pub const AWS_BASE: &str = r#"project = "demo"
environment = "dev"
region = "eu-west-3"
admin_cidrs = ["203.0.113.0/24"]
kubernetes_version = "1.36"
[network]
vpc_cidr = "10.20.0.0/16"
[[network.subnets]]
cidr = "10.20.1.0/24"
availability_zone = "eu-west-3a"
"#;

/// A second subnet for [`AWS_BASE`], in another availability zone.
pub const SECOND_SUBNET: &str = r#"[[network.subnets]]
cidr = "10.20.2.0/24"
availability_zone = "eu-west-3b"
"#;

/// Machines that already exist: a control plane and a worker on another SSH port, with
/// pinned host keys.
pub const STATIC_BASE: &str = r#"project = "lab"
environment = "bench"
provider = "static"
kubernetes_version = "1.36"

[ssh]
private_key = "/home/u/.ssh/id_ed25519"
user = "root"

[[nodes]]
name = "cp"
address = "10.77.3.10"
role = "control-plane"
host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd0BzvS3R+uygL7/APZNYODv64EwSfYypxOYC5em7nB"

[[nodes]]
name = "w1"
address = "10.77.3.11"
port = 2222
role = "worker"
host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd0BzvS3R+uygL7/APZNYODv64EwSfYypxOYC5em7nB"
"#;

/// Parses `source` as `config/t.toml`; panics on an invalid config (a bug in the test).
pub fn parse(source: &str) -> Spec {
    parse_with_key(source, PUBLIC_KEY)
}

/// [`parse`] with another public key in `~/.ssh/id_ed25519.pub`.
#[allow(clippy::unwrap_used)]
pub fn parse_with_key(source: &str, public_key: &str) -> Spec {
    super::parse(Path::new("config/t.toml"), source, Some(Path::new("/home/u")), &|_| Ok(public_key.to_string()))
        .unwrap()
}
