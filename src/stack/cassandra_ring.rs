//! How a Cassandra ring starts (issue 15 item 7): whether `up` is creating a brand-new ring
//! (no StatefulSet and no data claim in its namespace), which may start every node at once,
//! or working on a ring that may hold data, which keeps Cassandra's one-bootstrap-at-a-time
//! rule; the StatefulSet's pod management policy that follows (immutable once created); the
//! steps of a scale-up of a ring whose StatefulSet is `Parallel`; and a new ring's tokens.
//! Pure: it reads `kubectl get -o json` text and answers; `ops::stack` runs what it decides.
//! It must never let a node that joins a ring holding data skip bootstrap (docs/cassandra-start.md).
//!
//! Sources, Cassandra 5.0 (the image `cassandra:5.0`, 5.0.8 at the time of writing):
//! - `StorageService.joinTokenRing`: "If we are a seed, or if the user manually sets
//!   auto_bootstrap to false, we'll skip streaming data from other nodes and jump directly into
//!   the ring"; `shouldBootstrap()` = auto_bootstrap && !bootstrapComplete && !isSeed. Only the
//!   bootstrap path (`prepareForBootstrap`) refuses "Other bootstrapping/leaving/moving nodes
//!   detected, cannot bootstrap while cassandra.consistent.rangemovement is true", and only after
//!   it has waited for ring information; two nodes that start together both pass that check
//!   before either announces itself, which is why a ring that holds data grows one node at a time.
//! - `BootStrapper.getBootstrapTokens`: "if initialtoken was specified, use that (split on comma).
//!   otherwise ... the token allocation algorithm" (allocate_tokens_for_local_replication_factor:
//!   3 in 5.0's conf/cassandra.yaml), which allocates against the ring the node has seen: nodes
//!   allocating at the same time from the same view can pick the same tokens. Given tokens cannot.
//! - A node's tokens are saved in system.local on its first start and used on every later one
//!   (`joinTokenRing`: "Using saved tokens"; cassandra.yaml docs: initial_token applies on the
//!   node's initial start only), so the settings below matter only on a node's first start.
//! - conf/cassandra.yaml: `num_tokens: 16`; `initial_token` must list exactly num_tokens tokens
//!   (`DatabaseDescriptor`), Murmur3Partitioner's range is [-2^63, 2^63-1].
//! - `-Dcassandra.skip_wait_for_gossip_to_settle=0`: 0 = "do not wait at all" for gossip to
//!   settle before the native transport opens (`Gossiper.waitToSettle`: otherwise at least 5 s,
//!   then 1 s polls until 3 in a row see no change); testcontainers' CassandraContainer starts
//!   the same image with it (and `initial_token`) for a fast start.
//! - Kubernetes apps/v1 StatefulSetSpec: podManagementPolicy `Parallel` "will create pods in
//!   parallel to match the desired scale without waiting"; the API server refuses to update any
//!   StatefulSet spec field but replicas, ordinals, template, updateStrategy,
//!   persistentVolumeClaimRetentionPolicy and minReadySeconds (apps validation), so the policy a
//!   StatefulSet was created with is the one it keeps. Rolling updates go one pod at a time under
//!   either policy.

use anyhow::{Context, Result};
use serde_json::Value;

/// The ConfigMap (in Cassandra's namespace) that lists a new ring's tokens, `tokens-<ordinal>`.
/// It exists only while `up` creates the ring: the pod template mounts it as optional, so the
/// StatefulSet's template is the same for a new and an existing ring (no restart when it goes).
pub const CONFIGMAP: &str = "cassandra-ring";
/// Where the pods mount [`CONFIGMAP`].
pub const DIR: &str = "/etc/tagstack/ring";
/// conf/cassandra.yaml's `num_tokens` in Cassandra 5.0 (the image leaves it as is);
/// `initial_token` must list exactly that many.
pub const NUM_TOKENS: u32 = 16;

/// `.spec.podManagementPolicy` of a StatefulSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Policy {
    OrderedReady,
    Parallel,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::OrderedReady => "OrderedReady",
            Policy::Parallel => "Parallel",
        }
    }
}

/// What the cluster holds of Cassandra before `up` applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The StatefulSet `cassandra`: its policy and replicas.
    pub statefulset: Option<(Policy, u32)>,
    /// Claims of its `data` volumeClaimTemplate (`data-cassandra-<n>`) in the namespace: a
    /// deleted StatefulSet leaves them, and a pod started on one has data.
    pub claims: Vec<String>,
}

/// How `up` starts the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Start {
    /// No StatefulSet and no claim: nothing to bootstrap from. Every node starts at once with
    /// the tokens of [`tokens`] and auto_bootstrap false.
    New,
    /// A ring that may hold data: nodes bootstrap, one at a time.
    Existing,
}

