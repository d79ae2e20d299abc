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
