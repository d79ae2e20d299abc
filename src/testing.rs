//! Helpers shared by the unit tests of several modules (compiled only for tests). Owns no
//! behaviour of the tool.

/// Runs shellcheck (installed by scripts/test) on one rendered script, the way every shell
/// template is checked, and fails the test with shellcheck's findings.
pub(crate) fn shellcheck(name: &str, text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name.replace('/', "_"));
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new("shellcheck")
        .args(["--shell=bash", "--severity=style"])
        .arg(&path)
        .output()
        .expect("shellcheck is not installed: run scripts/test, which installs it");
    assert!(out.status.success(), "shellcheck {name}:\n{}", String::from_utf8_lossy(&out.stdout));
}
