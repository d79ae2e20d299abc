//! The whole AWS path end to end: `tagstack up` (infra, cluster, stack), `status`, `smoke` and
//! `down` on `provider = "aws"`. moto answers the AWS API through the recording proxy; the
//! machines are the test bed's sshd hosts, placed at the addresses moto gives the instances
//! (the subnet 10.77.B.0/24, where EC2 and moto hand out .4, .5, ... in launch order) and
//! reached over those private addresses (`cluster.node_address = "private"`, as from a runner
//! inside the VPC). moto's console output has no SSH host keys, so the proxy answers each
//! instance's GetConsoleOutput the way EC2 does for a fresh Ubuntu instance: cloud-init's
//! first-boot block (`-----BEGIN SSH HOST KEY KEYS-----`, canonical/cloud-init
//! tools/write-ssh-key-fingerprints) carrying that bed node's real host key.

use std::collections::BTreeMap;

use crate::support::TestEnv;
use crate::support::bed::{Bed, NO_STACK, console_response};
use crate::support::fault_proxy::Rule;

/// Where moto (and EC2) start assigning addresses in a subnet: .1-.3 are reserved.
pub(crate) const FIRST_HOST: u32 = 4;

/// EC2's GetConsoleOutput answer with the console of a freshly booted Ubuntu instance.
fn console_output(instance_id: &str, host_key: &str, node_name: &str) -> String {
    let console = format!(
        "[    0.000000] Linux version 6.8.0-1016-aws (buildd@lcy02-amd64-084)\n\
         [   10.512345] cloud-init[612]: Cloud-init v. 24.4-0ubuntu1~24.04.2 running 'init' at Mon, 30 Nov 2026 07:00:01 +0000.\n\
         ci-info: no authorized SSH keys fingerprints found for user ubuntu.\n\
         <14>Nov 30 07:00:12 cloud-init: #############################################################\n\
         <14>Nov 30 07:00:12 cloud-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----\n\
         <14>Nov 30 07:00:12 cloud-init: 256 SHA256:placeholder root@{node_name} (ED25519)\n\
         <14>Nov 30 07:00:12 cloud-init: -----END SSH HOST KEY FINGERPRINTS-----\n\
         <14>Nov 30 07:00:12 cloud-init: #############################################################\n\
         -----BEGIN SSH HOST KEY KEYS-----\n\
         {host_key} root@{node_name}\n\
         -----END SSH HOST KEY KEYS-----\n\
         [   14.734567] cloud-init[1012]: Cloud-init v. 24.4-0ubuntu1~24.04.2 finished at Mon, 30 Nov 2026 07:00:14 +0000. Datasource DataSourceEc2Local.  Up 14.70 seconds\n"
    );
    console_response(instance_id, &console)
}

pub(crate) fn config(env: &TestEnv, bed: &Bed, workers: usize, extra: &str) -> String {
    format!(
        r#"project = "{project}"
environment = "{environment}"
region = "eu-west-3"
admin_cidrs = ["10.77.0.0/16"]
kubernetes_version = "1.36"

[network]
vpc_cidr = "10.77.0.0/16"

[[network.subnets]]
cidr = "10.77.{b}.0/24"
availability_zone = "eu-west-3a"

[ssh]
public_key = "{key}.pub"
user = "root"

[ami]
owner = "099720109477"
name = "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*"

[workers]
count = {workers}

[cluster]
node_address = "private"
bootstrap_timeout = "3m"

[timeouts]
aws_consistency = "20s"
instances_running = "60s"
{extra}"#,
        project = env.project,
        environment = env.environment,
        b = bed.bed,
        key = bed.path().join("id_ed25519").display(),
    )
}

/// `up --only infra`, then the proxy answers each instance's console with its bed node's key.
/// Returns instance id -> (node name, private IP) and instance id -> host key.
#[allow(clippy::type_complexity)]
fn infra_with_consoles(env: &TestEnv, bed: &Bed) -> (BTreeMap<String, (String, String)>, BTreeMap<String, String>) {
    let infra = env.tagstack().args(&["up", "--only", "infra", "--output", "json"]).run().success().json();
    let instances = nodes(&infra);
    assert_eq!(instances.len(), bed.nodes.len(), "{infra}");
    let mut keys = BTreeMap::new();
    for (id, (node_name, ip)) in &instances {
        let host: u32 = ip.rsplit('.').next().unwrap().parse().unwrap();
        let k = usize::try_from(host - FIRST_HOST).unwrap();
        assert_eq!(bed.nodes[k].address, *ip, "moto gave {id} an address outside the bed");
        env.proxy.add_rule(
            Rule::respond("GetConsoleOutput", &console_output(id, &bed.nodes[k].host_key, node_name))
                .when_body_contains(id)
                .forever(),
        );
        keys.insert(id.clone(), bed.nodes[k].host_key.clone());
    }
    (instances, keys)
}

fn set_host_key_tag(env: &TestEnv, id: &str, key: &str) {
    env.block(async {
        env.ec2()
            .create_tags()
            .resources(id)
            .tags(aws_sdk_ec2::types::Tag::builder().key("tagstack:ssh-host-key").value(key).build())
            .send()
            .await
            .unwrap()
    });
}

/// Instance id -> (node name, private IP), from `up --output json`.
pub(crate) fn nodes(up: &serde_json::Value) -> BTreeMap<String, (String, String)> {
    up["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["instance_id"].as_str().unwrap().to_string(),
                (n["private_dns"].as_str().unwrap().to_string(), n["private_ip"].as_str().unwrap().to_string()),
            )
        })
        .collect()
}

fn host_key_tags(env: &TestEnv) -> BTreeMap<String, String> {
    env.block(async {
        let resp = env.ec2().describe_instances().set_filters(Some(env.owner_filters())).send().await.unwrap();
        resp.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str()) == Some("running"))
            .map(|i| {
                let tag = i.tags().iter().find(|t| t.key() == Some("tagstack:ssh-host-key"));
                (i.instance_id().unwrap().to_string(), tag.and_then(|t| t.value()).unwrap_or("").to_string())
            })
            .collect()
    })
}

