//! Unit and snapshot tests of config validation. Every bad config is [`BASE`] with one small
//! textual edit, so the line and column in each snapshot point at a known place; the snapshots
//! hold the full message (file:line:col, key, message, hint) exactly as the user sees it.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{AmiSpec, ConfigError, KubeVersion, NodeGroupSpec, Spec, SubnetSpec};

const FILE: &str = "config/test.toml";
const HOME: &str = "/home/u";
const KEY_LINE: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5 me@laptop";
const HOST_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5";
const PRIVATE_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n";

/// A valid environment that leaves every optional table out, so it also exercises the defaults.
/// Line numbers matter: the snapshots point into this text.
const BASE: &str = r#"# tagstack test environment
project = "demo"
environment = "dev"
region = "eu-west-3"
admin_cidrs = ["203.0.113.7/32", "198.51.100.0/24"]

[network]
vpc_cidr = "10.20.0.0/16"

[[network.subnets]]
cidr = "10.20.1.0/24"
availability_zone = "eu-west-3a"

[[network.subnets]]
cidr = "10.20.2.0/24"
availability_zone = "eu-west-3b"
"#;

/// The two `[[network.subnets]]` blocks of [`BASE`], for the cases that replace them.
const SUBNETS: &str = r#"[[network.subnets]]
cidr = "10.20.1.0/24"
availability_zone = "eu-west-3a"

[[network.subnets]]
cidr = "10.20.2.0/24"
availability_zone = "eu-west-3b"
"#;

/// The fake file system: the key files a test may point at, and nothing else.
fn reader(p: &Path) -> io::Result<String> {
    match p.to_str() {
        Some("/home/u/.ssh/id_ed25519.pub" | "/home/u/keys/work.pub" | "config/keys/ci.pub") => {
            Ok(format!("{KEY_LINE}\n"))
        }
        Some("/home/u/.ssh/id_ed25519") => Ok(PRIVATE_KEY.to_string()),
        Some("/home/u/.ssh/notes.txt") => Ok("# my keys\n\nremember to rotate\n".to_string()),
        Some("/etc/ssh/lab_known_hosts") => Ok(format!("[10.0.0.11]:2222 {HOST_KEY}\n")),
        // w1 on port 22 and a hashed `ssh-keygen -H` line for 10.0.0.12: neither is w1 on 2222.
        Some("/home/u/.ssh/known_hosts" | "config/known_hosts") => Ok(format!(
            "# lab machines\n10.0.0.11 {HOST_KEY}\n|1|CZ3Jw2eVTv4v7maimRDdMmT5yCI=|370EOQaV5Qa06PstX4cyM35ecdM= {HOST_KEY}\n"
        )),
        _ => Err(io::Error::new(io::ErrorKind::NotFound, "No such file or directory (os error 2)")),
    }
}

fn parse_with_home(source: &str, home: Option<&Path>) -> Result<Spec, ConfigError> {
    super::parse(Path::new(FILE), source, home, &reader)
}

fn parse(source: &str) -> Result<Spec, ConfigError> {
    parse_with_home(source, Some(Path::new(HOME)))
}

fn ok(source: &str) -> Spec {
    match parse(source) {
        Ok(spec) => spec,
        Err(e) => panic!("expected a valid config, got:\n{e}\n--- config ---\n{source}"),
    }
}

fn reject(source: &str) -> ConfigError {
    match parse(source) {
        Ok(spec) => panic!("expected a rejection, got {spec:?}\n--- config ---\n{source}"),
        Err(e) => e,
    }
}

/// [`BASE`] with the one occurrence of `replace` replaced by `by`.
fn with(replace: &str, by: &str) -> String {
    assert_eq!(BASE.matches(replace).count(), 1, "{replace:?} must occur exactly once in BASE");
    BASE.replacen(replace, by, 1)
}

/// [`BASE`] with a top-level key added after the `region` line, as line 5.
fn top(line: &str) -> String {
    with("region = \"eu-west-3\"\n", &format!("region = \"eu-west-3\"\n{line}\n"))
}

/// [`BASE`] with tables appended at the end (from line 18 on).
fn plus(tables: &str) -> String {
    format!("{BASE}\n{tables}")
}

fn path(p: &str) -> PathBuf {
    PathBuf::from(p)
}

// ---------------------------------------------------------------------------------------------
// Bad configs: one #[test] and one snapshot each.

macro_rules! bad_configs {
    ($($name:ident => $source:expr;)+) => {
        $(
            #[test]
            fn $name() {
                insta::assert_snapshot!(stringify!($name), reject(&$source).to_string());
            }
        )+
        /// Every case name, to count them and to check they are distinct configs.
        const BAD_CASES: &[(&str, fn() -> String)] = &[$((stringify!($name), || $source)),+];
    };
}

