//! `tagstack bake`'s pure half (issue 15): what a baked node image holds and its content
//! address. `images` reads image references out of rendered manifests; [`pull_list`] hands it
//! the add-ons' and the stack's; [`Recipe`] is everything that goes into an image (base AMI,
//! Kubernetes and containerd versions, the prepare script, the image list) and its hash, the
//! tag `up` and `plan` match a config against; the scripts the builder runs after
//! `prepare-node.sh` (`templates/bake/`). Nothing here talks to AWS or a node (that is
//! `ops::bake`), and nothing decides which image an environment uses (that is `ops::bake::choose`).

pub mod images;

use anyhow::Result;
use minijinja::context;
use sha2::{Digest, Sha256};

use crate::cluster::{addons::addons, render::bake_prepare_script, render::kube_minor, versions};
use crate::config::Spec;
use crate::shell::sh_quote;

/// Bumped when what a bake does changes in a way its inputs do not show (a new step, more
/// images of the same manifests), so that an older image no longer matches.
const RECIPE_FORMAT: &str = "tagstack-bake/1";

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
/// included. The add-ons' remote bases (Flannel's release manifest, the EBS CSI sidecars) are
/// fetched by the control plane when it applies them and are not in this list.
pub fn pull_list(spec: &Spec) -> Result<Vec<String>> {
    let addon_files: Vec<String> = addons(spec).into_iter().flat_map(|a| a.files.into_iter().map(|(_, c)| c)).collect();
    let stack: Vec<String> = crate::stack::manifests(spec)?
        .into_iter()
        .chain(crate::stack::smoke_manifests(spec)?)
        .map(|m| m.content)
        .collect();
    Ok(images::image_refs(addon_files.iter().chain(&stack).map(String::as_str)))
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
        })
    }

    /// The hashed text: one `key=value` line per input, the script by its SHA-256.
    pub fn canonical(&self) -> String {
        format!(
            "format={RECIPE_FORMAT}\nbase-ami={}\nkubernetes={}\ncontainerd={}\nprepare-sha256={}\nimages={}\n",
            self.base_ami,
            self.kubernetes,
            self.containerd,
            hex(&Sha256::digest(self.prepare.as_bytes())),
            self.images.join(",")
        )
    }

    /// The content address: hex SHA-256 of [`Self::canonical`] (64 characters, within an EC2
    /// tag value's 256).
    pub fn hash(&self) -> String {
        hex(&Sha256::digest(self.canonical().as_bytes()))
    }

    /// `pull-images.sh`: kubeadm's images for the installed kubeadm, then every image of the
    /// list into containerd's `k8s.io` namespace, each only when it is not there yet.
    pub fn pull_script(&self) -> Result<String> {
        let quoted: Vec<String> = self.images.iter().map(|i| sh_quote(i)).collect();
        render("pull-images.sh", context! { images => quoted.join(" "), count => self.images.len() })
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
