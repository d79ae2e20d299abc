//! Kafka's users on a running cluster: `tagstack kafka user add NAME [--topics ...]` runs
//! `stack::kafka`'s users script on the control plane (the password is made there, into the
//! Secret `<ns>/kafka-user-NAME`), and `tagstack kafka client-config NAME` reads that Secret and
//! the CA certificate through `Fleet::exec` (which logs nothing) and returns the
//! client.properties for the caller to print on stdout, and nowhere else. [`make_user`] is the
//! one way a Kafka user is made (`user add`; `up` for the monitoring add-on's kafka_exporter,
//! through `ops::monitoring`). It decides nothing about
//! Kafka's security (that is `stack::kafka`) and prints nothing.

use anyhow::{Result, anyhow};

use super::env::Env;
use super::nodes::{nodes, on_control_plane};
use super::stack::{KUBECTL, stack_dir};
use crate::cluster::ClusterNode;
use crate::config::Spec;
use crate::hint;
use crate::remote::Fleet;
use crate::reporter::Reporter;
use crate::stack::kafka::{self, TLS_SECRET, User};

/// `[stack.kafka]` is off: no users to make or show.
#[derive(Debug, thiserror::Error)]
#[error("Kafka is not enabled in {0}")]
pub struct NotEnabled(pub String);

fn kafka_spec<'a>(env: &Env<'a>) -> Result<&'a crate::config::KafkaSpec> {
    env.spec.stack.kafka.as_ref().ok_or_else(|| NotEnabled(env.spec.file.display().to_string()).into())
}

/// Makes `user` (its Secret when absent, its SCRAM credential, its ACLs); idempotent.
pub async fn user_add(env: &Env<'_>, user: &User) -> Result<()> {
    kafka_spec(env)?;
    let nodes = nodes(env).await?;
    on_control_plane(env.spec, &nodes, async |fleet, cp| {
        make_user(env.spec, fleet, cp, env.reporter, user, &stack_dir())
            .await
            .map_err(|e| hint::attach(e, "Kafka must be running: `tagstack up` first, `tagstack status` shows it"))
    })
    .await
}

/// Uploads `stack::kafka`'s users script for `user` to `dir` on the control plane and runs it:
/// the one way tagstack makes a Kafka user (`user add`, and `up` for the monitoring add-on's
/// exporter). Kafka must be ready. The script's output names the Secret, never its password.
pub async fn make_user(
    spec: &Spec,
    fleet: &Fleet,
    cp: &ClusterNode,
    r: &dyn Reporter,
    user: &User,
    dir: &str,
) -> Result<()> {
    let script = kafka::user_script(spec, KUBECTL, dir, user)?;
    let label = format!("Kafka user {}", user.name);
    let (ready, failed) = (format!("{label}: ready"), format!("{label}: failed"));
    crate::ops::stack::upload_and_run(fleet, cp, dir, &script, r, "kafka/user", (&label, &ready, &failed)).await
}

/// The client.properties of user `name` (the admin, or one `user add` made). Holds the password:
/// the caller prints it to stdout only.
pub async fn client_config(env: &Env<'_>, name: &str) -> Result<String> {
    let k = kafka_spec(env)?;
    let secret = kafka::user_secret(name);
    let ns = k.namespace.clone();
    let nodes = nodes(env).await?;
    let (user_json, tls_json) = on_control_plane(env.spec, &nodes, async |fleet, cp| {
        let read = async |name: &str| -> Result<String> {
            let out = fleet.exec(&cp.name, "kafka", &format!("{KUBECTL} get secret {name} -n {ns} -o json")).await?;
            if out.code != Some(0) {
                let err = anyhow!("reading the Secret {ns}/{name} failed: {}", out.stderr.trim());
                let advice = match name.strip_prefix("kafka-user-") {
                    Some(user) => format!("`tagstack kafka user add {user}` makes it"),
                    None => "`tagstack up` makes it".to_string(),
                };
                return Err(hint::attach(err, advice));
            }
            Ok(out.stdout)
        };
        Ok((read(&secret).await?, read(TLS_SECRET).await?))
    })
    .await?;
    let password = kafka::secret_value(&user_json, &ns, &secret, "password")?;
    let ca = kafka::secret_value(&tls_json, &ns, TLS_SECRET, "ca")?;
    Ok(kafka::client_properties(k, name, &password, &ca))
}