bad_configs! {
    // TOML itself (toml's errors, reshaped with the key and a hint).
    toml_syntax_error_unquoted_string => with("environment = \"dev\"", "environment = dev");
    toml_syntax_error_unclosed_table_header => with("[network]\n", "[network\n");
    unknown_top_level_key => with("region = ", "regoin = ");
    unknown_nested_key_in_workers => plus("[workers]\ncount = 2\ninstance_typ = \"t3.large\"\n");
    unknown_table => plus("[worker]\ncount = 2\n");
    wrong_type_workers_count_string => plus("[workers]\ncount = \"3\"\n");
    wrong_type_admin_cidrs_not_a_list => with(
        "admin_cidrs = [\"203.0.113.7/32\", \"198.51.100.0/24\"]",
        "admin_cidrs = \"203.0.113.7/32\"",
    );
    toml_syntax_error_duplicate_key => top("project = \"other\"");
    missing_required_project => with("project = \"demo\"\n", "");
    // Line 1 holds a key here: the error must still name the missing one, with no line.
    missing_required_environment_after_first_line_key => with(
        "# tagstack test environment\nproject = \"demo\"\nenvironment = \"dev\"\n",
        "project = \"demo\"\n",
    );
    missing_required_vpc_cidr => with("vpc_cidr = \"10.20.0.0/16\"\n", "");
    missing_required_subnet_availability_zone => with("availability_zone = \"eu-west-3b\"\n", "");
    missing_required_network_table => BASE.split("\n[network]").next().unwrap_or_default().to_string() + "\n";

    // Names that go into tags and IAM role names.
    project_uppercase => with("\"demo\"", "\"Demo\"");
    project_underscore => with("\"demo\"", "\"data_plat\"");
    project_leading_digit => with("\"demo\"", "\"1demo\"");
    project_trailing_dash => with("\"demo\"", "\"demo-\"");
    project_double_dash => with("\"demo\"", "\"data--plat\"");
    project_empty => with("\"demo\"", "\"\"");
    project_too_long_25_chars => with("\"demo\"", "\"abcdefghijklmnopqrstuvwxy\"");
    environment_invalid => with("\"dev\"", "\"Staging 1\"");
    project_and_environment_too_long_for_iam => with(
        "project = \"demo\"\nenvironment = \"dev\"",
        "project = \"abcdefghijklmnopqrstuvwx\"\nenvironment = \"abcdefghijklmnopq\"",
    );

    // Region and endpoint.
    region_invalid => with("\"eu-west-3\"", "\"eu-west\"");
    region_uppercase => with("\"eu-west-3\"", "\"EU-WEST-3\"");
    endpoint_url_without_scheme => top("endpoint_url = \"127.0.0.1:5000\"");
    endpoint_url_not_http => top("endpoint_url = \"ftp://127.0.0.1:5000\"");

    // VPC and subnets.
    vpc_cidr_invalid => with("vpc_cidr = \"10.20.0.0/16\"", "vpc_cidr = \"10.20.0.0\"");
    vpc_cidr_host_bits_set => with("vpc_cidr = \"10.20.0.0/16\"", "vpc_cidr = \"10.20.1.0/16\"");
    vpc_cidr_prefix_8_out_of_range => with("vpc_cidr = \"10.20.0.0/16\"", "vpc_cidr = \"10.0.0.0/8\"");
    subnet_outside_vpc => with("\"10.20.2.0/24\"", "\"10.30.2.0/24\"");
    subnets_overlap => with("\"10.20.2.0/24\"", "\"10.20.1.128/25\"");
    subnet_prefix_too_long => with("\"10.20.2.0/24\"", "\"10.20.2.0/29\"");
    subnet_host_bits_set => with("\"10.20.2.0/24\"", "\"10.20.2.1/24\"");
    subnet_az_not_in_region => with("\"eu-west-3b\"", "\"us-east-1b\"");
    subnet_az_is_the_region => with("\"eu-west-3b\"", "\"eu-west-3\"");
    subnet_az_of_a_longer_region_name => with("\"eu-west-3b\"", "\"eu-west-31b\"");
    no_subnets_empty_list => with(SUBNETS, "subnets = []\n");

    // Who may reach SSH and the API.
    admin_cidrs_empty => with("[\"203.0.113.7/32\", \"198.51.100.0/24\"]", "[]");
    admin_cidrs_invalid_entry => with("\"198.51.100.0/24\"", "\"198.51.100.0/33\"");
    admin_cidrs_address_without_prefix => with("\"198.51.100.0/24\"", "\"198.51.100.7\"");
    admin_cidrs_duplicate => with("\"198.51.100.0/24\"", "\"203.0.113.7/32\"");

    // Node groups.
    workers_count_negative => plus("[workers]\ncount = -1\n");
    workers_count_too_large => plus("[workers]\ncount = 201\n");
    workers_root_volume_too_small => plus("[workers]\nroot_volume_gb = 4\n");
    workers_instance_type_malformed => plus("[workers]\ninstance_type = \"t3large\"\n");
    control_plane_instance_type_uppercase => plus("[control_plane]\ninstance_type = \"T3.Large\"\n");
    control_plane_count_2 => plus("[control_plane]\ncount = 2\n");
    control_plane_count_0 => plus("[control_plane]\ncount = 0\n");
    control_plane_count_500 => plus("[control_plane]\ncount = 500\n");

    // AMI.
    ami_id_and_owner => plus("[ami]\nid = \"ami-0abcdef1234567890\"\nowner = \"099720109477\"\n");
    ami_id_malformed => plus("[ami]\nid = \"ami-123\"\n");
    ami_owner_without_name => plus("[ami]\nowner = \"099720109477\"\n");
    ami_name_without_owner => plus("[ami]\nname = \"ubuntu/images/*\"\n");
    ami_owner_empty => plus("[ami]\nowner = \"\"\nname = \"ubuntu/images/*\"\n");
    ami_table_empty => plus("[ami]\n");

    // Kubernetes version.
    kubernetes_version_malformed => top("kubernetes_version = \"latest\"");
    kubernetes_version_unsupported_1_20 => top("kubernetes_version = \"1.20\"");
    // UPSTREAM-AUDIT #25: 1.37 was accepted although no cloud-provider-aws release (and no
    // containerd support row) exists for it.
    kubernetes_version_unsupported_1_37 => top("kubernetes_version = \"1.37.1\"");
    cluster_node_address_unknown => plus("[cluster]\nnode_address = \"internal\"\n");

    // Timeouts.
    timeouts_duration_malformed => plus("[timeouts]\ninstances_running = \"5 minutes\"\n");
    timeouts_duration_zero => plus("[timeouts]\naws_consistency = \"0s\"\n");

    // Expiry.
    ttl_not_a_duration => top("ttl = \"two hours\"");
    ttl_shorter_than_a_minute => top("ttl = \"30s\"");

    // SSH key and user.
    ssh_public_key_file_missing => plus("[ssh]\npublic_key = \"~/.ssh/id_rsa.pub\"\n");
    ssh_public_key_is_a_private_key => plus("[ssh]\npublic_key = \"~/.ssh/id_ed25519\"\n");
    ssh_public_key_not_a_key => plus("[ssh]\npublic_key = \"~/.ssh/notes.txt\"\n");
    ssh_user_invalid => plus("[ssh]\nuser = \"ubuntu admin\"\n");

    // [monitoring] (issue 13).
    monitoring_unknown_key => plus("[monitoring]\nenabled = true\nretension = \"15d\"\n");
    monitoring_retention_malformed => plus("[monitoring]\nenabled = true\nretention = \"two weeks\"\n");
    monitoring_retention_not_whole_hours => plus("[monitoring]\nenabled = true\nretention = \"150m\"\n");
    monitoring_retention_too_short => plus("[monitoring]\nenabled = true\nretention = \"1h\"\n");
    monitoring_storage_out_of_range => plus("[monitoring]\nenabled = true\nstorage_gb = 0\n");
    monitoring_webhook_not_http => plus("[monitoring]\nenabled = true\nalert_webhooks = [\"hooks.example.com/t0ken\"]\n");
    monitoring_webhook_duplicate => plus("[monitoring]\nenabled = true\nalert_webhooks = [\"https://a.example/x\", \"https://a.example/x\"]\n");
}

