//! Security inside the cluster, over real SSH on the test bed (issue 14, items 2 and 7 for
//! Cassandra): `up` creates the superuser's Secret on the control plane, Cassandra runs with
//! PasswordAuthenticator and CassandraAuthorizer, tagstack's superuser replaces the default
//! `cassandra` one, system_auth gets the data centre's replication, `smoke` logs in; an
//! environment whose Cassandra predates authentication is refused with a migration note. The
//! kubectl STAND-IN's cqlsh refuses what Cassandra refuses (tests/fixtures/node-bin/README.md).
//! The generated password never appears in anything tagstack printed or logged.

use crate::support::bed::{Bed, add_storage_class};
use crate::support::{Run, TestEnv};

const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";

/// `script` run by the control plane's shell (ssh hands the remote shell one command line).
fn on_cp(env: &TestEnv, script: &str) -> Run {
    env.tagstack().args(&["ssh", "cp", "--", script]).run()
}

fn cqlsh(env: &TestEnv, creds: &str) -> Run {
    on_cp(env, &format!("{KUBECTL} exec -n cassandra cassandra-0 -c cassandra -- cqlsh {creds} -e 'CONSISTENCY'"))
}

/// Every file under `dir`, concatenated (tagstack's logs and rendered files).
fn all_files(dir: &std::path::Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.push_str(&all_files(&path));
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            out.push_str(&text);
        }
    }
    out
}

#[test]
fn cassandra_runs_with_a_generated_superuser_and_an_older_environment_is_refused() {
    let bed = Bed::up(2);
    let env = TestEnv::new("auth");
    std::fs::write(
        env.config_path(),
        format!(
            "{}\n[stack]\nready_timeout = \"2m\"\n[stack.kafka]\nenabled = false\n[stack.spark]\nenabled = false\n[stack.cassandra]\nreplicas = 1\n",
            bed.config(&env.project)
        ),
    )
    .unwrap();
    let mut printed = String::new();
    let mut keep = |run: Run| {
        printed.push_str(&run.stdout);
        printed.push_str(&run.stderr);
        run
    };
    keep(env.tagstack().args(&["up", "--only", "cluster"]).run().success());
    add_storage_class(&env, &bed);

    // An environment created before authentication: its Cassandra runs the image's own command.
    let out = env.dir.path().join("rendered");
    keep(env.tagstack().args(&["render", "--out", out.to_str().unwrap()]).run().success());
    let current = std::fs::read_to_string(out.join("stack/cassandra.yaml")).unwrap();
    let cut = |text: &str, from: &str, to: &str| {
        let a = text.find(from).unwrap_or_else(|| panic!("no {from:?}"));
        let b = a + text[a..].find(to).unwrap_or_else(|| panic!("no {to:?}")) + to.len();
        format!("{}{}", &text[..a], &text[b..])
    };
    let older = cut(&current, "          # Authentication and authorisation on", "cassandra -f\n");
    let older = cut(&older, "            # The superuser tagstack created", "defaultMode: 0400\n");
    assert!(!older.contains("PasswordAuthenticator") && !older.contains("cassandra-admin"), "{older}");
    std::fs::write(bed.fs(0, "var/lib/tagstack/older-cassandra.yaml"), &older).unwrap();
    keep(on_cp(&env, &format!("{KUBECTL} apply --server-side -f /var/lib/tagstack/older-cassandra.yaml")).success());
    let refused = keep(env.tagstack().arg("up").run().code(1));
    for needle in [
        "Cassandra in namespace cassandra runs without authentication",
        "every client without credentials would be refused: nothing was changed",
        "hint: migrate deliberately (docs/security.md",
        "Secret cassandra/cassandra-admin",
    ] {
        assert!(refused.stderr.contains(needle), "missing {needle:?} in:\n{}", refused.stderr);
    }
    let applied = std::fs::read_to_string(bed.cluster_state("applied.log")).unwrap_or_default();
    assert!(!applied.contains("/var/lib/tagstack/stack/cassandra"), "applied despite the refusal: {applied}");
    // The way out the note names (for a disposable environment): recreate Cassandra.
    keep(on_cp(&env, &format!("{KUBECTL} delete namespace cassandra")).success());

    let up = keep(env.tagstack().args(&["up", "--output", "json"]).run().success()).json();
    assert_eq!(up["stack"]["workloads"][0]["done"], true, "{up}");
    let secret =
        format!("{KUBECTL} get secret cassandra-admin -n cassandra -o jsonpath='{{.data.password}}' | base64 -d");
    let password = on_cp(&env, &secret).success().stdout;
    assert!(password.len() == 48 && password.chars().all(|c| c.is_ascii_hexdigit()), "{password:?}");

    // Cassandra refuses a client without credentials and the default superuser; tagstack's logs in.
    let anonymous = cqlsh(&env, "").code(1);
    assert!(
        anonymous.stderr.contains("AuthenticationFailed('Remote end requires authentication')"),
        "{}",
        anonymous.stderr
    );
    let default = cqlsh(&env, "-u cassandra -p cassandra").code(1);
    assert!(default.stderr.contains("cassandra is not permitted to log in"), "{}", default.stderr);
    let wrong = cqlsh(&env, "-u tagstack -p wrong").code(1);
    assert!(wrong.stderr.contains("Provided username tagstack and/or password are incorrect"), "{}", wrong.stderr);
    cqlsh(&env, &format!("-u tagstack -p \"$({secret})\"")).success();
    let db: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bed.cluster_state("stack/cassandra.json")).unwrap()).unwrap();
    assert_eq!(
        db["system_replication"]["system_auth"],
        serde_json::json!({"class": "NetworkTopologyStrategy", "dc1": "1"}),
        "{db}"
    );
    assert_eq!(db["roles"]["tagstack"]["superuser"], true, "{db}");

    // smoke logs in; a second up keeps the Secret and the role.
    let smoke = keep(env.tagstack().args(&["smoke", "--output", "json"]).run().success()).json();
    assert_eq!(smoke["ok"], true, "{smoke}");
    keep(env.tagstack().arg("up").run().success());
    assert_eq!(on_cp(&env, &secret).success().stdout, password, "the second up replaced the password");

    // The password is in nothing tagstack printed, logged or rendered.
    keep(env.tagstack().args(&["render", "--out", out.to_str().unwrap()]).run().success());
    keep(env.tagstack().args(&["status", "--output", "json"]).run().success());
    let everything = format!("{printed}{}", all_files(env.dir.path()));
    assert!(!everything.contains(&password), "the generated password leaked into tagstack's output or files");
}
