//! Conventions a CI pipeline relies on: stable JSON (snapshot-tested), NDJSON events,
//! completions, the man page and `init`.

use crate::support::{TestEnv, normalize};

#[test]
fn json_outputs_are_stable() {
    let env = TestEnv::new("json");
    env.write_config(1, "");
    let snap = |name: &str, args: &[&str]| {
        let out = env.tagstack().args(args).run().success().json();
        insta::assert_json_snapshot!(name, normalize(&out, &env.project));
    };
    snap("plan_empty", &["plan", "--output", "json"]);
    snap("up_created", &["up", "--only", "infra", "--output", "json"]);
    snap("up_converged", &["up", "--only", "infra", "--output", "json"]);
    snap("status_in_sync", &["status", "--output", "json"]);
    snap("down", &["down", "--yes", "--output", "json"]);
    snap("down_nothing", &["down", "--yes", "--output", "json"]);
}

#[test]
fn events_stream_ndjson_with_timings() {
    let env = TestEnv::new("events");
    env.write_config(1, "");
    let run = env.tagstack().args(&["up", "--only", "infra", "--events"]).run().success();
    let events: Vec<serde_json::Value> =
        run.stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    assert!(events.len() > 10, "{}", run.stderr);
    let finished: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "finish").collect();
    assert!(finished.iter().any(|e| e["key"] == "vpc"), "{}", run.stderr);
    for e in &finished {
        assert!(e["elapsed_ms"].is_u64(), "{e}");
        assert!(e["t"].is_f64() || e["t"].is_u64(), "{e}");
    }
    assert!(events.iter().all(|e| e["event"] != "fail"));
    env.tagstack().args(&["down", "--yes", "--events"]).run().success();
}

#[test]
fn completions_and_man_page() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tagstack")).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = run(&["completions", "bash"]);
    assert!(bash.contains("complete -F _tagstack") && bash.contains("reap"), "{bash}");
    let zsh = run(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef tagstack") && zsh.contains("--detailed-exitcode"));
    let fish = run(&["completions", "fish"]);
    assert!(fish.contains("complete -c tagstack") && fish.contains("ttl"));
    let man = run(&["man"]);
    assert!(man.contains(".TH tagstack") && man.contains("reap"), "{man}");
}

#[test]
fn init_writes_a_config_that_plans() {
    let env = TestEnv::new("init");
    let path = env.path("config/dev.toml");
    let bin = env!("CARGO_BIN_EXE_tagstack");
    let out = std::process::Command::new(bin).arg("-c").arg(&path).arg("init").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), path.display().to_string());
    let again = std::process::Command::new(bin).arg("-c").arg(&path).arg("init").output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let forced = std::process::Command::new(bin).arg("-c").arg(&path).args(["init", "--force"]).output().unwrap();
    assert!(forced.status.success());

    // The written file is a working config: with a key in HOME it plans against the emulator.
    let home = env.path("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519.pub"), crate::support::PUBLIC_KEY).unwrap();
    let mut cmd = env
        .tagstack()
        .without_config()
        .args(&["-c", &path.display().to_string(), "plan", "--output", "json"])
        .command();
    cmd.env("HOME", &home);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["environment"], "dev");
    assert_eq!(plan["summary"]["create"], 12, "{plan}");
}

/// Every `tagstack ...` command line in the shipped CI examples parses with the real CLI
/// definition, so the examples cannot drift from the flags.
#[test]
fn ci_examples_use_real_flags() {
    use clap::Parser;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci");
    let mut checked = 0;
    for file in ["github-actions.yml", "gitlab-ci.yml"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for line in text.lines() {
            let line = line.trim().trim_start_matches("- ").trim_start_matches("run: ");
            let Some(cmd) = line.strip_prefix("tagstack ") else { continue };
            let cmd = cmd.split(['>', '|']).next().unwrap();
            let words: Vec<String> = std::iter::once("tagstack".to_string())
                .chain(
                    cmd.split_whitespace()
                        .map(|w| if w.contains('$') { "x".to_string() } else { w.trim_matches('"').to_string() }),
                )
                .collect();
            tagstack::cli::Cli::try_parse_from(&words).unwrap_or_else(|e| panic!("{file}: {line}\n{e}"));
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} command lines found");
}