/// What `up` does with the Cassandra StatefulSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub start: Start,
    /// The policy the StatefulSet is rendered with: a new ring's `Parallel`, else the live one
    /// (it cannot change), `OrderedReady` for a StatefulSet recreated over existing claims.
    pub policy: Policy,
    /// Replica counts to apply and wait for, in order, before the configured one: a scale-up of
    /// a `Parallel` StatefulSet by more than one node grows one node at a time, as `OrderedReady`
    /// would, so that no two nodes ever bootstrap together.
    pub steps: Vec<u32>,
}

/// The manifest `tagstack render` shows and a ring with data gets: what every StatefulSet
/// created before this rule runs with.
pub const STEADY: Plan = Plan { start: Start::Existing, policy: Policy::OrderedReady, steps: Vec::new() };

/// The rule: new only when nothing of a ring exists; otherwise the live policy, and one
/// bootstrap at a time.
pub fn decide(observed: &Observed, desired: u32) -> Plan {
    match observed.statefulset {
        None if observed.claims.is_empty() => Plan { start: Start::New, policy: Policy::Parallel, steps: Vec::new() },
        None => STEADY,
        Some((policy, live)) => {
            let steps = if policy == Policy::Parallel && desired > live.saturating_add(1) {
                (live + 1..desired).collect()
            } else {
                Vec::new()
            };
            Plan { start: Start::Existing, policy, steps }
        }
    }
}

/// Reads [`Observed`] from `kubectl get statefulsets -o json` and `kubectl get pvc -o json` of
/// Cassandra's namespace.
pub fn observe(statefulsets: &str, claims: &str) -> Result<Observed> {
    let sets = list(statefulsets, "statefulsets")?;
    let statefulset = sets.iter().find(|o| name(o) == Some("cassandra")).map(|o| {
        let policy = match o.pointer("/spec/podManagementPolicy").and_then(Value::as_str) {
            Some("Parallel") => Policy::Parallel,
            // The API server's default.
            _ => Policy::OrderedReady,
        };
        let replicas = o.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1);
        (policy, u32::try_from(replicas).unwrap_or(u32::MAX))
    });
    let claims = list(claims, "persistentvolumeclaims")?
        .iter()
        .filter_map(name)
        .filter(|n| n.strip_prefix("data-cassandra-").is_some_and(|o| o.parse::<u32>().is_ok()))
        .map(str::to_string)
        .collect();
    Ok(Observed { statefulset, claims })
}

fn list(json: &str, what: &str) -> Result<Vec<Value>> {
    let doc: Value = serde_json::from_str(json).with_context(|| format!("parsing `kubectl get {what} -o json`"))?;
    Ok(doc.get("items").and_then(Value::as_array).cloned().unwrap_or_default())
}

fn name(o: &Value) -> Option<&str> {
    o.pointer("/metadata/name").and_then(Value::as_str)
}

/// The tokens of pod `ordinal` in a new ring of `replicas` nodes with [`NUM_TOKENS`] each:
/// the Murmur3 range cut into replicas x NUM_TOKENS equal parts, dealt round-robin, so every
/// node owns the same share at any replication factor and no two nodes share a token.
pub fn tokens(replicas: u32, ordinal: u32) -> Vec<i64> {
    let parts = i128::from(replicas.max(1)) * i128::from(NUM_TOKENS);
    (0..NUM_TOKENS)
        .map(|k| {
            let slot = i128::from(k) * i128::from(replicas.max(1)) + i128::from(ordinal);
            let t = i128::from(i64::MIN) + slot * (1i128 << 64) / parts;
            i64::try_from(t).unwrap_or(i64::MAX)
        })
        .collect()
}

/// The [`CONFIGMAP`] entries of a new ring: `tokens-<ordinal>` -> comma-separated tokens
/// (cassandra.yaml's `initial_token` syntax).
pub fn token_entries(replicas: u32) -> Vec<(String, String)> {
    (0..replicas)
        .map(|o| {
            let list = tokens(replicas, o).iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            (format!("tokens-{o}"), list)
        })
        .collect()
}

/// The container's lines, before the image's entrypoint: a pod of a new ring that has never
/// started (no data directory: `$CASSANDRA_HOME/data` is /var/lib/cassandra in the image, and
/// data_file_directories defaults to `$CASSANDRA_HOME/data/data`) takes its tokens from the
/// ConfigMap and joins without bootstrap or gossip settling. Any other start is Cassandra's
/// default (auto_bootstrap true, token allocation, the gossip wait). Only `initial_token`
/// (commented out in conf/cassandra.yaml) and `auto_bootstrap` (absent there) are appended, so
/// no key appears twice.
pub const START: &str = r#"ordinal="${HOSTNAME##*-}"
if [ -s "__DIR__/tokens-$ordinal" ] && [ ! -e /var/lib/cassandra/data ]; then
  echo "tagstack: a new ring: $HOSTNAME starts with its own tokens, without bootstrap"
  printf 'auto_bootstrap: false\ninitial_token: %s\n' "$(cat "__DIR__/tokens-$ordinal")" >> "$CASSANDRA_CONF/cassandra.yaml"
  export JVM_EXTRA_OPTS="$JVM_EXTRA_OPTS -Dcassandra.skip_wait_for_gossip_to_settle=0"
