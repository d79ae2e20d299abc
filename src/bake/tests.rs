//! The bake's pure half: the image list from the rendered manifests, the content address and
//! what changes it, and the scripts (snapshot and shellcheck).

use super::*;
use crate::config::testing::{AWS_BASE, parse};

fn spec(extra: &str) -> Spec {
    parse(&format!("{AWS_BASE}{extra}"))
}

#[test]
fn the_pull_list_comes_from_the_addons_and_the_stack() {
    let images = pull_list(&spec("")).unwrap();
    assert_eq!(
        images,
        [
            "docker.io/apache/kafka:4.3.0",
            "docker.io/apache/spark:4.1.2",
            "docker.io/library/cassandra:5.0",
            "public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:v1.64.0",
            "registry.k8s.io/provider-aws/cloud-controller-manager:v1.36.1",
        ]
    );
    // A configured image is what gets pulled: no second list to keep in step.
    let custom = pull_list(&spec("[stack.cassandra]\nimage = \"cassandra:5.0.6\"\n")).unwrap();
    assert!(custom.contains(&"docker.io/library/cassandra:5.0.6".to_string()), "{custom:?}");
    assert!(!custom.contains(&"docker.io/library/cassandra:5.0".to_string()), "{custom:?}");
}

#[test]
fn the_content_address_changes_with_each_input_and_only_then() {
    let base = Recipe::of(&spec(""), "ami-0base").unwrap();
    assert_eq!(base.hash(), Recipe::of(&spec(""), "ami-0base").unwrap().hash());
    assert_eq!(base.hash().len(), 64);
    assert_eq!(base.kubernetes, "1.36");
    // Another environment of the same config bakes the same image.
    let other_env = parse(&AWS_BASE.replace("environment = \"dev\"", "environment = \"prod\""));
    assert_eq!(Recipe::of(&other_env, "ami-0base").unwrap().hash(), base.hash());
    let changed = [
        Recipe::of(&spec(""), "ami-0other").unwrap(),
        Recipe::of(&parse(&AWS_BASE.replace("\"1.36\"", "\"1.36.2\"")), "ami-0base").unwrap(),
        Recipe::of(&parse(&AWS_BASE.replace("\"1.36\"", "\"1.35\"")), "ami-0base").unwrap(),
        Recipe::of(&spec("[stack.kafka]\nimage = \"apache/kafka:4.3.1\"\n"), "ami-0base").unwrap(),
        Recipe { prepare: format!("{}\n# changed", base.prepare), ..base.clone() },
        // A remote add-on source at another pin (Flannel's release URL here).
        Recipe {
            remote_addons: base
                .remote_addons
                .iter()
                .map(|a| crate::cluster::addons::Addon { source: a.source.replace("v0.28.8", "v0.28.9"), ..a.clone() })
                .collect(),
            ..base.clone()
        },
    ];
    for r in &changed {
        assert_ne!(r.hash(), base.hash(), "{}", r.canonical());
    }
}

#[test]
fn the_baked_prepare_script_names_no_environment() {
    let s = spec("");
    let baked = crate::cluster::render::bake_prepare_script(&s).unwrap();
    assert!(!baked.contains("demo-dev"), "environment name in the baked prepare script");
    assert!(!baked.contains("/etc/hosts:"), "the hosts step is the cluster stage's");
    assert!(baked.contains("installing git"), "one image serves both roles");
    // The cluster stage's own prepare still writes the hosts line.
    let cp = crate::cluster::render::prepare_script(&s, None, crate::config::NodeRole::Worker, "10.20.1.4").unwrap();
    assert!(cp.contains("control-plane.demo-dev.tagstack.internal"));
}

#[test]
fn bake_scripts_render_and_pass_shellcheck() {
    let recipe = Recipe::of(&spec(""), "ami-0base").unwrap();
    let scripts = [
        ("pull-images.sh", recipe.pull_script().unwrap()),
        ("generalise.sh", generalise_script().unwrap()),
        ("prepare-node-baked.sh", crate::cluster::render::bake_prepare_script(&spec("")).unwrap()),
    ];
    insta::assert_snapshot!("pull_images", scripts[0].1);
    insta::assert_snapshot!("generalise", scripts[1].1);
    for (name, text) in &scripts {
        assert!(!text.contains("{{") && !text.contains("{%"), "{name} has unrendered template syntax");
        crate::testing::shellcheck(name, text);
    }
}

