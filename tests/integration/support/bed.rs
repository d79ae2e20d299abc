//! SSH test bed for the cluster stage: real sshd hosts in network namespaces
//! (`scripts/testbed`), whose kubeadm, kubectl, systemctl, apt-get, containerd, ... are the
//! stand-ins in `tests/fixtures/node-bin/` (no real Kubernetes can run here). Each bed gets its
//! own subnet 10.77.B.0/24; Drop tears it down.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct Bed {
    pub bed: u32,
    pub dir: tempfile::TempDir,
    pub nodes: Vec<BedNode>,
}

#[derive(Debug, Clone)]
pub struct BedNode {
    pub index: usize,
    pub address: String,
    pub host_key: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn testbed(args: &[&str]) {
    let out = Command::new(root().join("scripts/testbed")).args(args).output().expect("running scripts/testbed");
    assert!(
        out.status.success(),
        "scripts/testbed {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Bed {
    /// `n` nodes: node 0 is the control plane by convention.
    pub fn up(n: usize) -> Bed {
        Self::up_from(n, 10)
    }

    /// `n` nodes at 10.77.B.(first_host + K): with 4, the addresses EC2 (and moto) give the
    /// first instances launched in the subnet 10.77.B.0/24.
    pub fn up_from(n: usize, first_host: u32) -> Bed {
        let bed = claim_bed_number();
        let dir = tempfile::Builder::new().prefix("tb").tempdir_in("/var/tmp").unwrap();
        let d = dir.path().display().to_string();
        let fixtures = root().join("tests/fixtures/node-bin").display().to_string();
        testbed(&[
            "up",
            "--bed",
            &bed.to_string(),
            "--nodes",
            &n.to_string(),
            "--dir",
            &d,
            "--fixtures",
            &fixtures,
            "--first-host",
            &first_host.to_string(),
        ]);
        let text = std::fs::read_to_string(dir.path().join("nodes.txt")).unwrap();
        let nodes = text
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                BedNode {
                    index: f[0].parse().unwrap(),
                    address: f[2].to_string(),
                    host_key: format!("{} {}", f[3], f[4]),
                }
            })
            .collect();
        Bed { bed, dir, nodes }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A node's private files as seen from the host, e.g. `fs("etc/kubernetes", 0)`.
    pub fn fs(&self, node: usize, rel: &str) -> PathBuf {
        self.path().join(format!("nodes/{node}/fs")).join(rel)
    }

    pub fn cluster_state(&self, rel: &str) -> PathBuf {
        self.path().join("cluster").join(rel)
    }

    pub fn stop_sshd(&self, node: usize) {
        self.node_cmd("stop-sshd", node);
    }

    pub fn start_sshd(&self, node: usize) {
        self.node_cmd("start-sshd", node);
    }

    pub fn rekey(&self, node: usize) {
        self.node_cmd("rekey", node);
    }

    fn node_cmd(&self, cmd: &str, node: usize) {
        let d = self.path().display().to_string();
        testbed(&[cmd, "--bed", &self.bed.to_string(), "--node", &node.to_string(), "--dir", &d]);
    }

    /// Node `k` becomes a new machine at the same address (as when EC2 hands a terminated
    /// instance's private IP to the next launch): its files are emptied and it gets a new host
    /// key, which is returned.
    pub fn reprovision(&self, k: usize) -> String {
        for rel in [
            "tmp",
            "etc/kubernetes",
            "var/lib/kubelet",
            "var/lib/tagstack",
            "etc/containerd",
            "etc/modules-load.d",
            "etc/sysctl.d",
            "etc/apt/sources.list.d",
            "etc/apt/keyrings",
            "var/lib/standin",
        ] {
            for entry in std::fs::read_dir(self.fs(k, rel)).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() && !path.is_symlink() {
                    std::fs::remove_dir_all(&path).unwrap();
                } else {
                    std::fs::remove_file(&path).unwrap();
                }
            }
        }
        self.rekey(k);
        let public = std::fs::read_to_string(self.path().join(format!("nodes/{k}/ssh_host_ed25519_key.pub"))).unwrap();
        let f: Vec<&str> = public.split_whitespace().collect();
        format!("{} {}", f[0], f[1])
    }

