//! `tagstack bake` (issue 15): a node image for the environment's config, made once per
//! content address and reused by every environment of the project. Owns the bake's sequence
//! and its crash rules: an image of the config's hash that exists is reused (a pending one
//! waited for); else the environment's builder of that hash is reused, or launched (ClientToken
//! of the hash and subnet); a builder already generalised without an image is replaced, never
//! connected to; prepare, pulls, generalise over SSH; CreateImage (tags in the call, idempotent
//! by its name), the SDK waiter, the snapshots tagged, the builder terminated. Also which image
//! `up` and `plan` launch from ([`choose`]) and `bake --prune`. Prints nothing.

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::cluster::{env_dir, write_env_files_in};
use super::env::Env;
use super::nodes::host;
use crate::aws::{self, Ctx, bake::BakedImage};
use crate::bake::Recipe;
use crate::cluster::render::NODE_DIR;
use crate::cluster::{ClusterNode, console};
use crate::config::{BAKE_COMPONENT, NodeRole, Provider, TAG_BAKE_HASH};
use crate::plan::desired::{resource_token, stale_launch, successor_token};
use crate::remote::{Fleet, RemoteErrors};

/// What `bake` did.
#[derive(Debug, Clone, Serialize)]
pub struct BakeReport {
    pub image_id: String,
    pub name: String,
    pub hash: String,
    pub base_ami: String,
    /// An image of this hash already existed (in any environment of the project).
    pub reused: bool,
    /// The images pulled besides kubeadm's own.
    pub images: Vec<String>,
    /// The builder this run used, terminated at the end.
    pub builder: Option<String>,
}

/// Which image `up` launches nodes from, and why (`plan` shows both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageChoice {
    pub image_id: String,
    pub baked: bool,
    pub why: String,
}

