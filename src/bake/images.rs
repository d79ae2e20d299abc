//! Which container images a set of rendered manifests names: every `image:` field (Pods,
//! Deployments, StatefulSets, Jobs: containers and init containers alike) and every
//! kustomization `images:` override, each normalised to the reference the kubelet asks
//! containerd for. Pure: text in, a sorted list out. It is how `tagstack bake` knows what to
//! pull (issue 15): from the manifests tagstack renders, never from a second hand-kept list.
//!
//! It reads block-style YAML line by line (what tagstack's templates and `kubectl kustomize`
//! write); flow-style mappings (`{image: x}`) are not read. It must not decide what a node
//! runs: callers hand it the manifests.

use std::collections::BTreeSet;

/// Every image the manifests name, normalised ([`normalise`]), sorted, each once.
pub fn image_refs<'a>(manifests: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out = BTreeSet::new();
    for text in manifests {
        scan(text, &mut out);
    }
    out.into_iter().collect()
}

/// A kustomization `images:` entry (kustomize api/types/image.go: name, newName, newTag,
/// digest): the image `name` becomes `newName` (else itself) at `digest` (else `newTag`).
#[derive(Default)]
struct Override {
    name: String,
    new_name: String,
    new_tag: String,
    digest: String,
}

impl Override {
    /// The reference it makes, when it names a tag or a digest (an entry that only renames
    /// keeps the base's tag, which this file does not hold).
    fn reference(&self) -> Option<String> {
        let name = if self.new_name.is_empty() { &self.name } else { &self.new_name };
        if name.is_empty() {
            return None;
        }
        if !self.digest.is_empty() {
            return Some(format!("{name}@{}", self.digest));
        }
        (!self.new_tag.is_empty()).then(|| format!("{name}:{}", self.new_tag))
    }
}

fn scan(text: &str, out: &mut BTreeSet<String>) {
    // The indent of a kustomization's `images:` key while inside its list.
    let mut images_at: Option<usize> = None;
    let mut entry: Option<Override> = None;
    let flush = |entry: Option<Override>, out: &mut BTreeSet<String>| {
        if let Some(r) = entry.as_ref().and_then(Override::reference) {
            out.insert(normalise(&r));
        }
    };
    for raw in text.lines() {
        let line = strip_comment(raw);
        let body = line.trim_start();
        if body.is_empty() || body == "---" {
            continue;
        }
        let indent = line.len() - body.len();
        if let Some(at) = images_at {
            // YAML lets a block sequence sit at its key's indent ("- " there), or deeper.
            let inside = indent > at || (indent == at && body.starts_with("- "));
            if inside {
                let mut rest = body;
                if let Some(item) = rest.strip_prefix("- ") {
                    flush(entry.take(), out);
                    entry = Some(Override::default());
                    rest = item.trim_start();
                }
                if let (Some(e), Some((key, value))) = (entry.as_mut(), key_value(rest)) {
                    match key {
                        "name" => e.name = value,
                        "newName" => e.new_name = value,
                        "newTag" => e.new_tag = value,
                        "digest" => e.digest = value,
                        _ => {}
                    }
                }
                continue;
            }
            flush(entry.take(), out);
            images_at = None;
        }
        let mut rest = body;
        while let Some(r) = rest.strip_prefix("- ") {
            rest = r.trim_start();
        }
        match key_value(rest) {
            Some(("image", value)) if !value.is_empty() => {
                out.insert(normalise(&value));
            }
            Some(("images", value)) if value.is_empty() => images_at = Some(indent),
            _ => {}
        }
    }
    flush(entry.take(), out);
}

/// The line without its comment: YAML starts one at a `#` at the line's start or after
/// whitespace, outside quotes (YAML 1.2.2, 6.6 "Comments").
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '#' && prev_space => return line.get(..i).unwrap_or(line).trim_end(),
            None => {}
        }
        prev_space = c.is_whitespace();
    }
    line.trim_end()
}

/// `key: value` (or `key:`) with a plain key; the value unquoted.
fn key_value(s: &str) -> Option<(&str, String)> {
    let (key, value) = match s.split_once(": ") {
        Some((k, v)) => (k, v.trim()),
        None => (s.strip_suffix(':')?, ""),
    };
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')) {
        return None;
    }
    let unquoted =
        ['"', '\''].iter().find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q))).unwrap_or(value);
    Some((key, unquoted.to_string()))
}