#[test]
fn bad_cases_are_many_and_distinct() {
    assert!(BAD_CASES.len() >= 24, "only {} bad cases", BAD_CASES.len());
    let mut sources: Vec<String> = BAD_CASES.iter().map(|(_, f)| f()).collect();
    sources.sort();
    sources.dedup();
    assert_eq!(sources.len(), BAD_CASES.len(), "two cases build the same config");
    for (name, f) in BAD_CASES {
        assert_ne!(f(), BASE, "{name} does not change BASE");
    }
}

/// The default key path (no [ssh] table) has no place in the file: the error must not point at
/// line 1, which holds something else.
#[test]
fn default_public_key_without_home_has_no_location() {
    let err = match parse_with_home(BASE, None) {
        Ok(spec) => panic!("expected a rejection, got {spec:?}"),
        Err(e) => e,
    };
    assert_eq!(err.location, None);
    assert_eq!(err.key.as_deref(), Some("ssh.public_key"));
    insta::assert_snapshot!("default_public_key_without_home", err.to_string());
}

#[test]
fn default_public_key_missing_has_no_location() {
    let reader_without_keys = |_: &Path| -> io::Result<String> {
        Err(io::Error::new(io::ErrorKind::NotFound, "No such file or directory (os error 2)"))
    };
    let err = match super::parse(Path::new(FILE), BASE, Some(Path::new(HOME)), &reader_without_keys) {
        Ok(spec) => panic!("expected a rejection, got {spec:?}"),
        Err(e) => e,
    };
    assert_eq!(err.location, None);
    insta::assert_snapshot!("default_public_key_missing", err.to_string());
}

/// The structured fields, not just the rendering: location, key and hint of one error.
#[test]
fn error_fields_point_at_the_value() {
    let err = reject(&with("vpc_cidr = \"10.20.0.0/16\"", "vpc_cidr = \"10.20.1.0/16\""));
    assert_eq!(err.file, path(FILE));
    assert_eq!(err.location, Some((8, 12)));
    assert_eq!(err.key.as_deref(), Some("network.vpc_cidr"));
    assert_eq!(err.message, "\"10.20.1.0/16\" has host bits set");
    assert_eq!(err.hint.as_deref(), Some("did you mean \"10.20.0.0/16\"?"));

    let err = reject(&plus("[workers]\ncount = \"3\"\n"));
    assert_eq!(err.location, Some((19, 9)));
    assert_eq!(err.key.as_deref(), Some("workers.count"));

    // A missing top-level key has no place in the file; a missing nested one points at its table.
    let err = reject(&with("project = \"demo\"\n", ""));
    assert_eq!((err.location, err.key.as_deref()), (None, Some("project")));
    let err = reject(&with("vpc_cidr = \"10.20.0.0/16\"\n", ""));
    assert_eq!((err.location, err.key.as_deref()), (Some((7, 1)), Some("network.vpc_cidr")));
}

