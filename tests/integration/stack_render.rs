//! `tagstack render`: every manifest of every shipped config validates offline against the
//! Kubernetes schemas of its configured version with `kubernetes-validate --strict` (PyPI,
//! installed by scripts/test), and rendering needs neither cloud access nor an SSH key.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::TestEnv;

fn validator() -> PathBuf {
    let path = std::env::var_os("TAGSTACK_TEST_KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-moto/bin/kubernetes-validate"));
    assert!(path.exists(), "{} is missing: run the tests through scripts/test", path.display());
    path
}

fn kube_version(config: &str) -> String {
    let minor = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("kubernetes_version = \""))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap_or_else(|| "1.36".into());
    let parts: Vec<&str> = minor.split('.').collect();
    format!("{}.{}.0", parts[0], parts[1])
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Renders `config` and validates every Kubernetes object (kustomizations are kustomize's
/// input, not objects); returns the rendered paths relative to the output directory.
fn render_and_validate(env: &TestEnv, config: &Path, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(config).unwrap();
    let out = env.dir.path().join(format!("rendered-{name}"));
    env.tagstack()
        .without_config()
        .args(&["render", "-c", config.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .run()
        .success();
    let files = files_under(&out);
    let objects: Vec<&PathBuf> = files.iter().filter(|p| !p.ends_with("kustomization.yaml")).collect();
    assert!(objects.len() >= 4, "{name}: only {objects:?}");
    let run = Command::new(validator())
        .args(["--strict", "--quiet", "-k", &kube_version(&text)])
        .args(&objects)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{name}: rendered manifests do not validate:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    files.iter().map(|p| p.strip_prefix(&out).unwrap().display().to_string()).collect()
}

#[test]
fn every_shipped_config_renders_manifests_that_validate_strictly() {
    let env = TestEnv::new("render");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(root.join("config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let files = render_and_validate(&env, &path, &name);
            checked.push((name, files));
        }
    }
    // The starter config `tagstack init` writes.
    env.tagstack().without_config().args(&["init", "-c", "starter.toml"]).run().success();
    let files = render_and_validate(&env, &env.dir.path().join("starter.toml"), "starter");
    checked.push(("starter".into(), files));
    // A static environment: no AWS add-ons, and no StorageClass forced on the claims.
    let bed_like = env.dir.path().join("static.toml");
    std::fs::write(
        &bed_like,
        "project = \"lab\"\nenvironment = \"bench\"\nprovider = \"static\"\nkubernetes_version = \"1.35\"\n\n[ssh]\nprivate_key = \"/nonexistent/id_ed25519\"\nuser = \"root\"\n\n[[nodes]]\nname = \"cp\"\naddress = \"10.0.0.10\"\nrole = \"control-plane\"\nhost_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd0BzvS3R+uygL7/APZNYODv64EwSfYypxOYC5em7nB\"\n\n[stack.spark]\nworkers = 1\n",
    )
    .unwrap();
    let files = render_and_validate(&env, &bed_like, "static");
    checked.push(("static".into(), files));
    let kafka = std::fs::read_to_string(env.dir.path().join("rendered-static/stack/kafka.yaml")).unwrap();
    assert!(!kafka.contains("storageClassName"), "{kafka}");
    checked.sort();
    insta::assert_debug_snapshot!("rendered_files", checked);
}

#[test]
fn render_needs_no_ssh_key_and_lists_the_files_as_json() {
    let env = TestEnv::new("render");
    // The environment's public key file does not exist: render does not use it.
    std::fs::remove_file(env.dir.path().join("id_ed25519.pub")).unwrap();
    let out = env.tagstack().args(&["render", "--out", "manifests", "--output", "json"]).run().success().json();
    let files: Vec<&str> = out["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert!(files.contains(&"manifests/stack/kafka.yaml"), "{out}");
    // The EBS CSI driver tags every volume with the environment's ownership tags.
    let ebs = std::fs::read_to_string(env.dir.path().join("manifests/addons/ebs-csi/kustomization.yaml")).unwrap();
    assert!(
        ebs.contains(&format!("--extra-tags=tagstack:project={},tagstack:env={}", env.project, env.environment)),
        "{ebs}"
    );
    // ...but plan (which does need the key) still says what is missing.
    let plan = env.tagstack().arg("plan").run().code(2);
    assert!(plan.stderr.contains("id_ed25519.pub"), "{}", plan.stderr);
}

#[test]
fn with_monitoring_every_manifest_validates_strictly_and_render_writes_the_add_on() {
    let env = TestEnv::new("render");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The shipped dev config (AWS, gp3) with the add-on and Spark's standalone daemons on.
    let base = std::fs::read_to_string(root.join("config/dev.toml")).unwrap();
    let config = env.dir.path().join("monitored.toml");
    std::fs::write(
        &config,
        format!("{base}\n[stack.spark]\nworkers = 2\n\n[monitoring]\nenabled = true\nretention = \"7d\"\nstorage_gb = 30\nalert_webhooks = [\"https://hooks.example.com/x\"]\n"),
    )
    .unwrap();
    let files = render_and_validate(&env, &config, "monitored");
    assert!(files.contains(&"monitoring/monitoring.yaml".to_string()), "{files:?}");
    let out = env.dir.path().join("rendered-monitored");
    let monitoring = std::fs::read_to_string(out.join("monitoring/monitoring.yaml")).unwrap();
    for needle in [
        "--storage.tsdb.retention.time=168h",
        "storage: 30Gi",
        "storageClassName: gp3",
        "kind: DaemonSet",
        "name: grafana-admin",
    ] {
        assert!(monitoring.contains(needle), "missing {needle:?}");
    }
    let kafka = std::fs::read_to_string(out.join("stack/kafka.yaml")).unwrap();
    assert!(kafka.contains("prometheus.io/port: \"9404\""), "{kafka}");
    assert!(kafka.contains("export KAFKA_OPTS=\"-javaagent:/opt/jmx-exporter/jmx_prometheus_javaagent.jar=9404:"));
    let spark = std::fs::read_to_string(out.join("stack/spark.yaml")).unwrap();
    assert!(spark.contains("prometheus.io/path: /metrics/master/prometheus"), "{spark}");

    // Pod Security as the API server admits it (tests/fixtures/monitoring/pod_security.py, the
    // Pod Security Standards' controls): `monitoring` enforces restricted, node-exporter alone
    // has the privileged `monitoring-node`, and every other namespace its own level.
    assert!(monitoring.contains("  name: monitoring-node\n"), "{monitoring}");
    let objects: Vec<PathBuf> = files_under(&out).into_iter().filter(|p| !p.ends_with("kustomization.yaml")).collect();
    let python = validator().with_file_name("python");
    let run = Command::new(&python)
        .arg(root.join("tests/fixtures/monitoring/pod_security.py"))
        .args(&objects)
        .output()
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "pods their namespace's Pod Security level refuses:\n{report}");
}
