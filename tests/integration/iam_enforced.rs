//! The node roles' rights, evaluated by moto's IAM enforcement (issue 14): a worker's role
//! credentials cannot attach or delete volumes, the control plane's can.
//!
//! moto checks every request's signature and the caller's policies once more requests than
//! `INITIAL_NO_AUTH_ACTION_COUNT` were served (moto docs, "IAM-like Access Control"; 5.2.5
//! `core/authorization.py`). The count is a server-wide setting that
//! `POST /moto-api/reset-auth` (body: the new count) sets at run time and answers with the
//! previous one (`moto_api/_internal/responses.py`): this test sets up with it at infinity
//! (no checks), then sets 0. That is why it runs on a moto server of its own
//! (TAGSTACK_TEST_MOTO_IAM_URL, started by `scripts/test`): the other tests sign with the
//! unregistered key `testing`, which an enforcing server refuses.
//!
//! Role credentials come from STS AssumeRole: moto signs their requests as the assumed role
//! (`iam/access_control.py`, `AssumedRoleAccessKey`: an `ASIA` key with a session token) and
//! evaluates the role's inline policies. What moto does not model, and this test therefore
//! cannot show: it matches a statement's `Resource` against `*` for EC2 actions, so a
//! statement scoped to volume ARNs, or with a `Condition`, never grants there (the EBS CSI
//! policy's scoped statements); `plan::desired`'s unit test
//! `the_worker_role_may_not_touch_volumes_or_instances` covers every action of the worker's
//! documents whatever their scope. moto answers a refusal with `AccessDenied`; EC2's code is
//! `UnauthorizedOperation` (EC2 API reference, "Error codes"): both are accepted.

use aws_sdk_ec2::error::ProvideErrorMetadata;

use crate::support::{REGION, TestEnv, moto_iam_url};

/// Sets moto's `INITIAL_NO_AUTH_ACTION_COUNT` (`inf`: never check) through its reset-auth API.
fn set_auth_count(env: &TestEnv, count: &str) {
    let url = format!("{}/moto-api/reset-auth", env.moto);
    let status = std::process::Command::new("curl")
        // Not a form: Flask leaves a form's body out of `request.data`, which moto parses.
        .args(["-fsS", "-o", "/dev/null", "-H", "Content-Type: application/octet-stream", "--data-binary", count, &url])
        .status()
        .expect("running curl");
    assert!(status.success(), "POST {url} {count} failed");
}

/// Keeps moto's checks on for the test's body and off again after it, even on a panic.
struct Enforcing<'a>(&'a TestEnv);

impl Drop for Enforcing<'_> {
    fn drop(&mut self) {
        set_auth_count(self.0, "inf");
    }
}

/// An EC2 client signing with the credentials of an assumed role.
fn ec2_as(env: &TestEnv, creds: &aws_sdk_sts::types::Credentials) -> aws_sdk_ec2::Client {
    let c = aws_sdk_ec2::config::Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_string()),
        None,
        "assumed-role",
    );
    aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new(REGION))
            .endpoint_url(&env.moto)
            .credentials_provider(c)
            .build(),
    )
}

fn sts(env: &TestEnv) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
            .region(aws_sdk_sts::config::Region::new(REGION))
            .endpoint_url(&env.moto)
            .credentials_provider(aws_sdk_sts::config::Credentials::new("testing", "testing", None, None, "test"))
            .build(),
    )
}

fn denied(code: Option<&str>) -> bool {
    matches!(code, Some("AccessDenied" | "UnauthorizedOperation"))
}

#[test]
fn a_worker_role_cannot_attach_or_delete_volumes_and_the_control_planes_can() {
    let env = TestEnv::new_on("iamenf", &moto_iam_url());
    set_auth_count(&env, "inf");
    env.tagstack().args(&["up", "--only", "infra"]).run().success();

    let ec2 = env.ec2();
    let iam = env.iam();
    let (worker_instance, volume) = env.block(async {
        let reservations =
            ec2.describe_instances().set_filters(Some(env.owner_filters())).send().await.unwrap().reservations;
        let instances: Vec<_> =
            reservations.unwrap_or_default().into_iter().flat_map(|r| r.instances.unwrap_or_default()).collect();
        let worker = instances
            .iter()
            .find(|i| i.tags().iter().any(|t| t.key() == Some("tagstack:role") && t.value() == Some("worker")))
            .expect("a worker instance");
        let zone = worker.placement().and_then(|p| p.availability_zone()).unwrap().to_string();
        let volume = ec2.create_volume().availability_zone(zone).size(1).send().await.unwrap();
        (worker.instance_id().unwrap().to_string(), volume.volume_id().unwrap().to_string())
    });
    let creds = |role: &str| {
        let name = format!("tagstack-{}-{}-{role}", env.project, env.environment);
        env.block(async {
            let arn = iam.get_role().role_name(&name).send().await.unwrap().role.unwrap().arn;
            sts(&env).assume_role().role_arn(arn).role_session_name("node").send().await.unwrap().credentials.unwrap()
        })
    };
    let (worker, control_plane) = (ec2_as(&env, &creds("worker")), ec2_as(&env, &creds("control-plane")));

    set_auth_count(&env, "0");
    let _restore = Enforcing(&env);
    env.block(async {
        // The worker's own policy still works: its credentials are valid and signed right.
        worker.describe_instances().send().await.expect("a worker may describe instances");

        let attach =
            worker.attach_volume().volume_id(&volume).instance_id(&worker_instance).device("/dev/sdf").send().await;
        let err = attach.expect_err("a worker role attached a volume");
        assert!(denied(err.code()), "AttachVolume by the worker: {err:?}");
        let delete = worker.delete_volume().volume_id(&volume).send().await;
        let err = delete.expect_err("a worker role deleted a volume");
        assert!(denied(err.code()), "DeleteVolume by the worker: {err:?}");

        // The control plane's role (the CCM and the EBS CSI controller run there) may.
        control_plane
            .attach_volume()
            .volume_id(&volume)
            .instance_id(&worker_instance)
            .device("/dev/sdf")
            .send()
            .await
            .expect("the control plane's role attaches a volume");
    });
    drop(_restore);
    env.tagstack().args(&["down", "--yes"]).run().success();
    // The volume is the test's own (no tags): terminating the worker detached it.
    env.block(async { ec2.delete_volume().volume_id(&volume).send().await.unwrap() });
}
