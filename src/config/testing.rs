//! Test support for other modules: an environment file parsed with a fixed SSH public key and
//! home directory, and the small AWS environment their tests start from.

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

/// Parses `source` as `config/t.toml`; panics on an invalid config (a bug in the test).
#[allow(clippy::unwrap_used)]
pub fn parse(source: &str) -> Spec {
    super::parse(Path::new("config/t.toml"), source, Some(Path::new("/home/u")), &|_| Ok(PUBLIC_KEY.to_string()))
        .unwrap()
}