    /// The first boot of an instance whose disk is node `k`'s (`scripts/testbed boot`: what
    /// systemd and cloud-init do on an Ubuntu cloud image's first boot): a machine-id if it has
    /// none, new host keys, the test key authorized, the keys on the console. `fresh`: a new
    /// instance of the base image (the node's files emptied first), else of the image its disk
    /// became. Answers (its ed25519 host key `type base64`, its console text). The bed's own
    /// known_hosts is not updated.
    pub fn boot(&self, k: usize, fresh: bool) -> (String, String) {
        let d = self.path().display().to_string();
        let (b, n) = (self.bed.to_string(), k.to_string());
        let mut args = vec!["boot", "--bed", &b, "--node", &n, "--dir", &d];
        if fresh {
            args.push("--fresh");
        }
        testbed(&args);
        let public = std::fs::read_to_string(self.path().join(format!("nodes/{k}/ssh_host_ed25519_key.pub"))).unwrap();
        let f: Vec<&str> = public.split_whitespace().collect();
        let console = std::fs::read_to_string(self.path().join(format!("nodes/{k}/console.log"))).unwrap();
        (format!("{} {}", f[0], f[1]), console)
    }

    /// First boot on node `k`, counted from now: cloud-init runs for `cloud_init_secs` (its
    /// package modules hold the dpkg lock meanwhile) and unattended-upgrades holds the dpkg lock
    /// for `unattended_upgrades_secs` (0: not at all). Read by the cloud-init and apt-get
    /// stand-ins (`/var/lib/standin/cloud-init/done-at`, `apt/busy-until`).
    pub fn first_boot(&self, k: usize, cloud_init_secs: u64, unattended_upgrades_secs: u64) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let state = self.fs(k, "var/lib/standin");
        std::fs::create_dir_all(state.join("cloud-init")).unwrap();
        std::fs::create_dir_all(state.join("apt")).unwrap();
        std::fs::write(state.join("cloud-init/done-at"), format!("{}\n", now + cloud_init_secs)).unwrap();
        if unattended_upgrades_secs > 0 {
            std::fs::write(state.join("apt/busy-until"), format!("{}\n", now + unattended_upgrades_secs)).unwrap();
        }
    }

    /// A package already installed on node `k` before tagstack runs (optionally held), as the
    /// apt-get/dpkg-query/containerd stand-ins record it.
    pub fn preinstall(&self, k: usize, package: &str, version: &str, hold: bool) {
        let state = self.fs(k, "var/lib/standin");
        std::fs::create_dir_all(state.join("dpkg")).unwrap();
        std::fs::write(state.join("dpkg").join(package), format!("{version}\n")).unwrap();
        if hold {
            std::fs::create_dir_all(state.join("apt/holds")).unwrap();
            std::fs::write(state.join("apt/holds").join(package), "2026-11-30T00:00:00Z\n").unwrap();
        }
    }

    /// The version the stand-in dpkg records for `package` on node `k`.
    pub fn installed(&self, k: usize, package: &str) -> Option<String> {
        std::fs::read_to_string(self.fs(k, "var/lib/standin/dpkg").join(package)).ok().map(|s| s.trim().to_string())
    }

    /// Runs `command` as root on node `k` over the bed's own SSH client files: (exit code,
    /// stdout, stderr).
    pub fn ssh(&self, k: usize, command: &str) -> (i32, String, String) {
        let out = Command::new("ssh")
            .arg("-F")
            .arg(self.path().join("ssh_config"))
            .arg(format!("node-{k}"))
            .arg(command)
            .output()
            .expect("running ssh");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The name tagstack's config gives node `k`.
    pub fn name(k: usize) -> String {
        if k == 0 { "cp".into() } else { format!("w{k}") }
    }

    /// A static environment file for this bed.
    pub fn config(&self, project: &str) -> String {
        let mut s = format!(
            "project = \"{project}\"\nenvironment = \"bed\"\nprovider = \"static\"\nkubernetes_version = \"1.36\"\n\n[ssh]\nprivate_key = \"{}\"\nuser = \"root\"\n\n[cluster]\nbootstrap_timeout = \"3m\"\n",
            self.path().join("id_ed25519").display()
        );
        for n in &self.nodes {
            s.push_str(&format!(
                "\n[[nodes]]\nname = \"{}\"\naddress = \"{}\"\nrole = \"{}\"\nhost_key = \"{}\"\n",
                Self::name(n.index),
                n.address,
                if n.index == 0 { "control-plane" } else { "worker" },
                n.host_key
            ));
        }
        s
    }
}

/// Standard base64 (RFC 4648, padded): EC2 returns console output base64-encoded.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// EC2's GetConsoleOutput answer for `instance_id` with `console` as its output.
pub fn console_response(instance_id: &str, console: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<GetConsoleOutputResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
         <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId><instanceId>{instance_id}</instanceId>\
         <timestamp>2026-11-30T07:00:15.000Z</timestamp><output>{}</output></GetConsoleOutputResponse>",
        base64(console.as_bytes())
    )
}