#[test]
fn up_status_smoke_and_down_on_aws_over_moto_and_the_bed() {
    let bed = Bed::up_from(4, FIRST_HOST);
    let env = TestEnv::new("e2e");
    std::fs::write(env.config_path(), config(&env, &bed, 3, "\n[stack]\nready_timeout = \"2m\"\n")).unwrap();

    // Infra first: moto gives the instances the bed's addresses.
    let (instances, expected_keys) = infra_with_consoles(&env, &bed);

    // The whole `up`: the infra is converged, then the cluster and the stack.
    let up = env.tagstack().args(&["up", "--output", "json"]).run().success().json();
    let cluster_nodes = up["cluster"]["nodes"].as_array().unwrap();
    assert_eq!(cluster_nodes.len(), 4, "{up}");
    assert!(cluster_nodes.iter().all(|n| n["ready"] == true), "{up}");
    assert!(up["stack"]["workloads"].as_array().unwrap().iter().all(|w| w["done"] == true), "{up}");

    // The add-ons a real AWS cluster needs, pinned: the CCM of the cluster's minor (from the
    // upstream base at its tag, image overridden), the EBS CSI driver at its tag, gp3.
    let applied = std::fs::read_to_string(bed.cluster_state("applied.log")).unwrap();
    assert!(applied.contains("cloud-provider-aws/examples/existing-cluster/base/?ref=v1.36.1"), "{applied}");
    assert!(applied.contains("aws-ebs-csi-driver/deploy/kubernetes/overlays/stable/?ref=v1.64.0"), "{applied}");
    assert!(applied.contains("storageclass-gp3.yaml"), "{applied}");
    // git (for kustomize's remote bases) on the control plane only.
    let with_git = (0..4).filter(|&k| bed.installed(k, "git").is_some()).count();
    assert_eq!(with_git, 1, "git on {with_git} nodes");
    let ccm = std::fs::read_to_string(bed.cluster_state("ccm-image")).unwrap();
    assert_eq!(ccm.trim(), "v1.36.1");
    // Every node was initialised by the CCM: providerID set, no uninitialized taint.
    let kubectl = env
        .tagstack()
        .args(&[
            "ssh",
            "control-plane",
            "--",
            "kubectl",
            "--kubeconfig",
            "/etc/kubernetes/admin.conf",
            "get",
            "nodes",
            "-o",
            "json",
        ])
        .run()
        .success();
    let node_list: serde_json::Value = serde_json::from_str(&kubectl.stdout).unwrap();
    for n in node_list["items"].as_array().unwrap() {
        assert!(n["spec"]["providerID"].as_str().unwrap().starts_with("aws:///eu-west-3a/i-"), "{n}");
        assert!(n["spec"].get("taints").is_none_or(|t| !t.to_string().contains("uninitialized")), "{n}");
    }
    // The verified host keys are recorded on the instances.
    assert_eq!(host_key_tags(&env), expected_keys);
    // Issue 12 item 5: the cluster's endpoint is its stable name, which every node maps to the
    // control plane's private address (where the API server listens) in its /etc/hosts, and
    // the workers joined through it.
    let name = format!("control-plane.{}-{}.tagstack.internal", env.project, env.environment);
    let cluster: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bed.cluster_state("cluster.json")).unwrap()).unwrap();
    assert_eq!(cluster["controlPlaneEndpoint"], format!("{name}:6443"));
    let listen = std::fs::read_to_string(bed.cluster_state("listen")).unwrap();
    let cp_ip = listen.trim().trim_end_matches(":6443");
    for k in 0..4 {
        let hosts = std::fs::read_to_string(bed.fs(k, "etc/hosts")).unwrap();
        let managed: Vec<&str> = hosts.lines().filter(|l| l.contains("# tagstack: control-plane endpoint")).collect();
        assert_eq!(managed, [format!("{cp_ip} {name} # tagstack: control-plane endpoint")], "node {k}");
        let kubelet = std::fs::read_to_string(bed.fs(k, "etc/kubernetes/kubelet.conf")).unwrap();
        assert!(kubelet.contains(&format!("server: https://{name}:6443")), "node {k}: {kubelet}");
    }

    // The console wins over a tag that differs from it: status still verifies the node by the
    // console (and writes nothing), the next cluster stage re-records the console's key.
    // The control plane's instance: `status` connects to it alone.
    let cp_name = cluster_nodes.iter().find(|n| n["role"] == "control-plane").unwrap()["node_name"].as_str().unwrap();
    let (victim, _) = instances.iter().find(|(_, (name, _))| name == cp_name).unwrap();
    let wrong = expected_keys.iter().find(|(id, _)| *id != victim).map(|(_, k)| k.clone()).unwrap();
    set_host_key_tag(&env, victim, &wrong);
    env.proxy.clear_calls();
    let st = env.tagstack().args(&["status", "--output", "json"]).run().success().json();
    assert!(st["cluster"]["nodes"].as_array().unwrap().iter().all(|n| n["ready"] == true), "{st}");
    assert_eq!(env.proxy.count("CreateTags"), 0, "status wrote tags: {:?}", env.proxy.actions());
    env.tagstack().args(&["up", "--only", "cluster"]).run().success();
    assert_eq!(host_key_tags(&env), expected_keys);

    // status and smoke on the live environment.
    let st = env.tagstack().args(&["status", "--output", "json"]).run().success().json();
    assert_eq!(st["in_sync"], true, "{st}");
    assert!(st["cluster"]["nodes"].as_array().unwrap().iter().all(|n| n["ready"] == true), "{st}");
    let smoke = env.tagstack().args(&["smoke", "--output", "json"]).run().success().json();
    assert_eq!(smoke["ok"], true, "{smoke}");

    // plan reads the version the control plane runs (issue 12, item 3): nothing to upgrade, and
    // a kubernetes_version below it is refused there before `up` would run anything.
    let plan = env.tagstack().args(&["plan", "--output", "json"]).run().success().json();
    assert_eq!(
        plan["kubernetes"],
        serde_json::json!({"running": "1.36.1", "wanted": "1.36", "action": "keep", "nodes": []}),
        "{plan}"
    );
    let text = std::fs::read_to_string(env.config_path()).unwrap();
    std::fs::write(env.config_path(), text.replace("kubernetes_version = \"1.36\"", "kubernetes_version = \"1.35\""))
        .unwrap();
    let refused = env.tagstack().arg("plan").run().code(1);
    assert!(refused.stderr.contains("is older than the 1.36.1 the cluster runs"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("hint: tagstack does not downgrade: set kubernetes_version = \"1.36\""),
        "{}",
        refused.stderr
    );
    std::fs::write(env.config_path(), text).unwrap();

    // The consoles no longer show the keys (cloud-init prints them once per instance: after a
    // reboot, or once the buffer rotated, moto's canned console is what EC2 returns): a machine
    // that never saw them verifies the nodes by the recorded tags.
    env.proxy.clear_rules();
    std::fs::remove_dir_all(env.path(&format!(".tagstack/{}-{}", env.project, env.environment))).unwrap();
    env.proxy.clear_calls();
    let st = env.tagstack().args(&["status", "--output", "json"]).run().success().json();
    assert!(st["cluster"]["nodes"].as_array().unwrap().iter().all(|n| n["ready"] == true), "{st}");
    assert!(env.proxy.count("GetConsoleOutput") >= 4, "{:?}", env.proxy.actions());
    // So does the cluster stage: a converged `up` from that machine changes nothing.
    env.proxy.clear_calls();
    env.tagstack().args(&["up", "--only", "cluster"]).run().success();
    assert_eq!(env.proxy.count("CreateTags"), 0, "{:?}", env.proxy.actions());

    // With the console silent the tag is all there is: a tag that does not match the node's
    // key makes ssh refuse the node (strict host key checking), it is never accepted.
    set_host_key_tag(&env, victim, &wrong);
    let st = env.tagstack().args(&["status", "--output", "json"]).run().success().json();
    let err = st["cluster"]["error"].as_str().unwrap_or_default();
    assert!(err.contains("host key"), "{st}");
    set_host_key_tag(&env, victim, &expected_keys[victim]);

    from_before_hop_limit_1(&env);
    scale_down_one_worker(&env, &bed, &instances);
    replace_one_worker(&env, &bed);

    // down: the stack's namespaces inside the reachable cluster, then everything on AWS.
    let down = env.tagstack().args(&["down", "--yes", "--output", "json"]).run().success().json();
    assert!(!down["cluster_cleanup"].is_null(), "{down}");
    assert_eq!(down["failed"], 0, "{down}");
    assert_eq!(env.owned_counts(), crate::support::Counts::default(), "{down}");
}