// ---------------------------------------------------------------------------------------------
// Good configs.

#[test]
fn base_parses_with_defaults() {
    let spec = ok(BASE);
    assert_eq!(spec.file, path(FILE));
    assert_eq!(spec.id.project, "demo");
    assert_eq!(spec.id.environment, "dev");
    assert_eq!(spec.region, "eu-west-3");
    assert_eq!(spec.endpoint_url, None);
    let admin: Vec<String> = spec.admin_cidrs.iter().map(ToString::to_string).collect();
    assert_eq!(admin, ["203.0.113.7/32", "198.51.100.0/24"]);
    assert_eq!(spec.kubernetes_version, KubeVersion { major: 1, minor: 36, patch: None });
    assert_eq!(super::DEFAULT_KUBE_VERSION, "1.36");
    assert_eq!(spec.network.vpc_cidr.to_string(), "10.20.0.0/16");
    assert_eq!(
        spec.network.subnets,
        [
            SubnetSpec { cidr: "10.20.1.0/24".parse().unwrap(), availability_zone: "eu-west-3a".into() },
            SubnetSpec { cidr: "10.20.2.0/24".parse().unwrap(), availability_zone: "eu-west-3b".into() },
        ]
    );
    assert_eq!(spec.ssh.public_key_path, path("/home/u/.ssh/id_ed25519.pub"));
    assert_eq!(spec.ssh.public_key, KEY_LINE);
    assert_eq!(spec.ssh.user, "ubuntu");
    assert_eq!(
        spec.ami,
        AmiSpec::Lookup {
            owner: "099720109477".into(),
            name: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*".into()
        }
    );
    assert_eq!(spec.control_plane, NodeGroupSpec { count: 1, instance_type: "t3.large".into(), root_volume_gb: 30 });
    assert_eq!(spec.workers, NodeGroupSpec { count: 3, instance_type: "t3.large".into(), root_volume_gb: 50 });
    assert_eq!(spec.timeouts.aws_consistency, Duration::from_secs(120));
    assert_eq!(spec.timeouts.instances_running, Duration::from_secs(600));
    assert_eq!(spec.id.iam_name(super::NodeRole::ControlPlane), "tagstack-demo-dev-control-plane");
}

#[test]
fn base_spec_snapshot() {
    insta::assert_json_snapshot!("base_spec", ok(BASE));
}

