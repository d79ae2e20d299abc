//! checkov (PyPI, installed by `scripts/test` into a venv of its own, `.venv-checkov`) over
//! every manifest `tagstack render` writes for the shipped configs and the starter config:
//! each finding must be listed in the reviewed baseline `docs/checkov-baseline.json` with why
//! it is accepted, and each listed finding must still fire, so the baseline only shrinks.
//!
//! checkov runs offline (`--skip-download`: no guideline or policy download), on the
//! Kubernetes framework only (the add-ons' kustomizations name remote bases, which it does
//! not fetch), in one process (`CHECKOV_PARALLELIZATION_TYPE=none`, read by checkov 3.3's
//! `common/parallelizer/parallel_runner.py`: forking workers only costs time on a busy CI
//! machine for this handful of files). It exits 1 when anything fails; the JSON report is what
//! is judged.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn checkov() -> PathBuf {
    let path = std::env::var_os("TAGSTACK_TEST_CHECKOV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-checkov/bin/checkov"));
    assert!(path.exists(), "{} is missing: run the tests through scripts/test (it installs checkov)", path.display());
    path
}

fn tagstack(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_tagstack")).current_dir(dir).args(args).output().unwrap();
    assert!(out.status.success(), "tagstack {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The resource with the value of its `app.kubernetes.io/instance` label (the environment's
/// cluster name, in checkov's names of Pods) written as `*`, so one entry covers every config.
fn normalized(resource: &str) -> String {
    const LABEL: &str = "app.kubernetes.io/instance-";
    match resource.find(LABEL) {
        None => resource.to_string(),
        Some(at) => {
            let start = at + LABEL.len();
            let end = resource[start..].find('.').map_or(resource.len(), |n| start + n);
            format!("{}*{}", &resource[..start], &resource[end..])
        }
    }
}

/// (check id, normalized resource) of every failed check in checkov's JSON report (one
/// object for one framework, a list for several).
fn findings(report: &serde_json::Value) -> BTreeSet<(String, String)> {
    let reports = match report {
        serde_json::Value::Array(list) => list.clone(),
        other => vec![other.clone()],
    };
    let kubernetes = reports
        .iter()
        .find(|r| r["check_type"] == "kubernetes")
        .unwrap_or_else(|| panic!("no kubernetes report: {report:#}"));
    assert_eq!(kubernetes["summary"]["parsing_errors"], 0, "checkov could not parse a manifest: {kubernetes:#}");
    assert!(kubernetes["summary"]["resource_count"].as_u64().unwrap() > 0, "checkov saw no resource");
    kubernetes["results"]["failed_checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["check_id"].as_str().unwrap().to_string(), normalized(f["resource"].as_str().unwrap())))
        .collect()
}

fn baseline() -> BTreeSet<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/checkov-baseline.json");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut out = BTreeSet::new();
    for entry in doc["accepted"].as_array().unwrap() {
        let check = entry["check"].as_str().unwrap();
        assert!(
            entry["why"].as_str().is_some_and(|w| !w.trim().is_empty()),
            "{check}: every accepted finding says why"
        );
        for r in entry["resources"].as_array().unwrap() {
            assert!(out.insert((check.to_string(), r.as_str().unwrap().to_string())), "{check} {r} is listed twice");
        }
    }
    out
}

#[test]
fn checkov_finds_nothing_beyond_the_reviewed_baseline_and_every_baseline_entry_still_fires() {
    let checkov = checkov();
    // Not tempfile's default `.tmp` prefix: checkov skips directories whose name starts with a dot.
    let dir = tempfile::Builder::new().prefix("tagstack-checkov").tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = dir.path().join("rendered");
    let mut configs: Vec<PathBuf> = std::fs::read_dir(root.join("config"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    tagstack(dir.path(), &["init", "-c", "starter.toml"]);
    configs.push(dir.path().join("starter.toml"));
    configs.sort();
    for config in &configs {
        let name = config.file_stem().unwrap().to_string_lossy().into_owned();
        let target = out.join(&name);
        tagstack(dir.path(), &["render", "-c", config.to_str().unwrap(), "--out", target.to_str().unwrap()]);
    }

    let run = Command::new(&checkov)
        .env("CHECKOV_PARALLELIZATION_TYPE", "none")
        .args(["--framework", "kubernetes", "--skip-download", "--quiet", "--compact", "--output", "json", "-d"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("checkov's output is not JSON ({e}):\n{stdout}\n{}", String::from_utf8_lossy(&run.stderr))
    });
    let found = findings(&report);
    let accepted = baseline();

    let new: Vec<_> = found.difference(&accepted).collect();
    let stale: Vec<_> = accepted.difference(&found).collect();
    assert!(
        new.is_empty(),
        "checkov findings not in docs/checkov-baseline.json (fix the manifest, or add each with why it is accepted):\n{new:#?}"
    );
    assert!(
        stale.is_empty(),
        "docs/checkov-baseline.json lists findings that no longer fire: delete them (the baseline only shrinks):\n{stale:#?}"
    );
}

#[test]
fn the_instance_label_is_normalized_in_pod_names() {
    assert_eq!(
        normalized("Pod.kafka.kafka.app.kubernetes.io/instance-dataplat-dev.app.kubernetes.io/part-of-tagstack"),
        "Pod.kafka.kafka.app.kubernetes.io/instance-*.app.kubernetes.io/part-of-tagstack"
    );
    assert_eq!(normalized("StatefulSet.kafka.kafka"), "StatefulSet.kafka.kafka");
}