/// `kubectl ARGS` on the control plane, through `tagstack ssh`: its stdout, once it succeeded.
/// Issue 14, item 4: an environment launched when pods could reach IMDS (hop limit 2, the EBS
/// CSI policy on the worker role) is hardened by the whole `up`, after its cluster stage: every
/// hop limit lowered in place, the worker's policy deleted, and nothing left for the next plan.
fn from_before_hop_limit_1(env: &TestEnv) {
    let (ec2, iam) = (env.ec2(), env.iam());
    let worker = format!("tagstack-{}-{}-worker", env.project, env.environment);
    let ids = running_instances(env);
    env.block(async {
        for id in &ids {
            ec2.modify_instance_metadata_options()
                .instance_id(id)
                .http_tokens(aws_sdk_ec2::types::HttpTokensState::Required)
                .http_put_response_hop_limit(2)
                .send()
                .await
                .unwrap();
        }
        let doc = include_str!("../../templates/iam/ebs-csi.json");
        iam.put_role_policy().role_name(&worker).policy_name("ebs-csi").policy_document(doc).send().await.unwrap();
    });
    let plan = env.tagstack().args(&["plan", "--output", "json"]).run().success().json();
    assert_eq!(plan["hardening"]["hop_limit"].as_array().map(Vec::len), Some(ids.len()), "{plan}");
    env.proxy.clear_calls();
    env.tagstack().arg("up").run().success();
    assert_eq!(env.proxy.count("ModifyInstanceMetadataOptions"), ids.len(), "{:?}", env.proxy.actions());
    assert_eq!(env.proxy.count("DeleteRolePolicy"), 1, "{:?}", env.proxy.actions());
    let hops: Vec<Option<i32>> = env.block(async {
        let out = ec2.describe_instances().set_instance_ids(Some(ids.clone())).send().await.unwrap();
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| i.metadata_options().and_then(|m| m.http_put_response_hop_limit()))
            .collect()
    });
    assert!(hops.iter().all(|h| *h == Some(1)), "{hops:?}");
    let plan = env.tagstack().args(&["plan", "--output", "json"]).run().success().json();
    assert!(plan.get("hardening").is_none(), "{plan}");
}

fn kubectl(env: &TestEnv, args: &[&str]) -> String {
    let mut argv = vec!["ssh", "control-plane", "--", "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"];
    argv.extend_from_slice(args);
    env.tagstack().args(&argv).run().success().stdout
}

/// Writes `text` to /var/lib/tagstack/test/NAME on the control plane.
fn put(env: &TestEnv, name: &str, text: &str) {
    let write = format!("mkdir -p /var/lib/tagstack/test && cat > /var/lib/tagstack/test/{name} <<'EOF'\n{text}EOF");
    env.tagstack().args(&["ssh", "control-plane", "--", &write]).run().success();
}

fn kubectl_json(env: &TestEnv, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&kubectl(env, &[args, &["-o", "json"]].concat())).unwrap()
}