/// The full reference the kubelet asks containerd's CRI for, as `ctr` must be given it (ctr
/// does not complete names): the rules of distribution/reference `ParseDockerRef`
/// (normalize.go, v0.6.0, which containerd and the kubelet use): a first path component
/// without `.` or `:` that is not `localhost` (and is lower case) is not a registry, so the
/// registry is `docker.io`; `index.docker.io` is `docker.io`; a one-component Docker Hub name
/// is under `library/`; no tag and no digest means `:latest`; with a digest the tag is dropped.
pub fn normalise(reference: &str) -> String {
    let (domain, remainder) = match reference.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" || first.to_lowercase() != first => {
            (first, rest)
        }
        _ => ("docker.io", reference),
    };
    let domain = if domain == "index.docker.io" { "docker.io" } else { domain };
    let remainder = if domain == "docker.io" && !remainder.contains('/') {
        format!("library/{remainder}")
    } else {
        remainder.into()
    };
    let (name_tag, digest) = match remainder.split_once('@') {
        Some((n, d)) => (n.to_string(), Some(d.to_string())),
        None => (remainder, None),
    };
    // A tag is a `:` after the last `/` (a registry port comes before one).
    let (name, tag) = match name_tag.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n.to_string(), Some(t.to_string())),
        _ => (name_tag, None),
    };
    match (digest, tag) {
        (Some(d), _) => format!("{domain}/{name}@{d}"),
        (None, Some(t)) => format!("{domain}/{name}:{t}"),
        (None, None) => format!("{domain}/{name}:latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_like_the_kubelets() {
        assert_eq!(normalise("cassandra:5.0"), "docker.io/library/cassandra:5.0");
        assert_eq!(normalise("apache/kafka:4.3.0"), "docker.io/apache/kafka:4.3.0");
        assert_eq!(normalise("index.docker.io/apache/spark:4.1.2"), "docker.io/apache/spark:4.1.2");
        assert_eq!(normalise("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalise("registry.k8s.io/pause:3.10"), "registry.k8s.io/pause:3.10");
        assert_eq!(normalise("localhost/x"), "localhost/x:latest");
        assert_eq!(normalise("reg:5000/team/app"), "reg:5000/team/app:latest");
        assert_eq!(normalise("reg:5000/team/app:1"), "reg:5000/team/app:1");
        assert_eq!(normalise("ghcr.io/a/b:1@sha256:abc"), "ghcr.io/a/b@sha256:abc");
        assert_eq!(normalise("Upper/app:1"), "Upper/app:1");
    }

    #[test]
    fn every_image_field_and_kustomization_override_is_found_once() {
        let pod = r#"
apiVersion: apps/v1
kind: StatefulSet
spec:
  template:
    spec:
      initContainers:
        - name: init
          image: "busybox:1.37"   # quoted, with a comment
      containers:
        - image: cassandra:5.0
          name: cassandra
        -   name: sidecar
            image: 'registry.k8s.io/pause:3.10'
      # image: not-this:1
---
kind: Job
spec:
  template:
    spec:
      containers:
      - name: pi
        image: cassandra:5.0
        args: ["--conf", "spark.kubernetes.container.image=apache/spark:4.1.2"]
"#;
        let kustomization = "
resources:
  - github.com/example/base?ref=v1
images:
  - name: registry.k8s.io/provider-aws/cloud-controller-manager
    newTag: v1.36.1
  - name: old/thing
    newName: quay.io/new/thing
    digest: sha256:0123
  - name: renamed/only
    newName: elsewhere/only
images2: x
";
        let kustomization_flush = "images:\n- name: ebs\n  newTag: v1\nresources:\n- a\n";
        assert_eq!(
            image_refs([pod, kustomization, kustomization_flush]),
            [
                "docker.io/library/busybox:1.37",
                "docker.io/library/cassandra:5.0",
                "docker.io/library/ebs:v1",
                "quay.io/new/thing@sha256:0123",
                "registry.k8s.io/pause:3.10",
                "registry.k8s.io/provider-aws/cloud-controller-manager:v1.36.1",
            ]
        );
    }
}