/// The image for a config whose recipe hashes to `hash`: an available baked image of that
/// hash (the newest if there are several), else the stock one, `base_ami`.
pub fn choose(images: &[BakedImage], hash: &str, base_ami: &str) -> ImageChoice {
    match images.iter().filter(|i| i.hash == hash && i.state == "available").max_by(|a, b| a.created.cmp(&b.created)) {
        Some(i) => ImageChoice {
            image_id: i.id.clone(),
            baked: true,
            why: format!("baked image {} matches the config (content hash {})", i.name, short(hash)),
        },
        None => ImageChoice {
            image_id: base_ami.to_string(),
            baked: false,
            why: format!("no baked image matches the config (content hash {}): the stock image", short(hash)),
        },
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// The recipe of a config, its base image resolved.
async fn recipe_of(cx: &Ctx<'_>, spec: &crate::config::Spec) -> Result<(aws::Ami, Recipe)> {
    let base = aws::resolve_ami(cx, &spec.ami, &spec.region).await?;
    let recipe = Recipe::of(spec, &base.id)?;
    Ok((base, recipe))
}

async fn recipe(env: &Env<'_>, cx: &Ctx<'_>) -> Result<(aws::Ami, Recipe)> {
    recipe_of(cx, env.spec).await
}

/// The image `up` launches new nodes from ([`choose`]), with the choice. A baked image keeps
/// the base's root device name (CreateImage copies the instance's block device mappings).
pub async fn launch_image(cx: &Ctx<'_>, spec: &crate::config::Spec) -> Result<(aws::Ami, ImageChoice, usize)> {
    let (base, recipe) = recipe_of(cx, spec).await?;
    let images = aws::bake::baked_images(cx).await?;
    let choice = choose(&images, &recipe.hash(), &base.id);
    Ok((aws::Ami { id: choice.image_id.clone(), root_device: base.root_device }, choice, images.len()))
}

/// What `plan` says about the image: the choice when a baked image is used, or when the
/// project has baked images and none matches (why the stock one); nothing for a project that
/// never baked, whose plan reads as it always did.
pub async fn plan_image(env: &Env<'_>) -> Result<Option<ImageChoice>> {
    let (_, choice, baked) = launch_image(&env.ctx().await, env.spec).await?;
    Ok((choice.baked || baked > 0).then_some(choice))
}

/// The tags of the image and its snapshots: the environment's, the component, the hash, and
/// what went into it (read by `status`).
fn image_tags(cx: &Ctx<'_>, recipe: &Recipe, hash: &str) -> Vec<(String, String)> {
    let mut tags = cx.tags(BAKE_COMPONENT);
    tags.extend([
        (TAG_BAKE_HASH.to_string(), hash.to_string()),
        ("tagstack:bake-base-ami".to_string(), recipe.base_ami.clone()),
        ("tagstack:bake-kubernetes".to_string(), recipe.kubernetes.clone()),
        ("tagstack:bake-containerd".to_string(), recipe.containerd.clone()),
    ]);
    tags
}

pub async fn run(env: &Env<'_>) -> Result<BakeReport> {
    let spec = env.spec;
    if matches!(spec.provider, Provider::Static { .. }) {
        bail!("`tagstack bake` makes an EC2 image: it needs provider = \"aws\"");
    }
    let cx = env.ctx().await;
    let r = env.reporter;
    let (base, recipe) = recipe(env, &cx).await?;
    let hash = recipe.hash();
    let name = spec.id.baked_image_name(&hash);
    let tags = image_tags(&cx, &recipe, &hash);
    let report = |image_id: String, reused: bool, builder: Option<String>| BakeReport {
        image_id,
        name: name.clone(),
        hash: hash.clone(),
        base_ami: base.id.clone(),
        reused,
        images: recipe.images.clone(),
        builder,
    };

    // An image of this content address: reuse it (finishing what a killed bake left).
    let images = aws::bake::baked_images(&cx).await?;
    let existing =
        images.iter().filter(|i| i.hash == hash && i.state != "failed").max_by(|a, b| a.created.cmp(&b.created));
    if let Some(img) = existing {
        let reused = img.state == "available";
        r.start("bake-image", &format!("image {} ({})", img.id, img.state));
        aws::bake::wait_available(&cx, &img.id, spec.timeouts.instances_running.max(BAKE_IMAGE_TIMEOUT)).await?;
        // Only this environment's image gets its snapshots tagged: another's is its own.
        if img.environment == spec.id.environment {
            aws::bake::tag_snapshots(&cx, &img.id, &tags).await?;
        }
        r.finish("bake-image", &format!("{} {} matches the config", if reused { "reusing" } else { "made" }, img.id));
        let builders = retire_builders(&cx, |_| true).await?;
        return Ok(report(img.id.clone(), reused, builders.into_iter().next()));
    }

    // A builder of this hash: reuse it unless its disk was (maybe half-way) generalised.
    let builders = aws::bake::builders(&cx).await?;
    let stale: Vec<String> =
        builders.iter().filter(|b| b.hash != hash || b.generalised).map(|b| b.id.clone()).collect();
    if !stale.is_empty() {
        r.note(&format!("terminating builders an earlier bake left: {}", stale.join(", ")));
        aws::terminate(&cx, "bake-builder", &stale).await?;
    }
    let builder = match builders.iter().find(|b| b.hash == hash && !b.generalised && b.state.is_live()) {
        Some(b) => b.id.clone(),
        None => launch(env, &cx, &base, &hash, &stale).await?,
    };
    aws::wait_running(&cx, std::slice::from_ref(&builder)).await?;
    aws::wait_terminated(&cx, &stale).await?;

    provision(env, &cx, &builder, &recipe).await?;

    r.start("bake-image", &format!("CreateImage {name} from {builder}"));
    let image_id = aws::bake::create_image(&cx, &builder, &name, &tags).await?;
    aws::bake::wait_available(&cx, &image_id, BAKE_IMAGE_TIMEOUT).await?;
    aws::bake::tag_snapshots(&cx, &image_id, &tags).await?;
    r.finish("bake-image", &format!("image {image_id} available"));
    retire_builders(&cx, |_| true).await?;
    Ok(report(image_id, false, Some(builder)))
}

/// How long CreateImage may take to become `available`: minutes for a snapshot of a few GB
/// (EC2 copies only the blocks written).
const BAKE_IMAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(45 * 60);

/// Terminates the environment's builders `which` picks and waits until they are gone;
/// answers their ids.
async fn retire_builders(cx: &Ctx<'_>, which: impl Fn(&aws::bake::Builder) -> bool) -> Result<Vec<String>> {
    let ids: Vec<String> = aws::bake::builders(cx).await?.into_iter().filter(|b| which(b)).map(|b| b.id).collect();
    if !ids.is_empty() {
        aws::terminate(cx, "bake-builder", &ids).await?;
        aws::wait_terminated(cx, &ids).await?;
    }
    Ok(ids)
}

/// Terminates every builder of the environment (for `down` and `reap`), reporting which.
pub async fn terminate_builders(cx: &Ctx<'_>) -> Result<()> {
    let ids = retire_builders(cx, |_| true).await?;
    if !ids.is_empty() {
        cx.reporter.note(&format!("terminated the builder(s) a stopped `tagstack bake` left: {}", ids.join(", ")));
    }
    Ok(())
}

/// Launches the builder in the environment's first subnet, with its security group and key
/// pair (they must exist: `up --only infra` makes them). The ClientToken is the hash's and
/// the subnet's, so a launch whose answer was lost, or a bake killed right after it, finds
/// the same instance; an answer naming a terminated builder (an earlier bake's) moves on to
/// the successor token.
async fn launch(env: &Env<'_>, cx: &Ctx<'_>, base: &aws::Ami, hash: &str, dead: &[String]) -> Result<String> {
    let spec = env.spec;
    let observed = aws::discover(cx.aws, &spec.id, &spec.timeouts, crate::plan::Depth::Full).await?;
    let want = spec.network.subnets.first().context("the config names no subnet")?;
    let subnet = observed.subnets.iter().find(|s| s.cidr == Some(want.cidr)).map(|s| s.id.clone());
    let sg = observed.security_groups.first().map(|g| g.id.clone());
    let key = observed.key_pairs.first().map(|k| k.name.clone());
    let (Some(subnet), Some(sg), Some(key)) = (subnet, sg, key) else {
        return Err(crate::hint::attach(
            anyhow::anyhow!(
                "the bake's builder runs in the environment's network, which is not there (subnet {}, security group, key pair)",
                want.cidr
            ),
            "run `tagstack up --only infra` first",
        ));
    };
    let volume_gb = spec.group(NodeRole::ControlPlane).root_volume_gb.min(spec.group(NodeRole::Worker).root_volume_gb);
    let mut token = resource_token(&spec.id, &format!("bake/{hash}"), &subnet);
    for _ in 0..8 {
        let launched = aws::bake::launch_builder(
            cx,
            &aws::bake::BuilderLaunch {
                token: &token,
                hash,
                ami: base,
                instance_type: &spec.group(NodeRole::Worker).instance_type,
                volume_gb,
                subnet_id: &subnet,
                security_group_id: &sg,
                key_name: &key,
            },
        )
        .await?;
        let gone = stale_launch(&launched, dead);
        if gone.is_empty() {
            return launched.into_iter().next().map(|(id, _)| id).context("RunInstances answered without an instance");
        }
        token = successor_token(&token, &gone);
    }
    bail!("RunInstances kept answering with terminated builders; run `tagstack bake` again")
}

/// Prepare, pulls and generalise on the builder, over SSH (its host key from its console).
async fn provision(env: &Env<'_>, cx: &Ctx<'_>, builder: &str, recipe: &Recipe) -> Result<()> {
    let spec = env.spec;
    let b = aws::bake::builders(cx)
        .await?
        .into_iter()
        .find(|b| b.id == builder)
        .with_context(|| format!("the builder {builder} is gone"))?;
    let keys = aws::wait_host_keys(
        cx,
        console::host_key,
        &[(b.id.clone(), b.host_key.clone())],
        spec.timeouts.instances_running,
    )
    .await?;
    let node = ClusterNode {
        name: "bake-builder".into(),
        node_name: b.addresses.private_dns.clone().unwrap_or_default(),
        role: NodeRole::Worker,
        address: b
            .addresses
            .ssh(spec.cluster.node_address)
            .cloned()
            .with_context(|| format!("the builder {builder} has no {:?} address", spec.cluster.node_address))?,
        port: 22,
        user: spec.ssh.user.clone(),
        private_ip: b.addresses.private_ip.clone().unwrap_or_default(),
        public_address: b.addresses.public_ip.clone(),
        host_key: keys.into_iter().next().map(|(_, k)| k),
    };
    let files = write_env_files_in(spec, &env_dir(spec).join("bake"), std::slice::from_ref(&node))?;
    let fleet = Fleet::connect(&[host(&node)], &files, 1, env.reporter).await.map_err(RemoteErrors)?;
    let result = steps(env, cx, &fleet, &node, builder, recipe).await;
    fleet.close().await;
    result
}

async fn steps(
    env: &Env<'_>,
    cx: &Ctx<'_>,
    fleet: &Fleet,
    node: &ClusterNode,
    builder: &str,
    recipe: &Recipe,
) -> Result<()> {
    let r = env.reporter;
    let n = node.name.as_str();
    let scripts = [
        ("prepare", "prepare-node.sh", recipe.prepare.clone()),
        ("pull", "pull-images.sh", recipe.pull_script()?),
        ("generalise", "generalise.sh", crate::bake::generalise_script()?),
    ];
    for (step, file, text) in scripts {
        let path = format!("{NODE_DIR}/bake/{file}");
        fleet.upload(n, step, &path, &text, true).await.map_err(|e| RemoteErrors(vec![e]))?;
        if step == "generalise" {
            // Before the step: a bake killed during it must not connect to this builder again.
            aws::bake::mark_generalised(cx, builder).await?;
        }
        r.start(&format!("bake/{step}"), &format!("{step} on the builder {builder}"));
        fleet.run(n, step, &path, r).await.map_err(|e| RemoteErrors(vec![e]))?;
        r.finish(&format!("bake/{step}"), &format!("{step} done"));
    }
    Ok(())
}

/// What `bake --prune` did.
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub hash: String,
    /// The environment's images still used by its config.
    pub kept: Vec<String>,
    /// (image id, its snapshots) deregistered and deleted.
    pub deregistered: Vec<(String, Vec<String>)>,
}

/// The environment's baked images whose hash the config no longer has (exact ownership:
/// project and environment tags; other environments' and projects' images and untagged ones
/// are never touched), deregistered with their snapshots.
pub async fn prune(env: &Env<'_>) -> Result<PruneReport> {
    let cx = env.ctx().await;
    let (_, recipe) = recipe(env, &cx).await?;
    let hash = recipe.hash();
    let mine: Vec<BakedImage> =
        aws::bake::baked_images(&cx).await?.into_iter().filter(|i| i.environment == env.spec.id.environment).collect();
    let (kept, gone): (Vec<BakedImage>, Vec<BakedImage>) = mine.into_iter().partition(|i| i.hash == hash);
    for img in &gone {
        env.reporter.start("bake-prune", &format!("deregister {} and its snapshots", img.id));
        aws::bake::deregister(&cx, img).await?;
        env.reporter.finish("bake-prune", &format!("{} deregistered", img.id));
    }
    Ok(PruneReport {
        hash,
        kept: kept.into_iter().map(|i| i.id).collect(),
        deregistered: gone.into_iter().map(|i| (i.id, i.snapshots)).collect(),
    })
}

/// A baked image as `status` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ImageStatus {
    pub image_id: String,
    pub name: String,
    /// The environment that baked it.
    pub environment: String,
    pub state: String,
    pub hash: String,
    /// New nodes of this config launch from it.
    pub used_by_config: bool,
    /// This environment's nodes running it (by tagstack's node name).
    pub nodes: Vec<String>,
}

