//! The stack's TLS material: one CA per environment and each component's server certificate,
//! both made on the control plane by `templates/stack/tls.sh.j2` (the CA in the Secret
//! `kube-system/tagstack-ca`, a component's certificate, its key + certificate keystore and the
//! CA certificate in a Secret of its namespace). This module decides the names, lifetimes and
//! renewal window and renders the script; it never sees a key (pure).

use anyhow::Result;
use minijinja::context;

use super::render::{APPLY, template};
use crate::config::Spec;

const SCRIPT: (&str, &str) = ("tls.sh", include_str!("../../templates/stack/tls.sh.j2"));

/// The environment's CA: `certificate` and `key`, in kube-system (where only cluster admins
/// read Secrets; the stack's namespaces get its certificate only).
pub const CA_SECRET: &str = "tagstack-ca";
/// A CA lives ten years: replacing it means re-issuing every certificate and every client's
/// truststore.
const CA_DAYS: u32 = 3650;
/// A server certificate lives a year and `up` issues it again in its last 30 days (issue 14).
pub const CERT_DAYS: u32 = 365;
pub const RENEW_DAYS: u32 = 30;

/// One component's certificate request.
pub struct Request<'a> {
    /// Its namespace and Secret.
    pub namespace: &'a str,
    pub secret: &'a str,
    /// For the script's comments and output, e.g. "Cassandra's native transport".
    pub what: &'a str,
    pub common_name: &'a str,
    /// The names the certificate must hold; one missing makes `up` issue it again (a pod added).
    pub required: Vec<String>,
    /// More names it holds (a wildcard, Service names, localhost), not checked.
    pub extra: Vec<String>,
    /// The label selector of the StatefulSets to roll when a certificate they already run is
    /// replaced (expiring, or not from the CA), for a program that reads its certificate only at
    /// start (Kafka); None for one that reloads it (Cassandra's PEM factory). A certificate
    /// issued because it was missing or lacks a new pod's name restarts nothing: the running
    /// pods' certificate is still valid for them.
    pub restart: Option<String>,
}

/// The script that makes the CA when absent and issues `req`'s certificate when needed.
pub fn script(spec: &Spec, kubectl: &str, stack_dir: &str, req: &Request) -> Result<String> {
    let labels: Vec<String> = super::render::labels(spec).lines().map(str::to_string).collect();
    template(
        SCRIPT,
        context! {
            kubectl => kubectl,
            apply => APPLY,
            dir => format!("{stack_dir}/secrets"),
            cluster => spec.id.cluster_name(),
            labels => labels,
            ca_secret => CA_SECRET,
            ca_days => CA_DAYS,
            ns => req.namespace,
            secret => req.secret,
            what => req.what,
            cn => req.common_name,
            dns => req.required,
            extra_dns => req.extra,
            days => CERT_DAYS,
            renew_days => RENEW_DAYS,
            restart => req.restart,
        },
    )
}