fi"#;

/// [`START`] with [`DIR`].
pub fn start_script() -> String {
    START.replace("__DIR__", DIR)
}

/// Deletes [`CONFIGMAP`]: once a new ring is ready (its nodes saved their tokens), and before
/// `up` works on an existing ring (a creation that stopped half-way), so that a node that starts
/// later with an empty volume (a scale-up, a replaced volume) always bootstraps.
pub fn forget(kubectl: &str, namespace: &str) -> String {
    format!("{kubectl} delete configmap {CONFIGMAP} -n {namespace} --ignore-not-found")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(policy: Option<&str>, replicas: u32) -> String {
        let policy = policy.map(|p| format!(r#","podManagementPolicy":"{p}""#)).unwrap_or_default();
        format!(r#"{{"items":[{{"metadata":{{"name":"cassandra"}},"spec":{{"replicas":{replicas}{policy}}}}}]}}"#)
    }
    const NONE: &str = r#"{"items":[]}"#;

    /// why, StatefulSets JSON, claims JSON, desired replicas, expected start, policy and steps.
    type Case<'a> = (&'a str, String, &'a str, u32, Start, Policy, &'a [u32]);

    #[test]
    fn the_rule() {
        let claims = r#"{"items":[{"metadata":{"name":"data-cassandra-0"}}]}"#;
        let other_claim = r#"{"items":[{"metadata":{"name":"data-kafka-0"}}]}"#;
        let cases: &[Case] = &[
            ("nothing there: a new ring", NONE.into(), NONE, 3, Start::New, Policy::Parallel, &[]),
            ("another claim is not Cassandra's data", NONE.into(), other_claim, 3, Start::New, Policy::Parallel, &[]),
            (
                "claims left by a deleted StatefulSet hold data",
                NONE.into(),
                claims,
                3,
                Start::Existing,
                Policy::OrderedReady,
                &[],
            ),
            (
                "an older StatefulSet keeps OrderedReady",
                sets(None, 3),
                claims,
                6,
                Start::Existing,
                Policy::OrderedReady,
                &[],
            ),
            (
                "explicit OrderedReady",
                sets(Some("OrderedReady"), 3),
                claims,
                5,
                Start::Existing,
                Policy::OrderedReady,
                &[],
            ),
            (
                "a new ring's StatefulSet keeps Parallel",
                sets(Some("Parallel"), 3),
                claims,
                3,
                Start::Existing,
                Policy::Parallel,
                &[],
            ),
            (
                "one more node needs no step",
                sets(Some("Parallel"), 3),
                claims,
                4,
                Start::Existing,
                Policy::Parallel,
                &[],
            ),
            (
                "grows one node at a time",
                sets(Some("Parallel"), 3),
                claims,
                6,
                Start::Existing,
                Policy::Parallel,
                &[4, 5],
            ),
            ("a shrink has no steps", sets(Some("Parallel"), 5), claims, 3, Start::Existing, Policy::Parallel, &[]),
            (
                "a StatefulSet without claims yet is not new",
                sets(Some("Parallel"), 3),
                NONE,
                3,
                Start::Existing,
                Policy::Parallel,
                &[],
            ),
        ];
        for (why, s, c, desired, start, policy, steps) in cases {
            let plan = decide(&observe(s, c).unwrap(), *desired);
            assert_eq!((plan.start, plan.policy, plan.steps.as_slice()), (*start, *policy, *steps), "{why}");
        }
    }

    #[test]
    fn tokens_are_distinct_balanced_and_in_range() {
        for replicas in [1u32, 2, 3, 5, 8] {
            let mut all: Vec<i64> = (0..replicas).flat_map(|o| tokens(replicas, o)).collect();
            assert!((0..replicas).all(|o| tokens(replicas, o).len() == NUM_TOKENS as usize));
            all.sort_unstable();
            let before = all.len();
            all.dedup();
            assert_eq!(all.len(), before, "{replicas} nodes: no token twice");
            assert_eq!(all[0], i64::MIN);
            // Equal gaps (to one unit of rounding) between consecutive tokens.
            let gaps: Vec<i128> = all.windows(2).map(|w| i128::from(w[1]) - i128::from(w[0])).collect();
            let (lo, hi) = (gaps.iter().min().unwrap(), gaps.iter().max().unwrap());
            assert!(hi - lo <= 1, "{replicas} nodes: gaps {lo}..{hi}");
        }
        // Round-robin: ordinal 1 of 3 holds the second slot of each of the 16 rounds.
        assert_eq!(tokens(3, 1)[0], i64::MIN + ((1i128 << 64) / 48) as i64);
    }

    #[test]
    fn entries_use_initial_token_syntax() {
        let e = token_entries(2);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].0, "tokens-0");
        assert_eq!(e[0].1.split(',').count(), NUM_TOKENS as usize);
        assert!(e[0].1.starts_with("-9223372036854775808,"));
    }
}