#[test]
fn every_key_written_is_used() {
    let spec = ok(&plus(
        r#"[ssh]
public_key = "~/keys/work.pub"
user = "admin"

[ami]
id = "ami-0abcdef1234567890"

[control_plane]
count = 1
instance_type = "m6i.xlarge"
root_volume_gb = 40

[workers]
count = 0
instance_type = "r6i.2xlarge"
root_volume_gb = 16384

[timeouts]
aws_consistency = "90s"
instances_running = "1h30m"
"#,
    )
    .replace(
        "region = \"eu-west-3\"\n",
        "region = \"eu-west-3\"\nendpoint_url = \"http://127.0.0.1:5000/\"\nkubernetes_version = \"v1.35.2\"\n",
    ));
    assert_eq!(spec.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
    assert_eq!(spec.kubernetes_version, KubeVersion { major: 1, minor: 35, patch: Some(2) });
    assert_eq!(spec.ssh.user, "admin");
    assert_eq!(spec.ami, AmiSpec::Id("ami-0abcdef1234567890".into()));
    assert_eq!(spec.control_plane, NodeGroupSpec { count: 1, instance_type: "m6i.xlarge".into(), root_volume_gb: 40 });
    assert_eq!(spec.workers, NodeGroupSpec { count: 0, instance_type: "r6i.2xlarge".into(), root_volume_gb: 16384 });
    assert_eq!(spec.timeouts.aws_consistency, Duration::from_secs(90));
    assert_eq!(spec.timeouts.instances_running, Duration::from_secs(5400));
}

#[test]
fn limits_are_inclusive() {
    let spec = ok(&with(
        "project = \"demo\"\nenvironment = \"dev\"",
        "project = \"abcdefghijklmnopqrstuvwx\"\nenvironment = \"abcdefghijklmnop\"",
    ));
    assert_eq!(spec.id.project.len() + spec.id.environment.len(), 40);
    assert_eq!(spec.id.iam_name(super::NodeRole::ControlPlane).len(), 64);
    assert_eq!(ok(&plus("[workers]\ncount = 200\nroot_volume_gb = 8\n")).workers.count, 200);
    assert_eq!(ok(&top("kubernetes_version = \"1.33\"")).kubernetes_version.minor, 33);
    assert_eq!(ok(&top("kubernetes_version = \"1.36.2\"")).kubernetes_version.patch, Some(2));
    let spec = ok(&with("vpc_cidr = \"10.20.0.0/16\"", "vpc_cidr = \"10.20.0.0/20\""));
    assert_eq!(spec.network.vpc_cidr.prefix_len(), 20);
}

#[test]
fn admin_cidrs_whole_internet_accepted_when_explicit() {
    let spec = ok(&with("[\"203.0.113.7/32\", \"198.51.100.0/24\"]", "[\"0.0.0.0/0\"]"));
    let admin: Vec<String> = spec.admin_cidrs.iter().map(ToString::to_string).collect();
    assert_eq!(admin, ["0.0.0.0/0"]);
}

#[test]
fn admin_cidrs_are_required() {
    let err = reject(&with("admin_cidrs = [\"203.0.113.7/32\", \"198.51.100.0/24\"]\n", ""));
    assert_eq!(err.message, "missing field `admin_cidrs`");
}

#[test]
fn tilde_expands_to_the_given_home() {
    let spec = ok(&plus("[ssh]\npublic_key = \"~/keys/work.pub\"\n"));
    assert_eq!(spec.ssh.public_key_path, path("/home/u/keys/work.pub"));
    assert_eq!(spec.ssh.public_key, KEY_LINE);
}

#[test]
fn relative_public_key_is_relative_to_the_config_file() {
    let spec = ok(&plus("[ssh]\npublic_key = \"keys/ci.pub\"\n"));
    assert_eq!(spec.ssh.public_key_path, path("config/keys/ci.pub"));
    assert_eq!(spec.ssh.public_key, KEY_LINE);
}

#[test]
fn absolute_public_key_is_used_as_is() {
    let spec = ok(&plus("[ssh]\npublic_key = \"/home/u/keys/work.pub\"\n"));
    assert_eq!(spec.ssh.public_key_path, path("/home/u/keys/work.pub"));
}

/// The shipped example environments must keep parsing.
#[test]
fn shipped_examples_parse() {
    let any_key = |_: &Path| -> io::Result<String> { Ok(format!("{KEY_LINE}\n")) };
    let examples = [
        ("config/dev.toml", include_str!("../../config/dev.toml")),
        ("config/prod.toml", include_str!("../../config/prod.toml")),
        ("config/sandbox.toml", include_str!("../../config/sandbox.toml")),
    ];
    for (file, source) in examples {
        let spec = match super::parse(Path::new(file), source, Some(Path::new(HOME)), &any_key) {
            Ok(spec) => spec,
            Err(e) => panic!("{file} does not parse:\n{e}"),
        };
        assert_eq!(spec.file, path(file));
        assert_eq!(Some(spec.id.environment.as_str()), Path::new(file).file_stem().and_then(|s| s.to_str()));
        assert_eq!(spec.ssh.public_key, KEY_LINE);
        assert!(!spec.admin_cidrs.is_empty());
    }
    let sandbox = super::parse(
        Path::new("config/sandbox.toml"),
        include_str!("../../config/sandbox.toml"),
        Some(Path::new(HOME)),
        &any_key,
    )
    .unwrap();
    assert_eq!(sandbox.ssh.public_key_path, path("config/../.sandbox/id_ed25519.pub"));
    assert_eq!(sandbox.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
}

// ---------------------------------------------------------------------------------------------
// provider = "static": machines that already exist.

const STATIC: &str = r#"project = "lab"
environment = "bench"
provider = "static"

[ssh]
user = "root"

[[nodes]]
name = "cp"
address = "10.0.0.10"
role = "control-plane"
host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5"

[[nodes]]
name = "w1"
address = "10.0.0.11"
port = 2222
role = "worker"
host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5 root@w1"
"#;

#[test]
fn static_provider_resolves_nodes_and_needs_no_aws_keys() {
    let spec = ok(STATIC);
    let super::Provider::Static { nodes } = &spec.provider else { panic!("{:?}", spec.provider) };
    assert_eq!(nodes.len(), 2);
    assert_eq!((nodes[1].name.as_str(), nodes[1].port, nodes[1].role), ("w1", 2222, super::NodeRole::Worker));
    // The comment of a host key is dropped; ssh only compares type and key.
    assert_eq!(nodes[1].host_key.as_deref(), Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5"));
    assert_eq!(spec.workers.count, 1);
    assert_eq!(spec.ssh.private_key_path, PathBuf::from("/home/u/.ssh/id_ed25519"));
    assert_eq!(spec.cluster.max_parallel_ssh, 51);
    // No public key is needed (nothing is imported): a missing .pub file is fine.
    let no_pub = STATIC.replace("[ssh]\n", "[ssh]\npublic_key = \"~/.ssh/none.pub\"\n");
    assert!(parse(&no_pub).is_ok());
}

#[test]
fn static_provider_rejections() {
    let cases: &[(&str, String)] = &[
        ("provider_unknown", STATIC.replace("provider = \"static\"", "provider = \"gcp\"")),
        (
            "cluster_node_address_on_static",
            STATIC.replace("[ssh]\n", "[cluster]\nnode_address = \"private\"\n\n[ssh]\n"),
        ),
        ("static_without_nodes", STATIC.split("[[nodes]]").next().unwrap().to_string()),
        (
            "static_with_region",
            STATIC.replace("provider = \"static\"\n", "provider = \"static\"\nregion = \"eu-west-3\"\n"),
        ),
        ("static_two_control_planes", STATIC.replace("role = \"worker\"", "role = \"control-plane\"")),
        ("static_no_control_plane", STATIC.replace("role = \"control-plane\"", "role = \"worker\"")),
        ("static_bad_role", STATIC.replace("role = \"worker\"", "role = \"master\"")),
        (
            "static_bad_host_key",
            STATIC.replace(
                "host_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5 root@w1\"",
                "host_key = \"AAAAC3NzaC1lZDI1NTE5\"",
            ),
        ),
        ("static_bad_port", STATIC.replace("port = 2222", "port = 70000")),
        ("static_duplicate_name", STATIC.replace("name = \"w1\"", "name = \"cp\"")),
        ("static_bad_address", STATIC.replace("address = \"10.0.0.11\"", "address = \"10.0.0.11; rm -rf /\"")),
        ("static_bad_node_name", STATIC.replace("name = \"w1\"", "name = \"W_1\"")),
        ("aws_with_nodes", format!("{BASE}\n[[nodes]]\nname = \"x\"\naddress = \"10.0.0.1\"\nrole = \"worker\"\n")),
        ("cluster_parallel_out_of_range", STATIC.replace("[ssh]\n", "[cluster]\nmax_parallel_ssh = 0\n\n[ssh]\n")),
        ("cluster_timeout_too_short", STATIC.replace("[ssh]\n", "[cluster]\nbootstrap_timeout = \"1s\"\n\n[ssh]\n")),
        (
            "vpc_overlaps_pod_network",
            BASE.replace("10.20.0.0/16", "10.244.0.0/16")
                .replace("10.20.1.0/24", "10.244.1.0/24")
                .replace("10.20.2.0/24", "10.244.2.0/24"),
        ),
        (
            "vpc_overlaps_service_network",
            BASE.replace("10.20.0.0/16", "10.96.0.0/16")
                .replace("10.20.1.0/24", "10.96.1.0/24")
                .replace("10.20.2.0/24", "10.96.2.0/24"),
        ),
    ];
    for (name, source) in cases {
        assert_ne!(source, STATIC, "{name}: the edit did not apply");
        insta::assert_snapshot!(*name, reject(source).to_string());
    }
}

/// Node addresses and logins that would reach a command line as an option, or are no
/// address at all, are refused at load (exit 2) with the key and line.
#[test]
fn static_node_address_rejections() {
    let addr = |a: &str| STATIC.replace("address = \"10.0.0.11\"", &format!("address = {a:?}"));
    let cases: &[(&str, String)] = &[
        ("static_address_option", addr("-oProxyCommand=touch /tmp/pwned")),
        ("static_address_leading_dash", addr("-node1.example.com")),
        ("static_address_bad_dotted_decimal", addr("10.0.0.300")),
        ("static_address_short_dotted_decimal", addr("10.0.11")),
        ("static_address_space", addr("10.0.0.11 -p 2222")),
        ("static_address_ipv6", addr("2001:db8::11")),
        ("static_address_empty", addr("")),
        ("static_address_label_dash", addr("node1-.example.com")),
        ("static_address_empty_label", addr("node1..example.com")),
        ("static_address_label_too_long", addr(&format!("{}.example.com", "a".repeat(64)))),
        ("static_address_user_at", addr("root@10.0.0.11")),
        ("static_node_user_option", STATIC.replace("port = 2222\n", "port = 2222\nuser = \"-oProxyCommand=x\"\n")),
        ("ssh_user_leading_dash", STATIC.replace("user = \"root\"", "user = \"-root\"")),
        (
            "static_node_without_host_key",
            STATIC.replace("host_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5 root@w1\"\n", ""),
        ),
    ];
    for (name, source) in cases {
        assert_ne!(source, STATIC, "{name}: the edit did not apply");
        insta::assert_snapshot!(*name, reject(source).to_string());
    }
}

#[test]
fn static_node_addresses_accepted() {
    for a in ["10.0.0.11", "node1", "node-1.example.com", "node1.example.com.", "n1.10x", "a.b2"] {
        let source = STATIC.replace("address = \"10.0.0.11\"", &format!("address = {a:?}"));
        let spec = parse(&source).unwrap_or_else(|e| panic!("{a}: {e}"));
        let super::Provider::Static { nodes } = &spec.provider else { panic!() };
        assert_eq!(nodes[1].address, a);
    }
    // With ssh.known_hosts, a node may go without its own host_key.
    let source = STATIC
        .replace("host_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5 root@w1\"\n", "")
        .replace("[ssh]\n", "[ssh]\nknown_hosts = \"/etc/ssh/lab_known_hosts\"\n");
    assert!(parse(&source).is_ok());
}

/// A static node without a host_key must be listed in ssh.known_hosts (by the name ssh looks
/// it up by: `[address]:port` off port 22), and that file must exist: both checked at load.
#[test]
fn static_node_known_hosts() {
    let without_w1_key =
        STATIC.replace("host_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5 root@w1\"\n", "");
    let known_hosts = |path: &str| without_w1_key.replace("[ssh]\n", &format!("[ssh]\nknown_hosts = {path:?}\n"));
    let cases: &[(&str, String)] = &[
        ("static_node_not_in_known_hosts", known_hosts("~/.ssh/known_hosts")),
        ("static_node_not_in_relative_known_hosts", known_hosts("known_hosts")),
        ("known_hosts_missing", known_hosts("~/.ssh/lab_known_hosts")),
        ("known_hosts_missing_aws", plus("[ssh]\nknown_hosts = \"/etc/ssh/none\"\n")),
    ];
    for (name, source) in cases {
        insta::assert_snapshot!(*name, reject(source).to_string());
    }
    let err = reject(&cases[0].1);
    assert_eq!((err.key.as_deref(), err.location), (Some("nodes[1].host_key"), Some((16, 8))));

    // Listed: plainly at [address]:port, or hashed (`ssh-keygen -H` of `10.0.0.12 KEY`).
    assert!(parse(&known_hosts("/etc/ssh/lab_known_hosts")).is_ok());
    let hashed = known_hosts("~/.ssh/known_hosts")
        .replace("address = \"10.0.0.11\"\nport = 2222\n", "address = \"10.0.0.12\"\n");
    assert_ne!(hashed, known_hosts("~/.ssh/known_hosts"));
    assert!(parse(&hashed).is_ok());
    // Port 22 is looked up without brackets.
    let port_22 = known_hosts("~/.ssh/known_hosts").replace("port = 2222\n", "");
    assert!(parse(&port_22).is_ok());

    // `tagstack render` reads no host keys: neither the missing file nor the unlisted node stops it.
    for source in [known_hosts("~/.ssh/lab_known_hosts"), known_hosts("~/.ssh/known_hosts")] {
        let render = super::validate::parse_for(
            Path::new(FILE),
            &source,
            Some(Path::new(HOME)),
            &reader,
            super::validate::Purpose::Render,
        );
        assert!(render.is_ok(), "{render:?}");
    }
}

#[test]
fn stack_rejections() {
    let cases: &[(&str, &str)] = &[
        ("stack_unknown_key", "[stack.kafka]\nreplicas = 3\n"),
        ("stack_kafka_brokers_zero", "[stack.kafka]\nbrokers = 0\n"),
        ("stack_kafka_even_controllers", "[stack.kafka]\ncontrollers = 2\n"),
        ("stack_kafka_heap_too_big", "[stack.kafka]\nheap = \"2g\"\nmemory = \"2Gi\"\n"),
        ("stack_kafka_memory_too_small_for_default_heap", "[stack.kafka]\nmemory = \"1Gi\"\n"),
        ("stack_kafka_combined_four_brokers", "[stack.kafka]\nbrokers = 4\n"),
        // Within three quarters of the memory, but heap + direct memory + metaspace + code cache
        // + the JVM's overhead (config::JvmMemory) are not.
        ("stack_cassandra_memory_too_small_for_the_jvm", "[stack.cassandra]\nmemory = \"2Gi\"\n"),
        ("stack_cassandra_heap_too_big_for_the_jvm", "[stack.cassandra]\nheap = \"2g\"\n"),
        ("stack_kafka_heap_leaves_no_room_for_the_jvm", "[stack.kafka]\nheap = \"1536m\"\nmemory = \"2Gi\"\n"),
        ("stack_spark_worker_memory_too_small", "[stack.spark]\nworkers = 2\nworker_memory = \"1Gi\"\n"),
        ("stack_kafka_heap_malformed", "[stack.kafka]\nheap = \"2 GB\"\n"),
        ("stack_kafka_memory_malformed", "[stack.kafka]\nmemory = \"2G\"\n"),
        ("stack_kafka_cpu_malformed", "[stack.kafka]\ncpu = \"half\"\n"),
        ("stack_kafka_cluster_id_malformed", "[stack.kafka]\ncluster_id = \"my-cluster\"\n"),
        ("stack_kafka_image_unpinned", "[stack.kafka]\nimage = \"apache/kafka\"\n"),
        ("stack_kafka_image_bitnami", "[stack.kafka]\nimage = \"bitnami/kafka:3.7\"\n"),
        ("stack_cassandra_namespace_kube_system", "[stack.cassandra]\nnamespace = \"kube-system\"\n"),
        ("stack_cassandra_namespace_malformed", "[stack.cassandra]\nnamespace = \"Data_Stores\"\n"),
        ("stack_spark_namespace_monitoring", "[stack.spark]\nnamespace = \"monitoring\"\n"),
        ("stack_kafka_namespace_monitoring_node", "[stack.kafka]\nnamespace = \"monitoring-node\"\n"),
        (
            "stack_spark_namespace_shared",
            "[stack.cassandra]\nnamespace = \"data\"\n[stack.spark]\nnamespace = \"data\"\n",
        ),
        ("stack_cassandra_namespace_of_kafka", "[stack.cassandra]\nnamespace = \"kafka\"\n"),
        ("stack_kafka_namespace_of_spark", "[stack.kafka]\nnamespace = \"spark\"\n"),
        ("stack_cassandra_rack_malformed", "[stack.cassandra]\nrack = \"rack one\"\n"),
        ("stack_spark_image_without_version", "[stack.spark]\nimage = \"apache/spark@sha256:0123abcd\"\n"),
        ("stack_spark_workers_out_of_range", "[stack.spark]\nworkers = 500\n"),
        ("stack_ready_timeout_too_short", "[stack]\nready_timeout = \"1s\"\n"),
        ("stack_storage_class_malformed", "[stack]\nstorage_class = \"GP3 fast\"\n"),
        ("stack_enabled_not_a_bool", "[stack.spark]\nenabled = \"no\"\n"),
        ("stack_pin_digests_default_image", "[stack]\npin_digests = true\n"),
        (
            "stack_pin_digests_tag_only",
            "[stack]\npin_digests = true\n[stack.kafka]\nenabled = false\n[stack.cassandra]\nimage = \"cassandra:5.0\"\n",
        ),
    ];
    for (name, tables) in cases {
        insta::assert_snapshot!(*name, reject(&plus(tables)).to_string());
    }
}

/// `stack.pin_digests`: every enabled component by digest is accepted, a disabled one is not
/// checked, and without the option a digest is still allowed.
#[test]
fn stack_pin_digests_accepts_images_by_digest() {
    let d = "0".repeat(64);
    let spec = ok(&plus(&format!(
        "[stack]\npin_digests = true\n[stack.kafka]\nimage = \"apache/kafka:4.3.0@sha256:{d}\"\n[stack.cassandra]\nimage = \"cassandra:5.0@sha256:{d}\"\n[stack.spark]\nenabled = false\n"
    )));
    assert_eq!(spec.stack.kafka.unwrap().image, format!("apache/kafka:4.3.0@sha256:{d}"));
    assert!(spec.stack.spark.is_none());
    assert!(!super::stack::has_digest("apache/kafka:4.3.0@sha256:0123abcd"));
    assert!(!super::stack::has_digest(&format!("apache/kafka@sha256:{}", "A".repeat(64))));
}

#[test]
fn stack_defaults_and_overrides() {
    let spec = ok(BASE);
    let st = &spec.stack;
    assert_eq!(st.storage_class.as_deref(), Some("gp3"));
    assert_eq!(st.namespaces(), ["kafka", "cassandra", "spark"]);
    let k = st.kafka.as_ref().unwrap();
    assert_eq!((k.brokers, k.controllers, k.heap_mib, k.resources.memory_mib), (3, 0, 1024, 2048));
    let spec = ok(&plus(
        "[stack]\nstorage_class = \"\"\n[stack.kafka]\nenabled = false\n[stack.cassandra]\nnamespace = \"data\"\nheap = \"1536m\"\nmemory = \"4Gi\"\n[stack.spark]\nnamespace = \"kafka\"\n",
    ));
    assert_eq!(spec.stack.storage_class, None, "\"\" means the cluster's default class");
    assert!(spec.stack.kafka.is_none());
    assert_eq!(spec.stack.namespaces(), ["data", "kafka"], "a disabled component's namespace is free");
    assert_eq!(spec.stack.cassandra.as_ref().unwrap().heap_mib, 1536);
}

#[test]
fn backup_is_optional_with_a_documented_default_and_refused_where_it_cannot_be() {
    use super::{BackupSpec, DEFAULT_RETENTION_DAYS};
    assert_eq!(ok(BASE).backup, None);
    assert_eq!(ok(&format!("{BASE}\n[backup]\n")).backup, Some(BackupSpec { retention_days: DEFAULT_RETENTION_DAYS }));
    assert_eq!(ok(&format!("{BASE}\n[backup]\nretention_days = 30\n")).backup, Some(BackupSpec { retention_days: 30 }));
    // BASE has 16 lines; after the blank line, [backup] is line 18 and its key line 19.
    let e = parse(&format!("{BASE}\n[backup]\nretention_days = 0\n")).unwrap_err().to_string();
    assert!(
        e.starts_with("config/test.toml:19:18: `backup.retention_days`: 0 is not a number of days from 1 to 3650"),
        "{e}"
    );
    assert!(e.contains("hint: S3 expires snapshots after whole days; the default is 14"), "{e}");
    let e = parse(&format!("{BASE}\n[backup]\nkeep = true\n")).unwrap_err().to_string();
    assert!(e.contains("unknown field `keep`"), "{e}");
    let statics = format!("{}\n[backup]\n", crate::config::testing::STATIC_BASE);
    let e = super::parse(Path::new(FILE), &statics, Some(Path::new(HOME)), &reader).unwrap_err().to_string();
    assert!(e.contains("`backup`: [backup] keeps etcd snapshots in an S3 bucket"), "{e}");
    assert!(e.contains("hint: remove [backup], or use provider = \"aws\""), "{e}");
}

#[test]
fn monitoring_is_off_by_default_with_documented_defaults() {
    use super::{DEFAULT_RETENTION, DEFAULT_STORAGE_GB, MonitoringSpec};
    assert_eq!(ok(BASE).monitoring, None);
    assert_eq!(ok(&plus("[monitoring]\nstorage_gb = 50\n")).monitoring, None, "enabled defaults to false");
    let on = ok(&plus("[monitoring]\nenabled = true\n")).monitoring;
    assert_eq!(
        on,
        Some(MonitoringSpec { retention: DEFAULT_RETENTION, storage_gb: DEFAULT_STORAGE_GB, alert_webhooks: vec![] })
    );
    let m = ok(&plus(
        "[monitoring]\nenabled = true\nretention = \"36h\"\nstorage_gb = 50\nalert_webhooks = [\"https://hooks.example.com/a\"]\n",
    ))
    .monitoring
    .unwrap();
    assert_eq!((m.retention_flag(), m.retention_size_flag()), ("36h".to_string(), "43520MB".to_string()));
    assert_eq!(m.alert_webhooks, ["https://hooks.example.com/a"]);
    // A webhook may carry a token: a refusal never repeats it.
    let e = reject(&plus("[monitoring]\nenabled = true\nalert_webhooks = [\"hooks.example.com/t0ken\"]\n"));
    assert!(!e.to_string().contains("t0ken"), "{e}");
}