/// `status`'s images: the project's baked images, whether the config uses one, and which of
/// the environment's nodes run each. `None` when the project has none.
pub async fn status(
    aws: &aws::Aws,
    spec: &crate::config::Spec,
    nodes: &[super::Node],
) -> Result<Option<Vec<ImageStatus>>> {
    let cx = Ctx::new(aws, &spec.id, spec.timeouts, &crate::reporter::Silent);
    let images = aws::bake::baked_images(&cx).await?;
    if images.is_empty() {
        return Ok(None);
    }
    // The image lookup is `up`'s to fail on: without it, no image counts as used.
    let used = launch_image(&cx, spec).await.ok().map(|(_, c, _)| c).filter(|c| c.baked).map(|c| c.image_id);
    let ids: Vec<String> = images.iter().map(|i| i.id.clone()).collect();
    let running = aws::bake::instances_on(&cx, &ids).await?;
    Ok(Some(
        images
            .into_iter()
            .map(|i| ImageStatus {
                used_by_config: used.as_deref() == Some(i.id.as_str()),
                nodes: nodes
                    .iter()
                    .filter(|n| running.iter().any(|(inst, img)| *inst == n.instance_id && *img == i.id))
                    .map(|n| n.name.clone())
                    .collect(),
                image_id: i.id,
                name: i.name,
                environment: i.environment,
                state: i.state,
                hash: i.hash,
            })
            .collect(),
    ))
}

