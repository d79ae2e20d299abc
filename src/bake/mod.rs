//! `tagstack bake`'s pure half (issue 15): what a baked node image holds and its content
//! address. `images` reads image references out of rendered manifests; [`pull_list`] hands it
//! the add-ons' and the stack's; [`remote_addons`] are the add-on sources only the builder can
//! read (URLs, remote kustomize bases), whose images `pull-images.sh` extracts there;
//! [`Recipe`] is everything that goes into an image (base AMI, Kubernetes and containerd
//! versions, the prepare script, the image list, the pinned remote add-on sources) and its
//! hash, the tag `up` and `plan` match a config against; the scripts the builder runs after
//! `prepare-node.sh` (`templates/bake/`). Nothing here talks to AWS or a node (that is
//! `ops::bake`), and nothing decides which image an environment uses (that is `ops::bake::choose`).

pub mod images;

use anyhow::{Result, bail};
use minijinja::context;
use sha2::{Digest, Sha256};

use crate::cluster::addons::{Addon, addons};
use crate::cluster::render::{NODE_DIR, bake_prepare_script, kube_minor};
use crate::cluster::versions;
use crate::config::Spec;
use crate::shell::sh_quote;

/// Bumped when what a bake does changes in a way its inputs do not show (a new step, more
/// images of the same manifests), so that an older image no longer matches.
/// 2: the images of the add-ons' remote sources are pulled too.
const RECIPE_FORMAT: &str = "tagstack-bake/2";

const TEMPLATES: &[(&str, &str)] = &[
    ("pull-images.sh", include_str!("../../templates/bake/pull-images.sh.j2")),
    ("generalise.sh", include_str!("../../templates/bake/generalise.sh.j2")),
];

fn render(name: &str, ctx: minijinja::Value) -> Result<String> {
    use anyhow::Context as _;
    let env = crate::templates::environment(TEMPLATES)?;
    env.get_template(name)?.render(ctx).with_context(|| format!("rendering {name}"))
}

/// The images a node of this config runs besides kubeadm's own (which `kubeadm config images
/// pull` fetches for the installed version): those named in the add-on files tagstack renders
/// (the kustomizations' `images:` overrides) and in the stack's manifests, smoke checks
/// included. The add-ons' remote sources (Flannel's release manifest, kube-network-policies'
/// install.yaml, the CCM and EBS CSI bases with its sidecars) are read on the builder by
/// `pull-images.sh` ([`remote_addons`]), as the control plane reads them when it applies them.
pub fn pull_list(spec: &Spec) -> Result<Vec<String>> {
    let addon_files: Vec<String> = addons(spec).into_iter().flat_map(|a| a.files.into_iter().map(|(_, c)| c)).collect();
    let stack: Vec<String> = crate::stack::manifests(spec)?
        .into_iter()
        .chain(crate::stack::smoke_manifests(spec)?)
        .map(|m| m.content)
        .collect();
    Ok(images::image_refs(addon_files.iter().chain(&stack).map(String::as_str)))
}

/// The add-ons whose manifests only a node can read, as `up` applies them: a URL, or a
/// kustomization (the files tagstack renders) with a remote base.
pub fn remote_addons(spec: &Spec) -> Vec<Addon> {
    addons(spec).into_iter().filter(|a| a.source.starts_with("https://") || a.remote_base).collect()
}

/// The pinned remote sources of these add-ons: the URLs and the kustomizations' remote
/// `resources:` (each at an immutable tag or commit, `cluster::addons`), never the rest of the
/// kustomization (its patches name the environment, and one image serves every environment).
fn remote_refs(addons: &[Addon]) -> Vec<String> {
    let mut out = Vec::new();
    for a in addons {
        if !a.kustomize {
            out.push(a.source.clone());
            continue;
        }
        for (_, text) in &a.files {
            out.extend(text.lines().filter_map(|l| {
                let item = l.trim().strip_prefix("- ")?.trim();
                (item.starts_with("github.com/") || item.starts_with("https://")).then(|| item.to_string())
            }));
        }
    }
    out
}

