//! `tagstack restore FILE` on a static environment (issue 12): a snapshot file on this machine
//! needs no `[backup]` and no AWS. Over real SSH on the test bed, with the crictl, ctr and
//! etcdutl stand-ins (tests/fixtures/node-bin/README.md). The S3 path, the refusals and the
//! resume are in `aws_end_to_end::restore_on_aws_over_moto_and_the_bed`.

use sha2::Digest;

use crate::support::bed::{Bed, cluster_env as env_for};

#[test]
fn a_static_cluster_is_restored_from_a_local_snapshot_file() {
    let bed = Bed::up(2);
    let env = env_for(&bed, "restore");
    env.tagstack().args(&["up"]).run().success();
    std::fs::create_dir_all(bed.fs(0, "var/lib/etcd/member/snap")).unwrap();
    std::fs::write(bed.fs(0, "var/lib/etcd/member/snap/db"), "before").unwrap();
    // An etcd snapshot as etcdctl saves it: whole pages of database, then their SHA-256.
    let db = vec![7u8; 8192];
    let mut file = db.clone();
    file.extend_from_slice(&sha2::Sha256::digest(&db));
    let path = env.dir.path().join("snapshot.db");
    std::fs::write(&path, &file).unwrap();

    let done =
        env.tagstack().args(&["restore", path.to_str().unwrap(), "--yes", "--output", "json"]).run().success().json();
    assert_eq!(done["from"], path.to_str().unwrap(), "{done}");
    assert_eq!(done["size"], 8192 + 32, "{done}");
    let kept = done["kept"].as_str().unwrap().trim_start_matches('/').to_string();
    assert_eq!(std::fs::read(bed.fs(0, "var/lib/etcd/member/snap/db")).unwrap(), db);
    assert_eq!(std::fs::read_to_string(bed.fs(0, &format!("{kept}/snap/db"))).unwrap(), "before");
    assert!(bed.fs(0, "etc/kubernetes/manifests/kube-apiserver.yaml").exists());
    // The file given is the user's: tagstack leaves it.
    assert!(path.exists());
}
