//! `down`'s sweep of what the cluster created on AWS: EBS volumes (made by the EBS CSI driver
//! for PersistentVolumeClaims, tagged with the environment's tags through `--extra-tags`) and
//! network interfaces. Against moto: tagged ones go, untagged and other-environment ones stay.

use aws_sdk_ec2::types::{Filter, ResourceType};

use crate::support::{Counts, TestEnv};

use crate::support::tag_spec as tags;

#[test]
fn down_deletes_the_clusters_volumes_and_interfaces_and_nothing_else() {
    let env = TestEnv::new("sweep");
    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    let ec2 = env.ec2();
    let p = env.project.clone();
    let e = env.environment.clone();
    let zone = format!("{}a", crate::support::REGION);
    let ids = env.block(async {
        let subnet = ec2.describe_subnets().set_filters(Some(env.owner_filters())).send().await.unwrap();
        let subnet_id = subnet.subnets()[0].subnet_id().unwrap().to_string();
        let volume = |pairs: Vec<(String, String)>| {
            let ec2 = ec2.clone();
            let zone = zone.clone();
            async move {
                let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let mut req = ec2.create_volume().availability_zone(zone).size(20).volume_type("gp3".into());
                if !pairs.is_empty() {
                    req = req.tag_specifications(tags(&pairs, ResourceType::Volume));
                }
                req.send().await.unwrap().volume_id().unwrap().to_string()
            }
        };
        // What the EBS CSI driver creates for data-kafka-0 with tagstack's --extra-tags.
        let kv = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let cluster_tag = format!("kubernetes.io/cluster/{p}-{e}");
        let ours = volume(kv(&[
            ("tagstack:project", &p),
            ("tagstack:env", &e),
            ("ebs.csi.aws.com/cluster", "true"),
            ("kubernetes.io/created-for/pvc/namespace", "kafka"),
            ("kubernetes.io/created-for/pvc/name", "data-kafka-0"),
            (&cluster_tag, "owned"),
        ]))
        .await;
        let untagged = volume(Vec::new()).await;
        let other_env = volume(kv(&[("tagstack:project", &p), ("tagstack:env", "other")])).await;
        // The cluster tag alone is not ownership: another tool may use the same cluster name.
        let cluster_tag_only = volume(kv(&[(&cluster_tag, "owned")])).await;
        let eni = ec2
            .create_network_interface()
            .subnet_id(&subnet_id)
            .description("left by the cluster")
            .tag_specifications(tags(&[("tagstack:project", &p), ("tagstack:env", &e)], ResourceType::NetworkInterface))
            .send()
            .await
            .unwrap()
            .network_interface()
            .unwrap()
            .network_interface_id()
            .unwrap()
            .to_string();
        (ours, untagged, other_env, cluster_tag_only, eni)
    });
    let (ours, untagged, other_env, cluster_tag_only, eni) = ids;

    // `up` does not manage them: the environment is still converged.
    let plan = env.tagstack().args(&["plan", "--output", "json"]).run().success().json();
    assert_eq!(plan["converged"], true, "{plan}");

    let down = env.tagstack().args(&["down", "--yes", "--output", "json"]).run().success().json();
    let deleted: Vec<(String, String, String)> = down["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "volume" || d["kind"] == "network-interface")
        .map(|d| {
            (
                d["kind"].as_str().unwrap().into(),
                d["name"].as_str().unwrap().into(),
                d["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        deleted,
        vec![
            ("volume".to_string(), "pvc kafka/data-kafka-0".to_string(), "deleted".to_string()),
            ("network-interface".to_string(), eni.clone(), "deleted".to_string()),
        ],
        "{down}"
    );
    assert_eq!(env.owned_counts(), Counts::default());

    env.block(async {
        let left = |id: String| {
            let ec2 = ec2.clone();
            async move {
                ec2.describe_volumes()
                    .filters(Filter::builder().name("volume-id").values(id).build())
                    .send()
                    .await
                    .unwrap()
                    .volumes()
                    .len()
            }
        };
        assert_eq!(left(ours).await, 0, "the cluster's volume was not deleted");
        for decoy in [&untagged, &other_env, &cluster_tag_only] {
            assert_eq!(left(decoy.clone()).await, 1, "decoy volume {decoy} was deleted");
            ec2.delete_volume().volume_id(decoy).send().await.unwrap();
        }
        let enis = ec2
            .describe_network_interfaces()
            .filters(Filter::builder().name("network-interface-id").values(&eni).build())
            .send()
            .await
            .unwrap();
        assert!(enis.network_interfaces().is_empty(), "the cluster's network interface was not deleted");
    });
}