#[test]
fn the_remote_addon_sources_are_hashed_by_their_pins_and_written_into_the_pull_script() {
    let recipe = Recipe::of(&spec(""), "ami-0base").unwrap();
    let names: Vec<&str> = recipe.remote_addons.iter().map(|a| a.name).collect();
    assert_eq!(names, ["flannel", "kube-network-policies", "aws-cloud-controller-manager", "aws-ebs-csi-driver"]);
    let canonical = recipe.canonical();
    let sources = canonical.lines().find_map(|l| l.strip_prefix("addon-sources=")).unwrap();
    assert_eq!(
        sources.split(',').collect::<Vec<_>>(),
        [
            "https://github.com/flannel-io/flannel/releases/download/v0.28.8/kube-flannel.yml",
            "https://raw.githubusercontent.com/kubernetes-sigs/kube-network-policies/ee995c5d716873969f9adc0f8239e08aab0e69a0/install.yaml",
            "github.com/kubernetes/cloud-provider-aws/examples/existing-cluster/base/?ref=v1.36.1",
            "github.com/kubernetes-sigs/aws-ebs-csi-driver/deploy/kubernetes/overlays/stable/?ref=v1.64.0",
        ]
    );
    // The kustomizations the script writes are the ones `up` uploads.
    let script = recipe.pull_script().unwrap();
    for a in recipe.remote_addons.iter().filter(|a| a.kustomize) {
        for (_, content) in &a.files {
            assert!(script.contains(content.trim_end()), "{} not in the script", a.name);
        }
    }
}

/// The text between the script's image helper markers.
fn image_helpers(script: &str) -> &str {
    let start = script.find("# >>> image helpers").unwrap();
    let end = script.find("# <<< image helpers").unwrap();
    &script[start..end]
}

fn bash(script: &str, stdin: &str) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{script}");
    String::from_utf8(out.stdout).unwrap()
}

/// One definition of the normalisation rule: the script's shell and `images::normalise` agree
/// on every case, and the script's extraction finds what `images::image_refs` finds in
/// `image:` fields.
#[test]
fn the_pull_scripts_extraction_and_normalisation_are_the_rust_ones() {
    let helpers = image_helpers(&Recipe::of(&spec(""), "ami-0base").unwrap().pull_script().unwrap()).to_string();
    let cases = [
        "cassandra:5.0",
        "apache/kafka:4.3.0",
        "index.docker.io/apache/spark:4.1.2",
        "busybox",
        "registry.k8s.io/pause:3.10",
        "localhost/x",
        "reg:5000/team/app",
        "reg:5000/team/app:1",
        "ghcr.io/a/b:1@sha256:abc",
        "Upper/app:1",
        "ghcr.io/flannel-io/flannel:v0.28.8",
        "index.docker.io/busybox@sha256:0123",
        "a/b/c",
    ];
    let shell = bash(&format!("{helpers}\nwhile read -r r; do normalise \"$r\"; done"), &(cases.join("\n") + "\n"));
    let rust: Vec<String> = cases.iter().map(|c| images::normalise(c)).collect();
    assert_eq!(shell.lines().collect::<Vec<_>>(), rust);

    let manifest = r#"
kind: DaemonSet
spec:
  template:
    spec:
      initContainers:
      - name: install-cni-plugin
        image: ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel2
      containers:
        - image: "busybox:1.37"   # quoted, with a comment
          name: a
        -   name: b
            image: 'registry.k8s.io/pause:3.10'
        - name: c
          args: ["spark.kubernetes.container.image=apache/spark:4.1.2"]
      # image: not-this:1
---
kind: Deployment
spec:
  template:
    spec:
      containers:
      - image: cassandra:5.0
"#;
    let shell =
        bash(&format!("{helpers}\nimage_lines | while read -r i; do normalise \"$i\"; done | sort -u"), manifest);
    assert_eq!(shell.lines().collect::<Vec<_>>(), images::image_refs([manifest]));
}
