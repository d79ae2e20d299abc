//! Human text for command results, as strings (so they can be snapshot-tested).

use std::fmt::Write;

use crate::ops::cluster::{ClusterReport, NodeState};
use crate::ops::live::{AwsLive, Live};
use crate::ops::{DownReport, InfraReport, Node, ReapReport, Status};
use crate::plan::Change;

pub fn nodes_table(nodes: &[Node]) -> String {
    let mut out = String::new();
    if nodes.is_empty() {
        out.push_str("No nodes.\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<16} {:<14} {:<21} {:<10} {:<44} {:<15} PUBLIC IP",
        "NODE", "ROLE", "INSTANCE", "STATE", "PRIVATE DNS", "PRIVATE IP"
    );
    for n in nodes {
        let _ = writeln!(
            out,
            "{:<16} {:<14} {:<21} {:<10} {:<44} {:<15} {}",
            n.name,
            n.role.as_str(),
            n.instance_id,
            n.state,
            n.addresses.private_dns.as_deref().unwrap_or("-"),
            n.addresses.private_ip.as_deref().unwrap_or("-"),
            n.addresses.public_ip.as_deref().unwrap_or("-"),
        );
    }
    out
}

pub fn up(report: &InfraReport, title: &str) -> String {
    let mut out = String::new();
    if report.changed {
        let s = &report.summary;
        let _ = writeln!(
            out,
            "{title}: {} created, {} updated, {} deleted, {} unchanged",
            s.create, s.update, s.delete, s.keep
        );
    } else {
        let _ = writeln!(out, "{title}: nothing to do, the environment matches the config.");
    }
    if let Some(at) = &report.expires_at {
        let _ = writeln!(out, "Expires at {at} (tagstack:expires-at); `tagstack reap` deletes it after that.");
    }
    out.push_str(&nodes_table(&report.nodes));
    out
}

fn change_line(out: &mut String, c: &Change) {
    let _ = write!(out, "  {:<17} {:<44} {}", c.kind.as_str(), c.name, c.id.as_deref().unwrap_or("-"));
    if let Some(n) = &c.note {
        let _ = write!(out, "  # {n}");
    }
    out.push('\n');
    for f in &c.fixes {
        let _ = writeln!(out, "      drift: {f}");
    }
}

pub fn status(st: &Status, title: &str) -> String {
    let mut out = String::new();
    let verdict = if st.in_sync {
        "in sync with the config"
    } else {
        "differs from the config (run `tagstack plan` for details)"
    };
    let _ = writeln!(out, "{title}: {verdict}");
    if let (Some(at), Some(left)) = (&st.expires_at, &st.expires_in) {
        let _ = writeln!(out, "Expires at {at} ({left}).");
    }
    if !st.existing.is_empty() {
        out.push_str("Exists:\n");
        st.existing.iter().for_each(|c| change_line(&mut out, c));
    }
    if !st.missing.is_empty() {
        out.push_str("Missing (wanted by the config):\n");
        st.missing.iter().for_each(|c| change_line(&mut out, c));
    }
    if !st.extra.is_empty() {
        out.push_str("Extra (owned, no longer in the config):\n");
        st.extra.iter().for_each(|c| change_line(&mut out, c));
    }
    if let Some(b) = &st.backups {
        let _ = match (&b.newest, &b.error) {
            (_, Some(e)) => writeln!(out, "Backups: s3://{}: could not list the snapshots: {e}", b.bucket),
            (None, None) => writeln!(out, "Backups: s3://{}: no snapshot yet (`tagstack backup` takes one)", b.bucket),
            (Some(n), None) => writeln!(
                out,
                "Backups: s3://{}: newest {} ({} bytes, {} old)",
                b.bucket,
                n.key,
                n.size,
                b.newest_age.as_deref().unwrap_or("?")
            ),
        };
    }
    for i in st.images.iter().flat_map(|v| v.iter()) {
        let _ = writeln!(
            out,
            "Baked image {} ({}, {}, baked by {}){}: nodes on it: {}",
            i.image_id,
            i.name,
            i.state,
            i.environment,
            if i.used_by_config { ", new nodes launch from it" } else { "" },
            if i.nodes.is_empty() { "-".to_string() } else { i.nodes.join(", ") }
        );
    }
    out.push_str(&nodes_table(&st.nodes));
    out
}

pub fn down(report: &DownReport, title: &str) -> String {
    let mut out = String::new();
    if report.deleted.is_empty() {
        let _ = writeln!(out, "{title}: nothing to delete.");
    } else {
        let _ = writeln!(out, "{title}: {} resource(s) processed, {} failed", report.deleted.len(), report.failed);
        for d in &report.deleted {
            let c = &d.change;
            let _ = writeln!(out, "  {:<17} {:<44} {}", c.kind.as_str(), c.id.as_deref().unwrap_or(&c.name), d.outcome);
        }
    }
    if let Some(bucket) = &report.kept_backups {
        let _ = writeln!(
            out,
            "  kept: backup bucket {bucket} and its etcd snapshots (`tagstack down --delete-backups` deletes them)"
        );
    }
    out
}

pub fn reap(report: &ReapReport, region: &str) -> String {
    let mut out = String::new();
    let verb = if report.dry_run { "would reap" } else { "reaped" };
    let done = report.reaped.iter().filter(|r| r.outcome != "failed").count();
    let _ =
        writeln!(out, "reap in {region}: {done} {verb}, {} failed, {} not expired", report.failed, report.kept.len());
    for r in &report.reaped {
        let _ = write!(
            out,
            "  {:<11} {}/{}  expired {}  {} resource(s)",
            r.outcome, r.project, r.environment, r.expires_at, r.resources
        );
        if let Some(e) = &r.error {
            let _ = write!(out, "  {e}");
        }
        out.push('\n');
    }
    for k in &report.kept {
        let _ = writeln!(
            out,
            "  {:<11} {}/{}  expires {}  ({})",
            "kept", k.project, k.environment, k.expires_at, k.expires_in
        );
    }
    out
}

/// One row per node: name, role, Kubernetes name, Ready, and why not (when known).
fn readiness_table(out: &mut String, rows: &[(&NodeState, &str)]) {
    let _ = writeln!(out, "{:<20} {:<14} {:<44} {:<6} WHY NOT", "NODE", "ROLE", "KUBERNETES NAME", "READY");
    for (s, why) in rows {
        let (ready, why) = if s.ready { ("yes", "") } else { ("no", *why) };
        let _ = writeln!(out, "{:<20} {:<14} {:<44} {ready:<6} {why}", s.name, s.role.as_str(), s.node_name);
    }
}

pub fn node_states(states: &[(NodeState, String)], title: &str) -> String {
    let mut out = String::new();
    let ready = states.iter().filter(|(s, _)| s.ready).count();
    let _ = writeln!(out, "{title}: {ready}/{} node(s) Ready", states.len());
    readiness_table(&mut out, &states.iter().map(|(s, why)| (s, why.as_str())).collect::<Vec<_>>());
    out
}

/// A plan (of `plan`, or of the deletions `down` asks to confirm) as text.
pub fn plan(plan: &crate::plan::Plan, title: &str) -> String {
    crate::plan::describe(plan, title)
}

/// `plan`'s Kubernetes line, after the infra plan.
pub fn kubernetes_plan(k: &crate::ops::upgrade::KubernetesPlan) -> String {
    use crate::ops::upgrade::KubernetesPlan;
    match k {
        KubernetesPlan::Read { running, wanted, nodes, .. } if nodes.is_empty() => {
            format!("Kubernetes: {running} runs, kubernetes_version = {wanted}: no upgrade.\n")
        }
        KubernetesPlan::Read { running, wanted, nodes, .. } => format!(
            "Kubernetes: upgrade {running} -> {wanted}, one node at a time, control plane first: {}\n",
            nodes.join(", ")
        ),
        KubernetesPlan::Error { error } => format!("Kubernetes: not reachable: {error}\n"),
    }
}

/// The live cluster of `status`: node readiness and, with a stack, its workloads.
pub fn live(live: &Live, title: &str) -> String {
    let mut out = node_states(&live.nodes, title);
    match &live.stack {
        None => {}
        Some(Ok(report)) => out.push_str(&stack(report, title)),
        Some(Err(e)) => out.push_str(&format!("Stack: not readable: {e}\n")),
    }
    match &live.monitoring {
        None => {}
        Some(Ok(report)) => out.push_str(&monitoring(report, title)),
        Some(Err(e)) => out.push_str(&format!("Monitoring: not readable: {e}\n")),
    }
    out
}

/// The monitoring add-on: its workloads, then (for `status`) how many alerts fire and which.
pub fn monitoring(report: &crate::ops::monitoring::MonitoringReport, title: &str) -> String {
    let mut out = format!("Monitoring of {title}:\n");
    workload_rows(&mut out, &report.workloads);
    match (&report.firing, &report.alerts_error) {
        (Some(names), _) if names.is_empty() => out.push_str("  Alerts: none firing\n"),
        (Some(names), _) => {
            let _ = writeln!(out, "  Alerts: {} firing: {}", names.len(), names.join(", "));
        }
        (None, Some(e)) => {
            let _ = writeln!(out, "  Alerts: not readable: {e}");
        }
        (None, None) => {}
    }
    out.push_str("  Grafana: `tagstack monitoring open` (password: `tagstack monitoring password`)\n");
    out
}

/// The live part of `status` on AWS, after the resources.
pub fn aws_live(live: &AwsLive) -> String {
    match live {
        AwsLive::NotBootstrapped => {
            "Kubernetes: the cluster stage has not run on these nodes (`tagstack up` runs it).\n".to_string()
        }
        AwsLive::Reachable(l) => self::live(l, "Kubernetes"),
        AwsLive::Unreachable(e) => format!("Kubernetes: not reachable: {e}\n"),
    }
}

pub fn cluster(report: &ClusterReport, title: &str) -> String {
    let mut out = String::new();
    let ready = report.nodes.iter().filter(|n| n.ready).count();
    let _ = writeln!(
        out,
        "{title}: Kubernetes {} with {ready}/{} node(s) Ready",
        report.kubernetes_version,
        report.nodes.len()
    );
    readiness_table(&mut out, &report.nodes.iter().map(|n| (n, "")).collect::<Vec<_>>());
    let _ = writeln!(
        out,
        "kubeconfig: {} (export KUBECONFIG=$PWD/{})",
        report.kubeconfig.display(),
        report.kubeconfig.display()
    );
    out
}

/// The workers a scale-down removed.
pub fn retired(report: &crate::ops::retire::RetireReport, title: &str) -> String {
    let mut out = format!("Scale-down of {title}:\n");
    for n in &report.nodes {
        let how = if n.drained { "drained, deleted from the cluster, terminated" } else { "never joined; terminated" };
        let _ = writeln!(out, "  {:<12} {:<20} {how}", n.node.name, n.node.instance_id);
    }
    out
}

/// One row per workload: component, namespace/name, desired, ready, state.
fn workload_rows(out: &mut String, workloads: &[crate::stack::readiness::WorkloadStatus]) {
    let _ = writeln!(out, "  {:<10} {:<28} {:<8} {:<6} STATE", "COMPONENT", "WORKLOAD", "DESIRED", "READY");
    for w in workloads {
        let state = if w.done {
            "ready"
        } else if w.missing {
            "missing"
        } else {
            "not ready"
        };
        let _ = writeln!(
            out,
            "  {:<10} {:<28} {:<8} {:<6} {state}",
            w.component.as_str(),
            format!("{}/{}", w.namespace, w.name),
            w.desired,
            w.ready
        );
    }
}

pub fn stack(report: &crate::ops::stack::StackReport, title: &str) -> String {
    let mut out = format!("Stack of {title}:\n");
    if report.workloads.is_empty() && report.endpoints.is_empty() {
        out.push_str("  no components enabled ([stack] in the config)\n");
        return out;
    }
    if !report.workloads.is_empty() {
        workload_rows(&mut out, &report.workloads);
    }
    if !report.endpoints.is_empty() {
        out.push_str("  Endpoints (inside the cluster):\n");
        for e in &report.endpoints {
            let _ = writeln!(out, "    {:<10} {:<20} {}", e.component.as_str(), e.what, e.address);
        }
    }
    out
}

pub fn smoke(results: &[crate::ops::stack::SmokeResult], title: &str) -> String {
    let mut out = format!("Smoke checks of {title}:\n");
    if results.is_empty() {
        out.push_str("  no components enabled ([stack] in the config)\n");
    }
    for r in results {
        let _ = writeln!(
            out,
            "  {} {:<10} {:<32} {:>7} ms  {}",
            if r.ok { "ok  " } else { "FAIL" },
            r.component.as_str(),
            r.check,
            r.millis,
            r.detail
        );
    }
    out
}

pub fn cleanup(c: &crate::ops::stack::ClusterCleanup) -> String {
    let mut out = String::from("Removed from the cluster:\n");
    let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    let _ = writeln!(out, "  LoadBalancer services deleted: {}", list(&c.load_balancers));
    let _ = writeln!(out, "  namespaces deleted (with their volumes): {}", list(&c.namespaces));
    if !c.volumes_left.is_empty() {
        let _ = writeln!(out, "  volumes still being released: {}", c.volumes_left.join(", "));
    }
    for e in &c.errors {
        let _ = writeln!(out, "  failed: {e}");
    }
    out
}

/// `tagstack bake`: the image, whether it was made or reused, and what it holds.
pub fn bake(r: &crate::ops::bake::BakeReport) -> String {
    let mut out = String::new();
    if r.reused {
        let _ = writeln!(out, "Reusing {} ({}): an image of the same content exists.", r.image_id, r.name);
    } else {
        let _ = writeln!(out, "Baked {} ({}).", r.image_id, r.name);
    }
    let _ = writeln!(out, "  content hash {}", r.hash);
    let _ = writeln!(out, "  base image {}", r.base_ami);
    let _ = writeln!(out, "  {} image(s) pulled besides kubeadm's: {}", r.images.len(), r.images.join(", "));
    out.push_str("`tagstack up` launches new nodes from it; `tagstack bake --prune` removes images no longer used.\n");
    out
}

/// `tagstack bake --prune`.
pub fn bake_prune(r: &crate::ops::bake::PruneReport) -> String {
    let mut out = String::new();
    if r.deregistered.is_empty() {
        out.push_str("Nothing to prune.\n");
    }
    for (id, snapshots) in &r.deregistered {
        let _ = writeln!(
            out,
            "Deregistered {id}; deleted snapshots: {}",
            if snapshots.is_empty() { "-".to_string() } else { snapshots.join(", ") }
        );
    }
    if !r.kept.is_empty() {
        let _ = writeln!(out, "Kept (the config uses it): {}", r.kept.join(", "));
    }
    out
}

/// `plan`'s line about the image new nodes launch from.
pub fn image_choice(c: &crate::ops::bake::ImageChoice) -> String {
    format!("Image for new nodes: {} ({})\n", c.image_id, c.why)
}

/// `down --delete-images`.
pub fn deleted_images(images: &[(String, Vec<String>)]) -> String {
    if images.is_empty() {
        return "No baked image of this environment to delete.\n".to_string();
    }
    images
        .iter()
        .map(|(id, snaps)| {
            format!(
                "Deregistered {id}; deleted snapshots: {}\n",
                if snaps.is_empty() { "-".to_string() } else { snaps.join(", ") }
            )
        })
        .collect()
}
