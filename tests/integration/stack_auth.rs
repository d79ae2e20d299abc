//! Security inside the cluster, over real SSH on the test bed (issue 14, items 2 and 7 for
//! Cassandra): `up` creates the superuser's Secret, the environment's CA and Cassandra's
//! certificate on the control plane (real openssl there), Cassandra runs with
//! PasswordAuthenticator, CassandraAuthorizer, client TLS required and internode TLS, tagstack's
//! superuser replaces the
//! default `cassandra` one, system_auth gets the data centre's replication, `smoke` logs in over
//! TLS; certificates are checked with openssl here (chain, names, key usage, expiry) and renewed
//! by `up` in their last 30 days; an environment whose Cassandra predates authentication is
//! refused with a migration note, and so is one whose Cassandra accepts plaintext clients and
//! gossips in plaintext. The kubectl STAND-IN's cqlsh refuses what Cassandra and cqlsh
//! refuse (tests/fixtures/node-bin/README.md). No generated secret appears in anything tagstack
//! printed, logged or rendered.

use crate::support::bed::{Bed, KUBECTL, add_storage_class, env_with, on_cp};
use crate::support::{Run, TestEnv};

fn cqlsh(env: &TestEnv, creds: &str) -> Run {
    on_cp(
        env,
        &format!(
            "{KUBECTL} exec -n cassandra cassandra-0 -c cassandra -- env SSL_CERTFILE=/etc/tagstack/tls/ca.pem cqlsh --ssl {creds} -e 'CONSISTENCY'"
        ),
    )
}

/// One key of a Secret on the control plane, decoded.
fn secret_field(env: &TestEnv, ns: &str, name: &str, key: &str) -> String {
    on_cp(env, &format!("{KUBECTL} get secret {name} -n {ns} -o jsonpath='{{.data.{key}}}' | base64 -d"))
        .success()
        .stdout
}