/// Everything that goes into a baked image, and so its content address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The configured base image, resolved to its id.
    pub base_ami: String,
    /// `1.36` (the newest patch at bake time) or `1.36.2`.
    pub kubernetes: String,
    pub containerd: String,
    /// `bake_prepare_script` of the config.
    pub prepare: String,
    /// [`pull_list`].
    pub images: Vec<String>,
    /// [`remote_addons`]: hashed by their pinned sources ([`remote_refs`]).
    pub remote_addons: Vec<Addon>,
}

impl Recipe {
    pub fn of(spec: &Spec, base_ami: &str) -> Result<Recipe> {
        let v = spec.kubernetes_version;
        Ok(Recipe {
            base_ami: base_ami.to_string(),
            kubernetes: v.patch.map_or_else(|| kube_minor(v), |p| format!("{}.{}.{p}", v.major, v.minor)),
            containerd: versions::containerd_for(v.minor)?.version.to_string(),
            prepare: bake_prepare_script(spec)?,
            images: pull_list(spec)?,
            remote_addons: remote_addons(spec),
        })
    }

    /// The hashed text: one `key=value` line per input, the script by its SHA-256.
    pub fn canonical(&self) -> String {
        format!(
            "format={RECIPE_FORMAT}\nbase-ami={}\nkubernetes={}\ncontainerd={}\nprepare-sha256={}\nimages={}\naddon-sources={}\n",
            self.base_ami,
            self.kubernetes,
            self.containerd,
            hex(&Sha256::digest(self.prepare.as_bytes())),
            self.images.join(","),
            remote_refs(&self.remote_addons).join(",")
        )
    }

    /// The content address: hex SHA-256 of [`Self::canonical`] (64 characters, within an EC2
    /// tag value's 256).
    pub fn hash(&self) -> String {
        hex(&Sha256::digest(self.canonical().as_bytes()))
    }

    /// `pull-images.sh`: kubeadm's images for the installed kubeadm, then every image of the
    /// list and of the remote add-on sources (read on the node: the URLs with curl, the
    /// kustomizations, written into the script as `up` uploads them, with `kubectl kustomize`)
    /// into containerd's `k8s.io` namespace, each only when it is not there yet.
    pub fn pull_script(&self) -> Result<String> {
        const EOF: &str = "TAGSTACK_ADDON_EOF";
        let quoted: Vec<String> = self.images.iter().map(|i| sh_quote(i)).collect();
        let urls: Vec<String> =
            self.remote_addons.iter().filter(|a| !a.kustomize).map(|a| sh_quote(&a.source)).collect();
        let addons_dir = format!("{NODE_DIR}/addons/");
        let mut dirs = Vec::new();
        let mut files = Vec::new();
        for a in self.remote_addons.iter().filter(|a| a.kustomize) {
            let Some(dir) = a.source.strip_prefix(&addons_dir) else {
                bail!("the add-on {} is not under {addons_dir}: {}", a.name, a.source);
            };
            dirs.push(sh_quote(dir));
            for (path, content) in &a.files {
                if content.lines().any(|l| l == EOF) {
                    bail!("the add-on file {path} holds the script's here-document delimiter {EOF}");
                }
                let parent = path.rsplit_once('/').map_or("", |(d, _)| d);
                files.push(context! { dir => sh_quote(parent), path => sh_quote(path), content => content.trim_end() });
            }
        }
        render(
            "pull-images.sh",
            context! {
                images => quoted.join(" "),
                count => self.images.len(),
                urls => urls.join(" "),
                dirs => dirs.join(" "),
                files => files,
                eof => EOF,
            },
        )
    }
}

/// `generalise.sh`: the last step on a builder, after which no one connects to it again.
pub fn generalise_script() -> Result<String> {
    render("generalise.sh", context! {})
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