/// Config tables that turn the stack stage off: the cluster tests are about the cluster (the
/// stack has tests of its own, stack_deploy.rs).
pub const NO_STACK: &str =
    "\n[stack.kafka]\nenabled = false\n[stack.cassandra]\nenabled = false\n[stack.spark]\nenabled = false\n";

/// A test environment on the whole bed, without the stack stage.
pub fn cluster_env(bed: &Bed, name: &str) -> crate::support::TestEnv {
    let env = crate::support::TestEnv::new(name);
    std::fs::write(env.config_path(), format!("{}{NO_STACK}", bed.config(&env.project))).unwrap();
    env
}

/// A test environment on the whole bed with `tables` after the bed's config (e.g. `[stack]`).
pub fn env_with(bed: &Bed, name: &str, tables: &str) -> crate::support::TestEnv {
    let env = crate::support::TestEnv::new(name);
    std::fs::write(env.config_path(), format!("{}\n{tables}", bed.config(&env.project))).unwrap();
    env
}

/// kubectl as tagstack runs it on the control plane.
pub const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";

/// `script` run by the control plane's shell (`tagstack ssh cp -- SCRIPT`: ssh hands the remote
/// shell one command line).
pub fn on_cp(env: &crate::support::TestEnv, script: &str) -> crate::support::Run {
    env.tagstack().args(&["ssh", "cp", "--", script]).run()
}

/// What tagstack logged for node `node` of a static environment (`.tagstack/<project>-bed/logs`).
pub fn node_log(env: &crate::support::TestEnv, node: &str) -> String {
    let path = env.dir.path().join(format!(".tagstack/{}-bed/logs/{node}.log", env.project));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl Drop for Bed {
    fn drop(&mut self) {
        let d = self.path().display().to_string();
        let _ = Command::new(root().join("scripts/testbed"))
            .args(["down", "--bed", &self.bed.to_string(), "--dir", &d])
            .output();
        let _ = std::fs::remove_file(claim_path(self.bed));
    }
}

/// Where a bed number is claimed: a file holding the claiming test process's pid.
fn claim_path(bed: u32) -> PathBuf {
    PathBuf::from(format!("/var/tmp/tagstack-bed-claims/{bed}"))
}

/// A bed number (its subnet 10.77.B.0/24 and namespaces) no other live bed uses, in this test
/// process or another one on the machine: two beds on one number tear down each other's
/// sshd. Claimed by creating its file exclusively; a claim whose process is gone (a killed run)
/// is taken over. Candidates start at a place derived from the pid and the call count, so
/// concurrent processes rarely contend for the same file.
fn claim_bed_number() -> u32 {
    const BEDS: u32 = 200;
    std::fs::create_dir_all("/var/tmp/tagstack-bed-claims").unwrap();
    let start = std::process::id() * 8 + NEXT.fetch_add(1, Ordering::SeqCst);
    for i in 0..BEDS * 2 {
        let bed = (start + i) % BEDS + 1;
        let path = claim_path(bed);
        let create = std::fs::OpenOptions::new().write(true).create_new(true).open(&path);
        if let Ok(mut f) = create {
            use std::io::Write;
            write!(f, "{}", std::process::id()).unwrap();
            return bed;
        }
        let owner = std::fs::read_to_string(&path).unwrap_or_default();
        let alive = owner.trim().parse::<u32>().is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive && !owner.is_empty() {
            // A claim left by a dead process: free it, and try this number again on the next lap.
            let _ = std::fs::remove_file(&path);
        }
    }
    panic!("no free test-bed number in 1..={BEDS}: every one is claimed by a live process");
}

/// A default StorageClass on the bed's cluster (kubeadm installs none), as a user of a static
/// cluster installs with their provisioner. The cluster stage must have run.
pub fn add_storage_class(env: &crate::support::TestEnv, bed: &Bed) {
    std::fs::write(
        bed.fs(0, "var/lib/tagstack/local-path.yaml"),
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: local-path\n  annotations:\n    storageclass.kubernetes.io/is-default-class: \"true\"\nprovisioner: rancher.io/local-path\nvolumeBindingMode: WaitForFirstConsumer\n",
    )
    .unwrap();
    let apply = [
        "ssh",
        "cp",
        "--",
        "kubectl",
        "--kubeconfig",
        "/etc/kubernetes/admin.conf",
        "apply",
        "-f",
        "/var/lib/tagstack/local-path.yaml",
    ];
    env.tagstack().args(&apply).run().success();
}
