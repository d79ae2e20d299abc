//! Human text for a plan: one line per resource, its fixes indented below. Returns strings;
//! printing is the UI's job.

use std::fmt::Write;

use super::model::{Action, Plan};

fn sigil(a: Action) -> char {
    match a {
        Action::Create => '+',
        Action::Update => '~',
        Action::Delete => '-',
        Action::Keep => '=',
    }
}

/// `title` names the environment, e.g. "demo/dev in eu-west-3".
pub fn describe(plan: &Plan, title: &str) -> String {
    let s = plan.summary();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Plan for {title}: {} to create, {} to update, {} to delete, {} unchanged",
        s.create, s.update, s.delete, s.keep
    );
    for c in &plan.changes {
        // Only a creation is "new": an update with no kept id (a group scaled to 0) is "-".
        let id = c.id.as_deref().unwrap_or(if c.action == Action::Create { "(new)" } else { "-" });
        let _ = write!(out, "  {} {:<17} {:<44} {id}", sigil(c.action), c.kind.as_str(), c.name);
        if let Some(note) = &c.note {
            let _ = write!(out, "  # {note}");
        }
        out.push('\n');
        for f in &c.fixes {
            let _ = writeln!(out, "      {} {f}", if c.action == Action::Create { '+' } else { '~' });
        }
    }
    if let Some(e) = &plan.expiry {
        let _ = writeln!(
            out,
            "  ~ expiry            {} -> {} (tagstack:expires-at on every resource)",
            e.from.as_deref().unwrap_or("none"),
            e.to
        );
    }
    if let Some(h) = &plan.hardening {
        for id in &h.hop_limit {
            let _ = writeln!(
                out,
                "  ~ imds hop limit    {id} -> 1 (after the cluster stage: pods no longer reach the node's role)"
            );
        }
        for (role, policy) in &h.policies {
            let _ = writeln!(
                out,
                "  - role policy       {role}/{policy} (after the cluster stage: the EBS CSI controller runs on the control plane)"
            );
        }
    }
    if plan.is_converged() && plan.hardening.is_none() {
        out.push_str("Nothing to do: the environment matches the config.\n");
    }
    out
}