/// `openssl ARGS` here, on PEM files written to `dir`; (exit code, stdout + stderr).
fn openssl(dir: &std::path::Path, files: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    for (name, pem) in files {
        std::fs::write(dir.join(name), pem).unwrap();
    }
    let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
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

/// An environment on `bed` with `tables`, its cluster up with a default StorageClass and its
/// manifests rendered to `<dir>/rendered` (to make an older environment's from): the
/// environment, everything tagstack printed so far, and the rendered directory.
fn cluster_and_manifests(bed: &Bed, name: &str, tables: &str) -> (TestEnv, String, std::path::PathBuf) {
    let env = env_with(bed, name, tables);
    let up = env.tagstack().args(&["up", "--only", "cluster"]).run().success();
    add_storage_class(&env, bed);
    let rendered = env.dir.path().join("rendered");
    let render = env.tagstack().args(&["render", "--out", rendered.to_str().unwrap()]).run().success();
    let printed = [up, render].iter().map(|r| format!("{}{}", r.stdout, r.stderr)).collect();
    (env, printed, rendered)
}

#[test]
fn cassandra_runs_with_a_generated_superuser_and_an_older_environment_is_refused() {
    let bed = Bed::up(2);
    let (env, mut printed, rendered) = cluster_and_manifests(
        &bed,
        "auth",
        "[stack]\nready_timeout = \"2m\"\n[stack.kafka]\nenabled = false\n[stack.spark]\nenabled = false\n[stack.cassandra]\nreplicas = 2\n",
    );
    let mut keep = |run: Run| {
        printed.push_str(&run.stdout);
        printed.push_str(&run.stderr);
        run
    };

    // An environment created before authentication: its Cassandra runs the image's own command.
    let current = std::fs::read_to_string(rendered.join("stack/cassandra.yaml")).unwrap();
    let cut = |text: &str, from: &str, to: &str| {
        let a = text.find(from).unwrap_or_else(|| panic!("no {from:?}"));
        let b = a + text[a..].find(to).unwrap_or_else(|| panic!("no {to:?}")) + to.len();
        format!("{}{}", &text[..a], &text[b..])
    };
    let older = cut(&current, "          # Authentication, authorisation and client TLS on", "cassandra -f\n");
    // The Secrets' mounts, then their volumes (the read-only root filesystem's own mounts and
    // emptyDirs, issue 14 item 5, stay).
    let mounts = older.find("            # The superuser tagstack created").unwrap();
    let kept =
        mounts + older[mounts..].find("            - name: config\n              mountPath: /etc/cassandra\n").unwrap();
    let older = format!("{}{}", &older[..mounts], &older[kept..]);
    let older = cut(&older, "        - name: admin\n          secret:\n", "path: ca.pem\n");
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
        serde_json::json!({"class": "NetworkTopologyStrategy", "dc1": "2"}),
        "{db}"
    );
    assert_eq!(db["roles"]["tagstack"]["superuser"], true, "{db}");

    // TLS: the CA and Cassandra's certificate, checked with openssl here.
    let pki = tempfile::tempdir().unwrap();
    let ca = secret_field(&env, "kube-system", "tagstack-ca", "certificate");
    let ca_key = secret_field(&env, "kube-system", "tagstack-ca", "key");
    let cert = secret_field(&env, "cassandra", "cassandra-tls", "certificate");
    let keystore = secret_field(&env, "cassandra", "cassandra-tls", "keystore");
    assert_eq!(secret_field(&env, "cassandra", "cassandra-tls", "ca"), ca);
    assert!(
        keystore.starts_with("-----BEGIN PRIVATE KEY-----") && keystore.ends_with(&cert),
        "keystore: key then certificate"
    );
    let files = [("ca.pem", ca.as_str()), ("cert.pem", cert.as_str())];
    let (code, out) = openssl(pki.path(), &files, &["verify", "-CAfile", "ca.pem", "cert.pem"]);
    assert_eq!(code, 0, "{out}");
    let (_, ca_text) = openssl(pki.path(), &[], &["x509", "-in", "ca.pem", "-noout", "-text"]);
    assert!(ca_text.contains("CA:TRUE") && ca_text.contains("Certificate Sign, CRL Sign"), "{ca_text}");
    let (_, text) = openssl(pki.path(), &[], &["x509", "-in", "cert.pem", "-noout", "-text"]);
    for needle in [
        "DNS:cassandra-0.cassandra-headless.cassandra.svc.cluster.local",
        "DNS:cassandra-1.cassandra-headless.cassandra.svc.cluster.local",
        "DNS:cassandra-client.cassandra.svc.cluster.local",
        "IP Address:127.0.0.1",
        "CA:FALSE",
        "Digital Signature, Key Encipherment",
        "TLS Web Server Authentication, TLS Web Client Authentication",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let valid_for = |days: u32| {
        openssl(pki.path(), &[], &["x509", "-in", "cert.pem", "-noout", "-checkend", &(days * 86400).to_string()]).0
            == 0
    };
    assert!(valid_for(364) && !valid_for(366), "a certificate lives a year:\n{text}");
    // cqlsh --ssl checks the node's certificate: it needs the CA file.
    let no_ca =
        on_cp(&env, &format!("{KUBECTL} exec -n cassandra cassandra-0 -c cassandra -- cqlsh --ssl -e 'CONSISTENCY'"))
            .code(1);
    assert!(
        no_ca.stderr.contains("Validation is enabled; SSL transport factory requires a valid certfile"),
        "{}",
        no_ca.stderr
    );

    // Renewal: a certificate in its last 30 days, and one the CA did not sign, are issued again by up.
    let short = |days: &str, signer: &[&str]| {
        let mut args = vec!["x509", "-req", "-in", "req.csr", "-days", days, "-out", "short.pem"];
        args.extend_from_slice(signer);
        let (code, out) = openssl(
            pki.path(),
            &[("ca.key", ca_key.as_str())],
            &[
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=short",
                "-keyout",
                "short.key",
                "-out",
                "req.csr",
            ],
        );
        assert_eq!(code, 0, "{out}");
        let (code, out) = openssl(pki.path(), &[], &args);
        assert_eq!(code, 0, "{out}");
        let pem = std::fs::read_to_string(pki.path().join("short.pem")).unwrap();
        let b64 = |t: &str| {
            let (_, out) = openssl(pki.path(), &[("b64.in", t)], &["base64", "-A", "-in", "b64.in"]);
            out
        };
        let yaml = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: cassandra-tls\n  namespace: cassandra\ntype: Opaque\ndata:\n  certificate: {}\n  keystore: {}\n  ca: {}\n",
            b64(&pem),
            b64(&pem),
            b64(&ca)
        );
        std::fs::write(bed.fs(0, "var/lib/tagstack/short-tls.yaml"), yaml).unwrap();
        on_cp(&env, &format!("{KUBECTL} apply --server-side --force-conflicts --field-manager=tagstack -f /var/lib/tagstack/short-tls.yaml")).success();
        pem
    };
    for signer in [vec!["-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "7"], vec!["-signkey", "short.key"]] {
        let planted = short("10", &signer);
        assert_eq!(secret_field(&env, "cassandra", "cassandra-tls", "certificate"), planted);
        keep(env.tagstack().args(&["up", "--only", "stack"]).run().success());
        let renewed = secret_field(&env, "cassandra", "cassandra-tls", "certificate");
        assert_ne!(renewed, planted, "up kept a certificate {signer:?} that expires in 10 days");
        let (code, out) =
            openssl(pki.path(), &[("cert.pem", renewed.as_str())], &["verify", "-CAfile", "ca.pem", "cert.pem"]);
        assert_eq!(code, 0, "{out}");
        assert!(valid_for(364), "renewed for a year");
    }
    assert_eq!(secret_field(&env, "kube-system", "tagstack-ca", "certificate"), ca, "the CA is kept");

    // smoke logs in; a second up keeps the Secret and the role.
    let smoke = keep(env.tagstack().args(&["smoke", "--output", "json"]).run().success()).json();
    assert_eq!(smoke["ok"], true, "{smoke}");
    keep(env.tagstack().arg("up").run().success());
    assert_eq!(on_cp(&env, &secret).success().stdout, password, "the second up replaced the password");

    // The password is in nothing tagstack printed, logged or rendered.
    keep(env.tagstack().args(&["render", "--out", rendered.to_str().unwrap()]).run().success());
    keep(env.tagstack().args(&["status", "--output", "json"]).run().success());
    let everything = format!("{printed}{}", all_files(env.dir.path()));
    assert!(!everything.contains(&password), "the generated password leaked into tagstack's output or files");
    let key_body = |pem: &str| pem.lines().nth(1).unwrap_or_default().to_string();
    assert!(!everything.contains("PRIVATE KEY"), "a private key leaked into tagstack's output or files");
    assert!(!everything.contains(&key_body(&ca_key)), "the CA's key leaked");
    assert!(!everything.contains(&key_body(&keystore)), "Cassandra's key leaked");

    // Client TLS is required: a plaintext client is cut off by the node.
    let plain = on_cp(
        &env,
        &format!("{KUBECTL} exec -n cassandra cassandra-0 -c cassandra -- cqlsh -u tagstack -p \"$({secret})\" -e 'CONSISTENCY'"),
    )
    .code(1);
    assert!(plain.stderr.contains("ConnectionShutdown"), "{}", plain.stderr);

    // An environment created with client TLS optional and plaintext gossip (tagstack before
    // TLS was required; its StatefulSet kept the Parallel policy it was created with): refused.
    let current = std::fs::read_to_string(rendered.join("stack/cassandra.yaml")).unwrap();
    let optional = current.replacen("  optional: false\n", "  optional: true\n", 1);
    let optional =
        cut(&optional, "              server_encryption_options:\n", "require_endpoint_verification: false\n")
            .replace("podManagementPolicy: OrderedReady", "podManagementPolicy: Parallel");
    assert!(!optional.contains("internode_encryption") && optional.contains("  optional: true\n"), "{optional}");
    std::fs::write(bed.fs(0, "var/lib/tagstack/optional-tls.yaml"), &optional).unwrap();
    on_cp(&env, &format!("{KUBECTL} apply --server-side --force-conflicts --field-manager=tagstack -f /var/lib/tagstack/optional-tls.yaml")).success();
    // The cluster stage re-applies its add-ons; nothing of the stack may be applied.
    let stack_applies = || {
        let log = std::fs::read_to_string(bed.cluster_state("applied.log")).unwrap_or_default();
        log.lines().filter(|l| l.contains("/var/lib/tagstack/stack/")).count()
    };
    let applies = stack_applies();
    let refused = env.tagstack().arg("up").run().code(1);
    for needle in [
        "Cassandra in namespace cassandra accepts plaintext clients and gossips in plaintext",
        "split the ring while the nodes restart one by one: nothing was changed",
        "hint: migrate deliberately (docs/security.md",
        "Secret cassandra/cassandra-tls",
    ] {
        assert!(refused.stderr.contains(needle), "missing {needle:?} in:\n{}", refused.stderr);
    }
    assert_eq!(stack_applies(), applies, "applied despite the refusal");
}

/// Kafka (issue 14, item 1): `up` refuses an environment whose Kafka still runs PLAINTEXT, then
/// makes Kafka's certificate (every pod's name, checked with openssl here) and the admin's
/// Secret on the control plane; `smoke` produces and consumes as the admin over SASL_SSL;
/// `tagstack kafka user add` makes a user whose ACLs the stand-in broker enforces, and
/// `tagstack kafka client-config` prints its client.properties (the only output that holds a
/// password). No generated password appears in anything else tagstack printed, logged or rendered.
#[test]
fn kafka_runs_tls_scram_and_acls_and_an_older_environment_is_refused() {
    let bed = Bed::up(2);
    let (env, mut printed, rendered) = cluster_and_manifests(
        &bed,
        "kauth",
        "[stack]\nready_timeout = \"2m\"\n[stack.cassandra]\nenabled = false\n[stack.spark]\nenabled = false\n[stack.kafka]\nbrokers = 3\n",
    );
    let mut keep = |run: Run| {
        printed.push_str(&run.stdout);
        printed.push_str(&run.stderr);
        run
    };

    // An environment created before TLS and SCRAM: its listeners are PLAINTEXT.
    let current = std::fs::read_to_string(rendered.join("stack/kafka.yaml")).unwrap();
    let older = current.replace(
        "value: \"CONTROLLER:SSL,INTERNAL:SSL,CLIENT:SASL_SSL\"",
        "value: \"CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\"",
    );
    assert_ne!(older, current);
    std::fs::write(bed.fs(0, "var/lib/tagstack/older-kafka.yaml"), &older).unwrap();
    keep(on_cp(&env, &format!("{KUBECTL} apply --server-side -f /var/lib/tagstack/older-kafka.yaml")).success());
    let refused = keep(env.tagstack().arg("up").run().code(1));
    for needle in [
        "Kafka in namespace kafka runs PLAINTEXT listeners (StatefulSet kafka/kafka",
        "every client without TLS and credentials would be cut off: nothing was changed",
        "hint: migrate deliberately (docs/security.md",
        "tagstack kafka client-config NAME",
    ] {
        assert!(refused.stderr.contains(needle), "missing {needle:?} in:\n{}", refused.stderr);
    }
    let applied = std::fs::read_to_string(bed.cluster_state("applied.log")).unwrap_or_default();
    assert!(!applied.contains("/var/lib/tagstack/stack/kafka"), "applied despite the refusal: {applied}");
    keep(on_cp(&env, &format!("{KUBECTL} delete namespace kafka")).success());

    let up = keep(env.tagstack().args(&["up", "--output", "json"]).run().success()).json();
    assert_eq!(up["stack"]["workloads"][0]["done"], true, "{up}");
    let admin = secret_field(&env, "kafka", "kafka-admin", "password");
    assert!(admin.len() == 48 && admin.chars().all(|c| c.is_ascii_hexdigit()), "{admin:?}");
    assert_eq!(secret_field(&env, "kafka", "kafka-admin", "username"), "admin");

    // Kafka's certificate: the environment's CA (one CA for the whole stack), every pod's name.
    let pki = tempfile::tempdir().unwrap();
    let ca = secret_field(&env, "kube-system", "tagstack-ca", "certificate");
    let cert = secret_field(&env, "kafka", "kafka-tls", "certificate");
    let keystore = secret_field(&env, "kafka", "kafka-tls", "keystore");
    assert_eq!(secret_field(&env, "kafka", "kafka-tls", "ca"), ca);
    assert!(
        keystore.starts_with("-----BEGIN PRIVATE KEY-----") && keystore.ends_with(&cert),
        "PEM keystore: key, then certificate"
    );
    let files = [("ca.pem", ca.as_str()), ("cert.pem", cert.as_str())];
    let (code, out) = openssl(pki.path(), &files, &["verify", "-CAfile", "ca.pem", "cert.pem"]);
    assert_eq!(code, 0, "{out}");
    let (_, text) = openssl(pki.path(), &[], &["x509", "-in", "cert.pem", "-noout", "-text"]);
    for needle in [
        "DNS:kafka-0.kafka-headless.kafka.svc.cluster.local",
        "DNS:kafka-1.kafka-headless.kafka.svc.cluster.local",
        "DNS:kafka-2.kafka-headless.kafka.svc.cluster.local",
        "DNS:kafka-bootstrap.kafka.svc.cluster.local",
        "DNS:kafka-bootstrap.kafka.svc,",
        "DNS:localhost",
        "CA:FALSE",
        "Digital Signature, Key Encipherment",
        "TLS Web Server Authentication, TLS Web Client Authentication",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // The subject is the nodes' principal in super.users (RFC 2253: most specific first).
    let (_, subject) =
        openssl(pki.path(), &[], &["x509", "-in", "cert.pem", "-noout", "-subject", "-nameopt", "RFC2253"]);
    assert_eq!(subject.trim(), "subject=CN=kafka-bootstrap.kafka.svc.cluster.local,O=tagstack");
    let valid_for = |days: u32| {
        openssl(pki.path(), &[], &["x509", "-in", "cert.pem", "-noout", "-checkend", &(days * 86400).to_string()]).0
            == 0
    };
    assert!(valid_for(364) && !valid_for(366), "a certificate lives a year:\n{text}");

    // Renewal reaches the brokers: Kafka reads its PEM files only at start, so the `up` that
    // replaces a certificate in its last 30 days rolls the Kafka StatefulSets; the next `up`
    // keeps the new certificate and restarts nothing.
    let ca_key = secret_field(&env, "kube-system", "tagstack-ca", "key");
    let new_key = ["req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=short", "-keyout", "short.key"];
    let (code, out) =
        openssl(pki.path(), &[("ca.key", ca_key.as_str())], &[&new_key[..], &["-out", "short.csr"]].concat());
    assert_eq!(code, 0, "{out}");
    let sign =
        ["x509", "-req", "-in", "short.csr", "-days", "10", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "9"];
    let (code, out) = openssl(pki.path(), &[], &[&sign[..], &["-out", "short.pem"]].concat());
    assert_eq!(code, 0, "{out}");
    std::fs::remove_file(pki.path().join("ca.key")).unwrap();
    let short = std::fs::read_to_string(pki.path().join("short.pem")).unwrap();
    let short_key = std::fs::read_to_string(pki.path().join("short.key")).unwrap();
    let b64 = |t: &str| crate::support::bed::base64(t.as_bytes());
    let planted = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: kafka-tls\n  namespace: kafka\ntype: Opaque\ndata:\n  certificate: {}\n  keystore: {}\n  ca: {}\n",
        b64(&short),
        b64(&format!("{short_key}{short}")),
        b64(&ca)
    );
    std::fs::write(bed.fs(0, "var/lib/tagstack/short-kafka-tls.yaml"), planted).unwrap();
    on_cp(&env, &format!("{KUBECTL} apply --server-side --force-conflicts --field-manager=tagstack -f /var/lib/tagstack/short-kafka-tls.yaml")).success();
    std::fs::remove_file(bed.fs(0, "var/lib/tagstack/short-kafka-tls.yaml")).unwrap();
    let restarted_at = || {
        let sts: serde_json::Value = serde_json::from_str(
            &on_cp(&env, &format!("{KUBECTL} get statefulset kafka -n kafka -o json")).success().stdout,
        )
        .unwrap();
        sts["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .as_str()
            .map(String::from)
    };
    assert_eq!(restarted_at(), None);
    let renewal = keep(env.tagstack().args(&["up", "--only", "stack"]).run().success());
    assert!(renewal.stderr.contains("rolling restart of the StatefulSets"), "{}", renewal.stderr);
    let renewed = secret_field(&env, "kafka", "kafka-tls", "certificate");
    assert_ne!(renewed, short, "up kept a certificate that expires in 10 days");
    let when = restarted_at().expect("up renewed Kafka's certificate but did not roll the brokers");
    let again = keep(env.tagstack().args(&["up", "--only", "stack"]).run().success());
    assert!(!again.stderr.contains("rolling restart"), "{}", again.stderr);
    assert_eq!(secret_field(&env, "kafka", "kafka-tls", "certificate"), renewed);
    assert_eq!(restarted_at(), Some(when), "an up with a valid certificate restarted Kafka");

    // smoke: as the admin over SASL_SSL.
    let smoke = keep(env.tagstack().args(&["smoke", "--output", "json"]).run().success()).json();
    assert_eq!(smoke["ok"], true, "{smoke}");

    // A user with ACLs: made, then made again (nothing changes), its client configuration.
    let add = keep(env.tagstack().args(&["kafka", "user", "add", "billing", "--topics", "orders"]).run().success());
    assert!(add.stdout.contains("Kafka user billing is ready"), "{}", add.stdout);
    let billing = secret_field(&env, "kafka", "kafka-user-billing", "password");
    assert!(billing.len() == 48, "{billing:?}");
    keep(env.tagstack().args(&["kafka", "user", "add", "billing", "--topics", "orders"]).run().success());
    assert_eq!(secret_field(&env, "kafka", "kafka-user-billing", "password"), billing, "a rerun kept the password");
    let bad = keep(env.tagstack().args(&["kafka", "user", "add", "Bad Name"]).run().code(2));
    assert!(bad.stderr.contains("is not a Kafka user name"), "{}", bad.stderr);
    // Only this command's stdout holds a password: not kept with the rest.
    let config = env.tagstack().args(&["kafka", "client-config", "billing"]).run().success();
    let properties = config.stdout.clone();
    keep(Run { stdout: String::new(), ..config });
    for needle in [
        "bootstrap.servers=kafka-bootstrap.kafka.svc.cluster.local:9092\n",
        "security.protocol=SASL_SSL\n",
        "sasl.mechanism=SCRAM-SHA-512\n",
        &format!(
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"billing\" password=\"{billing}\";\n"
        ),
        "ssl.truststore.type=PEM\n",
        "ssl.truststore.certificates=-----BEGIN CERTIFICATE----- \\\n",
    ] {
        assert!(properties.contains(needle), "missing {needle:?} in the client configuration");
    }
    let redacted = properties.replace(&billing, "<redacted>");
    let ca_body: String = ca.lines().filter(|l| !l.starts_with("-----")).collect();
    let config_body: String = redacted
        .lines()
        .skip_while(|l| !l.starts_with("ssl.truststore.certificates="))
        .map(|l| l.trim().trim_end_matches('\\').trim())
        .filter(|l| !l.contains("-----"))
        .collect();
    assert_eq!(config_body, ca_body, "the truststore is the environment's CA");

    // The stand-in broker enforces what the user got: the client configuration, written into a
    // pod, produces to `orders` (made by the admin) and is refused `payroll`.
    let admin_config = "{ printf '%s\\n' security.protocol=SASL_SSL sasl.mechanism=SCRAM-SHA-512 ssl.truststore.type=PEM ssl.truststore.location=/etc/tagstack/tls/ca.pem; printf 'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"%s\";\\n' \"$(kubectl --kubeconfig /etc/kubernetes/admin.conf get secret kafka-admin -n kafka -o jsonpath='{.data.password}' | base64 -d)\"; }";
    let kexec = format!("{KUBECTL} exec -i -n kafka kafka-0 -c kafka --");
    keep(
        on_cp(&env, &format!("{admin_config} | {kexec} /bin/sh -c 'umask 077 && cat > /tmp/admin.properties'"))
            .success(),
    );
    for topic in ["orders", "payroll"] {
        keep(on_cp(&env, &format!("{kexec} /opt/kafka/bin/kafka-topics.sh --bootstrap-server localhost:9092 --command-config /tmp/admin.properties --create --topic {topic} --partitions 1 --replication-factor 3 </dev/null")).success());
    }
    std::fs::write(bed.fs(0, "var/lib/tagstack/billing.properties"), &properties).unwrap();
    keep(
        on_cp(
            &env,
            &format!(
                "{kexec} /bin/sh -c 'umask 077 && cat > /tmp/billing.properties' < /var/lib/tagstack/billing.properties"
            ),
        )
        .success(),
    );
    std::fs::remove_file(bed.fs(0, "var/lib/tagstack/billing.properties")).unwrap();
    let produce = |topic: &str| {
        on_cp(
            &env,
            &format!(
                "echo hello | {kexec} /opt/kafka/bin/kafka-console-producer.sh --bootstrap-server localhost:9092 --producer.config /tmp/billing.properties --topic {topic}"
            ),
        )
    };
    keep(produce("orders").success());
    let denied = keep(produce("payroll").code(1));
    assert!(denied.stderr.contains("Not authorized to access topics: [payroll]"), "{}", denied.stderr);
    // Without credentials, the TLS listener gives a PLAINTEXT client nothing.
    let anonymous = keep(
        on_cp(
            &env,
            &format!("{kexec} /opt/kafka/bin/kafka-topics.sh --bootstrap-server localhost:9092 --list </dev/null"),
        )
        .code(1),
    );
    assert!(anonymous.stdout.contains("Timed out waiting for a node assignment"), "{}", anonymous.stdout);

    // A second up keeps both passwords.
    keep(env.tagstack().arg("up").run().success());
    assert_eq!(
        secret_field(&env, "kafka", "kafka-admin", "password"),
        admin,
        "the second up replaced the admin's password"
    );
    assert_eq!(secret_field(&env, "kafka", "kafka-user-billing", "password"), billing);

    // No password in anything else tagstack printed, logged or rendered.
    keep(env.tagstack().args(&["render", "--out", rendered.to_str().unwrap()]).run().success());
    keep(env.tagstack().args(&["status", "--output", "json"]).run().success());
    let everything = format!("{printed}{}", all_files(env.dir.path()));
    for (what, secret) in [("admin", &admin), ("billing", &billing)] {
        assert!(!everything.contains(secret.as_str()), "{what}'s password leaked into tagstack's output or files");
    }
    assert!(!everything.contains("PRIVATE KEY"), "a private key leaked into tagstack's output or files");
}