/// `down --delete-images`: every baked image this environment owns (exact project and
/// environment tags), deregistered with its snapshots; answers (image id, its snapshots).
pub async fn delete_images(env: &Env<'_>) -> Result<Vec<(String, Vec<String>)>> {
    let cx = env.ctx().await;
    let mine: Vec<BakedImage> =
        aws::bake::baked_images(&cx).await?.into_iter().filter(|i| i.environment == env.spec.id.environment).collect();
    for img in &mine {
        aws::bake::deregister(&cx, img).await?;
    }
    Ok(mine.into_iter().map(|i| (i.id, i.snapshots)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, hash: &str, state: &str, created: &str) -> BakedImage {
        BakedImage {
            id: id.into(),
            name: format!("tagstack-demo-bake-{id}"),
            state: state.into(),
            hash: hash.into(),
            environment: "dev".into(),
            created: created.into(),
            snapshots: vec![],
        }
    }

    #[test]
    fn up_uses_the_newest_available_image_of_the_hash_else_the_stock_one() {
        let images = [
            image("ami-old", "h1", "available", "2026-11-01T00:00:00.000Z"),
            image("ami-new", "h1", "available", "2026-11-02T00:00:00.000Z"),
            image("ami-pending", "h1", "pending", "2026-11-03T00:00:00.000Z"),
            image("ami-other", "h2", "available", "2026-11-04T00:00:00.000Z"),
        ];
        let c = choose(&images, "h1", "ami-stock");
        assert_eq!((c.image_id.as_str(), c.baked), ("ami-new", true));
        let c = choose(&images, "h3", "ami-stock");
        assert_eq!((c.image_id.as_str(), c.baked), ("ami-stock", false));
        assert!(c.why.contains("stock"), "{}", c.why);
    }
}