/// (namespace/name of every pod on `node`, whether `node` is cordoned), from the API server.
fn on_node(env: &TestEnv, node: &str) -> (Vec<String>, bool) {
    let pods = kubectl_json(env, &["get", "pods", "-A", "--field-selector", &format!("spec.nodeName={node}")]);
    let names = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!("{}/{}", p["metadata"]["namespace"].as_str().unwrap(), p["metadata"]["name"].as_str().unwrap())
        })
        .collect();
    let nodes = kubectl_json(env, &["get", "nodes"]);
    let n = nodes["items"].as_array().unwrap().iter().find(|n| n["metadata"]["name"] == node);
    (names, n.is_some_and(|n| n["spec"]["unschedulable"] == true))
}

fn running_instances(env: &TestEnv) -> Vec<String> {
    host_key_tags(env).into_keys().collect()
}

/// Issue 12, safe scale-down, 1+3 -> 1+2 with the stack deployed: the plan retires the newest
/// worker; a Kafka that is already short of a replica refuses it before anything is touched; a
/// PodDisruptionBudget that allows no disruption stops the drain (named, node uncordoned,
/// nothing terminated); then the node is drained, deleted, terminated, and the stack is Ready
/// on the workers left.
fn scale_down_one_worker(env: &TestEnv, bed: &Bed, instances: &BTreeMap<String, (String, String)>) {
    let stack = "\n[stack]\nready_timeout = \"2m\"\n";
    let two = config(env, bed, 2, stack)
        .replace("bootstrap_timeout = \"3m\"", "bootstrap_timeout = \"3m\"\ndrain_timeout = \"10s\"");
    std::fs::write(env.config_path(), two).unwrap();
    let before = running_instances(env);
    assert_eq!(before.len(), 4);

    let plan = env.tagstack().args(&["plan", "--output", "json"]).run().success().json();
    let workers =
        plan["changes"].as_array().unwrap().iter().find(|c| c["kind"] == "instances" && c["name"] == "worker").unwrap();
    let fix = workers["fixes"][0].as_str().unwrap();
    let leaving =
        fix.strip_prefix("drain, remove from the cluster, then terminate ").unwrap_or_else(|| panic!("{plan}"));
    let node = instances[leaving].0.clone();
    let (pods, _) = on_node(env, &node);
    let kafka_here =
        pods.iter().find(|p| p.starts_with("kafka/")).unwrap_or_else(|| panic!("no Kafka pod on {node}: {pods:?}"));

    // A StatefulSet of the user's with one pod per node (required anti-affinity) and 3
    // replicas: 2 workers could not hold it, so the scale-down is refused before anything.
    let spread = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: spread\n  namespace: default\nspec:\n  replicas: 3\n  serviceName: spread\n  selector:\n    matchLabels:\n      app: spread\n  template:\n    metadata:\n      labels:\n        app: spread\n    spec:\n      affinity:\n        podAntiAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n            - topologyKey: kubernetes.io/hostname\n              labelSelector:\n                matchLabels:\n                  app: spread\n      containers:\n        - name: app\n          image: registry.k8s.io/pause:3.10\n";
    put(env, "spread.yaml", spread);
    kubectl(env, &["apply", "-f", "/var/lib/tagstack/test/spread.yaml"]);
    env.proxy.clear_calls();
    let refused = env.tagstack().arg("up").run().code(1);
    assert!(
        refused.stderr.contains("StatefulSet default/spread needs 3 nodes (one per replica: required pod anti-affinity on kubernetes.io/hostname) and 2 would stay schedulable"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("hint: keep workers.count high enough"), "{}", refused.stderr);
    let (now, cordoned) = on_node(env, &node);
    assert!(!cordoned && pods.iter().all(|p| now.contains(p)), "the node was touched: {now:?}");
    assert_eq!(env.proxy.count("TerminateInstances"), 0);
    kubectl(env, &["delete", "-n", "default", "statefulset", "spread"]);

    // A broker elsewhere that is not Ready: its partitions are under-replicated.
    let other = ["kafka/kafka-0", "kafka/kafka-1", "kafka/kafka-2"]
        .into_iter()
        .find(|p| p != kafka_here && *p != "kafka/kafka-0")
        .unwrap();
    let knob = bed.cluster_state(&format!("stack/pod-not-ready/{}", other.replace('/', ".")));
    std::fs::create_dir_all(knob.parent().unwrap()).unwrap();
    std::fs::write(&knob, "").unwrap();
    env.proxy.clear_calls();
    let refused = env.tagstack().arg("up").run().code(1);
    assert!(refused.stderr.contains("refusing to remove"), "{}", refused.stderr);
    assert!(refused.stderr.contains("kafka must have no under-replicated partitions"), "{}", refused.stderr);
    assert!(refused.stderr.contains("nothing was drained or terminated"), "{}", refused.stderr);
    assert_eq!(on_node(env, &node), (pods.clone(), false), "the node was touched");
    assert_eq!(env.proxy.count("TerminateInstances"), 0);
    std::fs::remove_file(&knob).unwrap();
    // The broker is Ready again a moment later; Kafka is in sync once no partition is listed.
    let in_sync = || {
        let describe = [crate::support::KAFKA_TOPICS, &["--describe", "--under-replicated-partitions"]].concat();
        kubectl(env, &describe).trim().is_empty()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !in_sync() {
        assert!(std::time::Instant::now() < deadline, "Kafka did not get back in sync");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    // A budget of the user's that allows no disruption, on a pod pinned to the leaving node.
    let guarded = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: guarded\n  namespace: default\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: guarded\n  template:\n    metadata:\n      labels:\n        app: guarded\n    spec:\n      nodeSelector:\n        kubernetes.io/hostname: {node}\n      containers:\n        - name: app\n          image: registry.k8s.io/pause:3.10\n---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: guarded\n  namespace: default\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels:\n      app: guarded\n"
    );
    put(env, "guarded.yaml", &guarded);
    kubectl(env, &["apply", "-f", "/var/lib/tagstack/test/guarded.yaml"]);
    env.proxy.clear_calls();
    let stopped = env.tagstack().arg("up").run().code(1);
    assert!(
        stopped.stderr.contains("pod default/guarded-")
            && stopped.stderr.contains(
                "is protected by PodDisruptionBudget default/guarded (0 disruption(s) allowed: 1 healthy, 1 needed)"
            ),
        "{}",
        stopped.stderr
    );
    assert!(stopped.stderr.contains("it was uncordoned and nothing was terminated"), "{}", stopped.stderr);
    assert!(!on_node(env, &node).1, "left cordoned");
    assert_eq!(env.proxy.count("TerminateInstances"), 0);
    assert_eq!(running_instances(env), before);
    for kind in ["poddisruptionbudget", "deployment"] {
        kubectl(env, &["delete", "-n", "default", kind, "guarded"]);
    }

    // Now it goes: drained, deleted from the cluster, terminated; the stack is Ready without it.
    let up = env.tagstack().args(&["up", "--output", "json"]).run().success().json();
    assert_eq!(up["retired"]["nodes"][0]["instance_id"], leaving, "{up}");
    assert_eq!(up["retired"]["nodes"][0]["drained"], true, "{up}");
    assert!(up["stack"]["workloads"].as_array().unwrap().iter().all(|w| w["done"] == true), "{up}");
    let after = running_instances(env);
    assert_eq!(after.len(), 3);
    assert!(!after.contains(&leaving.to_string()));
    let nodes = kubectl_json(env, &["get", "nodes"]);
    let names: Vec<&str> =
        nodes["items"].as_array().unwrap().iter().map(|n| n["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(!names.contains(&node.as_str()), "{names:?}");
    // The order, from the API server's deletions: the node's pods were evicted before the Node went.
    let deleted = std::fs::read_to_string(bed.cluster_state("stack/deleted.log")).unwrap();
    let node_at =
        deleted.lines().position(|l| l.ends_with(&format!("Node /{node}"))).unwrap_or_else(|| panic!("{deleted}"));
    let kafka_at =
        deleted.lines().position(|l| l.ends_with(&format!("Pod {kafka_here}"))).unwrap_or_else(|| panic!("{deleted}"));
    assert!(kafka_at < node_at, "{deleted}");
    // The broker that was there runs on a worker that stays.
    let (left_pods, _) = on_node(env, &node);
    assert!(left_pods.is_empty(), "{left_pods:?}");

    // The plan is converged again.
    let plan = env.tagstack().args(&["plan", "--output", "json"]).run().success().json();
    assert_eq!(plan["converged"], true, "{plan}");
}

/// Issue 12, `tagstack replace worker-0`: the worker is marked, a new one launches (moto, like
/// EC2, hands it the address the scale-down freed: that bed node becomes a new machine) and
/// joins, then the old one is drained, deleted and terminated; the stack is Ready again.
fn replace_one_worker(env: &TestEnv, bed: &Bed) {
    let before = running_instances(env);
    assert_eq!(before.len(), 3);
    let st = env.tagstack().args(&["status", "--output", "json"]).run().success().json();
    let old = st["nodes"].as_array().unwrap().iter().find(|n| n["name"] == "worker-0").unwrap().clone();
    let old_id = old["instance_id"].as_str().unwrap().to_string();
    let old_node = old["private_dns"].as_str().unwrap().to_string();

    let child = env.tagstack().args(&["replace", "worker-0", "--output", "json"]).spawn();
    // The replacement: a running instance that was not there; its bed node is made new and its
    // console shows the new host key.
    let new_id = loop {
        if let Some(id) = running_instances(env).into_iter().find(|id| !before.contains(id)) {
            break id;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let ip = env.block(async {
        let r = env.ec2().describe_instances().instance_ids(&new_id).send().await.unwrap();
        r.reservations()[0].instances()[0].private_ip_address().unwrap().to_string()
    });
    let k = bed.nodes.iter().position(|n| n.address == ip).unwrap_or_else(|| panic!("{ip} is not a bed address"));
    let key = bed.reprovision(k);
    let name = env.block(async {
        let r = env.ec2().describe_instances().instance_ids(&new_id).send().await.unwrap();
        r.reservations()[0].instances()[0].private_dns_name().unwrap().to_string()
    });
    env.proxy.add_rule(
        Rule::respond("GetConsoleOutput", &console_output(&new_id, &key, &name)).when_body_contains(&new_id).forever(),
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["command"], "replace", "{report}");
    assert_eq!(report["retired"]["nodes"][0]["instance_id"], old_id.as_str(), "{report}");
    assert!(report["stack"]["workloads"].as_array().unwrap().iter().all(|w| w["done"] == true), "{report}");

    let after = running_instances(env);
    assert_eq!(after.len(), 3);
    assert!(after.contains(&new_id) && !after.contains(&old_id), "{after:?}");
    let nodes = kubectl_json(env, &["get", "nodes"]);
    let names: Vec<&str> =
        nodes["items"].as_array().unwrap().iter().map(|n| n["metadata"]["name"].as_str().unwrap()).collect();
    assert!(names.contains(&name.as_str()) && !names.contains(&old_node.as_str()), "{names:?}");
    let plan = env.tagstack().args(&["plan", "--output", "json"]).run().success().json();
    assert_eq!(plan["converged"], true, "{plan}");
}

/// UPSTREAM-AUDIT #46 / issue 9 item 4: with `cloud-provider=external` every node stays tainted
/// `node.cloudprovider.kubernetes.io/uninitialized` (while its kubelet reports Ready) until the
/// cloud-controller-manager initialises it; a CCM that crash-loops (a stand-in knob: e.g. an
/// instance profile without its permissions) never does. `up` must not call such a cluster
/// ready: it fails at `cluster.bootstrap_timeout` naming the nodes, the taint and the CCM, and
/// the next `up` completes once the CCM runs.
#[test]
fn up_on_aws_waits_for_the_ccm_to_initialise_every_node() {
    let bed = Bed::up_from(2, FIRST_HOST);
    let env = TestEnv::new("ccm");
    std::fs::write(
        env.config_path(),
        config(&env, &bed, 1, NO_STACK).replace("bootstrap_timeout = \"3m\"", "bootstrap_timeout = \"30s\""),
    )
    .unwrap();
    infra_with_consoles(&env, &bed);
    std::fs::write(bed.cluster_state("ccm-crashloop"), "").unwrap();
    let failed = env.tagstack().arg("up").run().code(1);
    assert!(failed.stderr.contains("the cluster is not ready after"), "{}", failed.stderr);
    assert!(
        failed.stderr.contains(
            "Ready but not initialised by the cloud-controller-manager (taint node.cloudprovider.kubernetes.io/uninitialized, no spec.providerID)"
        ),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("DaemonSet kube-system/aws-cloud-controller-manager (0/1 available)"),
        "{}",
        failed.stderr
    );

    std::fs::remove_file(bed.cluster_state("ccm-crashloop")).unwrap();
    let up = env.tagstack().args(&["up", "--output", "json"]).run().success().json();
    assert!(up["cluster"]["nodes"].as_array().unwrap().iter().all(|n| n["ready"] == true), "{up}");
    env.tagstack().args(&["down", "--yes"]).run().success();
    assert_eq!(env.owned_counts(), crate::support::Counts::default());
}

/// Issue 12, backups: `tagstack backup` takes the snapshot through the etcd static pod on the
/// control plane (the kubectl stand-in models etcdctl there), fetches it, checks it and
/// uploads it to moto's S3 with SSE-S3 and its SHA-256; nothing of it stays on the node or on
/// this machine. A snapshot that does not match etcd's own hash, and an etcd that is down, fail
/// the backup and upload nothing. `status` shows the newest; `down` keeps the bucket.
#[test]
fn backup_on_aws_over_moto_and_the_bed() {
    use sha2::Digest;
    let bed = Bed::up_from(2, FIRST_HOST);
    let env = TestEnv::new("bk");
    std::fs::write(env.config_path(), config(&env, &bed, 1, &format!("{NO_STACK}\n[backup]\nretention_days = 3\n")))
        .unwrap();
    infra_with_consoles(&env, &bed);
    let up = env.tagstack().args(&["up", "--output", "json"]).run().success().json();
    let cp = up["cluster"]["nodes"].as_array().unwrap().iter().find(|n| n["role"] == "control-plane").unwrap();
    let cp_ip = up["nodes"].as_array().unwrap().iter().find(|n| n["role"] == "control-plane").unwrap()["private_ip"]
        .as_str()
        .unwrap()
        .to_string();
    let k = usize::try_from(cp_ip.rsplit('.').next().unwrap().parse::<u32>().unwrap() - FIRST_HOST).unwrap();
    assert!(cp["ready"] == true, "{up}");
    let bucket = env.backup_bucket();
    let s3 = env.s3();
    let objects = |env: &TestEnv| -> Vec<String> {
        env.block(async {
            let out = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
            out.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect()
        })
    };

    let done = env.tagstack().args(&["backup", "--output", "json"]).run().success().json();
    let key = done["key"].as_str().unwrap().to_string();
    assert_eq!(done["bucket"], bucket.as_str());
    assert!(key.starts_with(&format!("{}-{}/etcd-20", env.project, env.environment)), "{done}");
    assert!(key.ends_with("Z.db"), "{done}");
    let size = done["size"].as_u64().unwrap();
    assert_eq!(size % 512, 32, "{done}");
    let (body, sse, meta) = env.block(async {
        let o = s3.get_object().bucket(&bucket).key(&key).send().await.unwrap();
        let sse = o.server_side_encryption().map(|s| s.as_str().to_string());
        let meta = o.metadata().and_then(|m| m.get("sha256")).cloned();
        (o.body.collect().await.unwrap().into_bytes().to_vec(), sse, meta)
    });
    assert_eq!(body.len() as u64, size);
    let sha: String = sha2::Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(done["sha256"], sha.as_str());
    assert_eq!(meta.as_deref(), Some(sha.as_str()));
    assert_eq!(sse.as_deref(), Some("AES256"));
    // The snapshot is etcd's state (the stand-in's cluster state) and its hash.
    let db = &body[..body.len() - 32];
    assert_eq!(&body[body.len() - 32..], sha2::Sha256::digest(db).as_slice());
    assert!(String::from_utf8_lossy(db).contains("objects.json"));
    // No copy is left behind: not on the node, not in etcd's data directory, not here.
    assert!(!bed.fs(k, "var/lib/tagstack/backup/etcd-snapshot.db").exists());
    assert!(!bed.fs(k, "var/lib/etcd/tagstack-snapshot.db").exists());
    let local = env.path(&format!(".tagstack/{}-{}", env.project, env.environment));
    let left: Vec<String> = std::fs::read_dir(&local)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains("snapshot"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // A damaged snapshot is refused before any upload.
    std::fs::write(bed.fs(k, "var/lib/standin/etcd-snapshot-corrupt"), "").unwrap();
    let bad = env.tagstack().arg("backup").run().code(1);
    assert!(bad.stderr.contains("the snapshot is damaged"), "{}", bad.stderr);
    std::fs::remove_file(bed.fs(k, "var/lib/standin/etcd-snapshot-corrupt")).unwrap();
    // etcd down: kubectl exec cannot reach its container.
    std::fs::write(bed.fs(k, "var/lib/standin/etcd-down"), "").unwrap();
    let down = env.tagstack().arg("backup").run().code(1);
    assert!(down.stderr.contains("container not found (\"etcd\")"), "{}", down.stderr);
    std::fs::remove_file(bed.fs(k, "var/lib/standin/etcd-down")).unwrap();
    assert_eq!(objects(&env), std::slice::from_ref(&key));

    let st = env.tagstack().args(&["status", "--output", "json"]).run().success().json();
    assert_eq!(st["backups"]["newest"]["key"], key.as_str(), "{st}");

    let gone = env.tagstack().args(&["down", "--yes", "--output", "json"]).run().success().json();
    assert_eq!(gone["kept_backups"], bucket.as_str(), "{gone}");
    assert_eq!(objects(&env), [key]);
    env.tagstack().args(&["down", "--yes", "--delete-backups"]).run().success();
    assert!(env.block(async { s3.head_bucket().bucket(&bucket).send().await.is_err() }));
    assert_eq!(env.owned_counts(), crate::support::Counts::default());
}

/// `tagstack restore` on the bed, after `backup` (issue 12): the refusals before anything is
/// touched (no terminal, no such key, a damaged or altered snapshot, no `[backup]`, an etcd
/// image without etcdutl), a restore killed in etcdutl (a partial data directory left, the
/// static pods stopped) that refuses another snapshot, is killed again, then found stopped
/// between its two renames and finished by the same command, and
/// the result: etcd's data directory holds the snapshot, the data it ran on before is kept
/// next to it, the static pods are back and every node is Ready.
#[test]
fn restore_on_aws_over_moto_and_the_bed() {
    use sha2::Digest;
    let bed = Bed::up_from(2, FIRST_HOST);
    let env = TestEnv::new("rs");
    let with_backup = config(&env, &bed, 1, &format!("{NO_STACK}\n[backup]\nretention_days = 3\n"));
    std::fs::write(env.config_path(), &with_backup).unwrap();
    infra_with_consoles(&env, &bed);
    let up = env.tagstack().args(&["up", "--output", "json"]).run().success().json();
    let cp_ip = up["nodes"].as_array().unwrap().iter().find(|n| n["role"] == "control-plane").unwrap()["private_ip"]
        .as_str()
        .unwrap()
        .to_string();
    let k = usize::try_from(cp_ip.rsplit('.').next().unwrap().parse::<u32>().unwrap() - FIRST_HOST).unwrap();
    let bucket = env.backup_bucket();
    let s3 = env.s3();
    let fs = |rel: &str| bed.fs(k, rel);
    // What etcd wrote in its data directory since it started (etcd itself is not modelled).
    let old_db = b"etcd's database as it was before the restore".to_vec();
    std::fs::create_dir_all(fs("var/lib/etcd/member/snap")).unwrap();
    std::fs::write(fs("var/lib/etcd/member/snap/db"), &old_db).unwrap();

    let first = env.tagstack().args(&["backup", "--output", "json"]).run().success().json();
    let first_key = first["key"].as_str().unwrap().to_string();
    // Something changes in the cluster after the first snapshot (and keys carry the time to
    // the second).
    put(
        &env,
        "after-backup.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: made-after-the-backup\n  namespace: default\ndata:\n  k: v\n",
    );
    kubectl(&env, &["apply", "-f", "/var/lib/tagstack/test/after-backup.yaml"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = env.tagstack().args(&["backup", "--output", "json"]).run().success().json();
    let second_key = second["key"].as_str().unwrap().to_string();
    assert_ne!(first["sha256"], second["sha256"]);
    let body = env.block(async {
        let o = s3.get_object().bucket(&bucket).key(&first_key).send().await.unwrap();
        o.body.collect().await.unwrap().into_bytes().to_vec()
    });
    let manifests = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"];
    let untouched = |why: &str| {
        for m in manifests {
            assert!(fs(&format!("etc/kubernetes/manifests/{m}.yaml")).exists(), "{why}: {m}.yaml moved");
        }
        assert_eq!(std::fs::read(fs("var/lib/etcd/member/snap/db")).unwrap(), old_db, "{why}");
        assert!(!fs("var/lib/etcd/tagstack-restore.partial").exists(), "{why}");
    };

    // No terminal, no --yes: refused after the check, before anything on the node.
    let asked = env.tagstack().args(&["restore", "latest"]).run().code(2);
    assert!(
        asked.stderr.contains("refusing to restore without confirmation: stdin is not a terminal"),
        "{}",
        asked.stderr
    );
    let missing = env.tagstack().args(&["restore", "nope.db", "--yes"]).run().code(1);
    assert!(missing.stderr.contains("no snapshot \"nope.db\" in the backup bucket"), "{}", missing.stderr);
    assert!(missing.stderr.contains(&format!("newest: {second_key}")), "{}", missing.stderr);
    // A damaged object (its trailer no longer matches), and one altered after the upload.
    let damaged_key = format!("{}-{}/etcd-2099-01-01T00:00:00Z.db", env.project, env.environment);
    let mut damaged = body.clone();
    damaged[10] ^= 1;
    let altered_key = format!("{}-{}/etcd-2099-01-02T00:00:00Z.db", env.project, env.environment);
    env.block(async {
        let put = |key: &str, bytes: Vec<u8>, sha: &str| {
            s3.put_object()
                .bucket(&bucket)
                .key(key)
                .metadata("sha256", sha)
                .body(aws_sdk_s3::primitives::ByteStream::from(bytes))
                .send()
        };
        put(&damaged_key, damaged.clone(), "0").await.unwrap();
        put(&altered_key, body.clone(), &"0".repeat(64)).await.unwrap();
    });
    let bad = env.tagstack().args(&["restore", &damaged_key, "--yes"]).run().code(1);
    assert!(bad.stderr.contains("the snapshot is damaged"), "{}", bad.stderr);
    let altered = env.tagstack().args(&["restore", "latest", "--yes"]).run().code(1);
    assert!(altered.stderr.contains("it changed after the upload"), "{}", altered.stderr);
    let local_bad = env.path("damaged.db");
    std::fs::write(&local_bad, &damaged).unwrap();
    let bad = env.tagstack().args(&["restore", local_bad.to_str().unwrap(), "--yes"]).run().code(1);
    assert!(bad.stderr.contains("is not an intact etcd snapshot"), "{}", bad.stderr);
    env.block(async {
        for key in [&damaged_key, &altered_key] {
            s3.delete_object().bucket(&bucket).key(key).send().await.unwrap();
        }
    });
    // Without [backup] there is no bucket to restore from.
    std::fs::write(env.config_path(), config(&env, &bed, 1, NO_STACK)).unwrap();
    let none = env.tagstack().args(&["restore", "latest", "--yes"]).run().code(2);
    assert!(none.stderr.contains("has no [backup] section"), "{}", none.stderr);
    std::fs::write(env.config_path(), &with_backup).unwrap();
    // An etcd image without etcdutl: refused before any static pod stops.
    std::fs::write(fs("var/lib/standin/etcd-image-without-etcdutl"), "").unwrap();
    let no_tool = env.tagstack().args(&["restore", &first_key, "--yes"]).run().code(1);
    assert!(no_tool.stderr.contains("carries no etcdutl: nothing was stopped"), "{}", no_tool.stderr);
    std::fs::remove_file(fs("var/lib/standin/etcd-image-without-etcdutl")).unwrap();
    untouched("refusals");

    // Killed in etcdutl: the static pods are stopped, a partial directory is left, the old data
    // is whole; another snapshot is refused; the same one finishes.
    std::fs::write(fs("var/lib/standin/etcdutl-crash"), "").unwrap();
    let killed = env.tagstack().args(&["restore", &first_key, "--yes"]).run().code(1);
    assert!(killed.stderr.contains("run the same `tagstack restore` again"), "{}", killed.stderr);
    assert!(!fs("etc/kubernetes/manifests/etcd.yaml").exists());
    assert!(fs("etc/kubernetes/tagstack-restore/etcd.yaml").exists());
    assert!(fs("var/lib/etcd/tagstack-restore.partial/member/snap/db").exists());
    assert_eq!(std::fs::read(fs("var/lib/etcd/member/snap/db")).unwrap(), old_db);
    let other = env.tagstack().args(&["restore", &second_key, "--yes"]).run().code(1);
    assert!(other.stderr.contains("a restore of another snapshot"), "{}", other.stderr);
    assert!(other.stderr.contains(&first["sha256"].as_str().unwrap().to_string()), "{}", other.stderr);
    // Killed in etcdutl again: the partial directory of the first attempt was cleared (etcdutl
    // refuses a non-empty one, exit 1; this is its crash, 137).
    std::fs::write(fs("var/lib/standin/etcdutl-crash"), "").unwrap();
    let again = env.tagstack().args(&["restore", &first_key, "--yes"]).run().code(1);
    assert!(again.stderr.contains("exit code 137"), "{}", again.stderr);
    // Stopped between the two renames (etcdutl finished, the old data moved aside, the restored
    // member not yet in): what the next run finds.
    let progress = std::fs::read_to_string(fs("var/lib/tagstack/restore/in-progress")).unwrap();
    let kept_name = progress.lines().find_map(|l| l.strip_prefix("kept=")).unwrap().to_string();
    std::fs::create_dir_all(fs("var/lib/etcd/tagstack-restore.partial/member/wal")).unwrap();
    std::fs::write(fs("var/lib/etcd/tagstack-restore.partial/member/wal/0000000000000000-0000000000000000.wal"), "")
        .unwrap();
    std::fs::rename(fs("var/lib/etcd/tagstack-restore.partial"), fs("var/lib/etcd/tagstack-restore.done")).unwrap();
    std::fs::rename(fs("var/lib/etcd/member"), fs(&format!("var/lib/etcd/{kept_name}"))).unwrap();

    let done = env.tagstack().args(&["restore", &first_key, "--yes", "--output", "json"]).run().success().json();
    assert_eq!(done["from"], format!("s3://{bucket}/{first_key}").as_str(), "{done}");
    assert_eq!(done["sha256"], first["sha256"], "{done}");
    let kept = done["kept"].as_str().unwrap().to_string();
    assert_eq!(kept, format!("/var/lib/etcd/{kept_name}"), "{done}");
    assert!(kept.starts_with("/var/lib/etcd/member.before-restore-20"), "{done}");
    // The data directory holds the snapshot's database (without its hash trailer).
    let db = &body[..body.len() - 32];
    assert_eq!(&body[body.len() - 32..], sha2::Sha256::digest(db).as_slice());
    assert_eq!(std::fs::read(fs("var/lib/etcd/member/snap/db")).unwrap(), db);
    assert!(!String::from_utf8_lossy(db).contains("made-after-the-backup"));
    assert!(fs("var/lib/etcd/member/wal/0000000000000000-0000000000000000.wal").exists());
    // The data etcd ran on is kept, whole.
    assert_eq!(std::fs::read(fs(&format!("{}/snap/db", kept.trim_start_matches('/')))).unwrap(), old_db);
    for m in manifests {
        assert!(fs(&format!("etc/kubernetes/manifests/{m}.yaml")).exists(), "{m}.yaml not back");
        assert!(!fs(&format!("etc/kubernetes/tagstack-restore/{m}.yaml")).exists(), "{m}.yaml left aside");
    }
    for gone in [
        "var/lib/etcd/tagstack-restore.partial",
        "var/lib/etcd/tagstack-restore.done",
        "var/lib/tagstack/restore/snapshot.db",
        "var/lib/tagstack/restore/in-progress",
        "var/lib/tagstack/restore/etcdutl",
    ] {
        assert!(!fs(gone).exists(), "{gone} left behind");
    }
    let local = env.path(&format!(".tagstack/{}-{}", env.project, env.environment));
    let left: Vec<String> = std::fs::read_dir(&local)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains("restore"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let st = env.tagstack().args(&["status", "--output", "json"]).run().success().json();
    assert!(st.to_string().contains("\"ready\":true"), "{st}");

    env.tagstack().args(&["down", "--yes", "--delete-backups"]).run().success();
    assert_eq!(env.owned_counts(), crate::support::Counts::default());
}
