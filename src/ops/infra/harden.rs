//! The IMDS hardening of an environment launched before hop limit 1 (`plan::Hardening`):
//! lowers each listed instance's hop limit, then deletes the worker role's legacy policy.
//! `ops::up` calls it only once its cluster stage has re-applied the add-ons and seen them
//! roll out (the EBS CSI controller then runs on the control plane with host networking, the
//! node plugin reads the Kubernetes API), so nothing that still needs the node's role loses
//! it. It must not decide what to change: `plan::diff` did.

use anyhow::Result;

use crate::aws::{self, Ctx};
use crate::config::Spec;
use crate::plan::Hardening;
use crate::reporter::Reporter;

/// Every hop limit concurrently, then the policies (the order only matters for a failure half
/// way: an instance still at hop limit 2 with the policy gone is the state this avoids).
pub async fn run(aws: &aws::Aws, spec: &Spec, hardening: &Hardening, reporter: &dyn Reporter) -> Result<()> {
    if hardening.is_empty() {
        return Ok(());
    }
    let cx = Ctx::new(aws, &spec.id, spec.timeouts, reporter);
    let key = "imds";
    reporter.start(key, &format!("lowering the IMDS hop limit of {} instance(s) to 1", hardening.hop_limit.len()));
    let lowered = aws::all(hardening.hop_limit.iter().map(|id| aws::lower_hop_limit(&cx, key, id))).await;
    if let Err(e) = lowered {
        reporter.fail(key, "lowering the IMDS hop limit: failed");
        return Err(e);
    }
    reporter.finish(key, &format!("IMDS hop limit 1 on {}", hardening.hop_limit.join(", ")));
    for (role, policy) in &hardening.policies {
        aws::delete_policy(&cx, role, policy).await?;
        reporter.note(&format!(
            "deleted policy {policy} of role {role}: only the control plane's EBS CSI controller manages volumes now"
        ));
    }
    Ok(())
}
