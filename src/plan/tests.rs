//! Pure plan computation: (Spec, Observed) -> Plan and Observed -> teardown, with fixed fake
//! ids so the snapshots are stable. No AWS, no I/O beyond insta's snapshot files.

use ipnet::Ipv4Net;

use super::desired::{client_token, ingress_rules, inline_policy_values, public_key_sha256};
use super::infra::{DefaultRoute, Removable};
use super::observed::{Addresses, IngressRule, Instance, InstanceProfile, InternetGateway, KeyPair, Role, RouteTable};
use super::observed::{SecurityGroup, Subnet, Vpc};
use super::{Action, Change, Fix, Kind, Observed, Plan, PlanError, Summary, describe, diff, live_instances, teardown};
use super::{Depth, InfraPlan, diff_infra};
use crate::config::{NodeRole, Spec};

const TITLE: &str = "demo/dev in eu-west-3";
const PUBLIC_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5 me@laptop";

/// `config::testing`'s AWS environment with two subnets and `workers` workers.
fn spec_with_workers(workers: u32) -> Spec {
    use crate::config::testing::{AWS_BASE, SECOND_SUBNET, parse_with_key};
    parse_with_key(&format!("{AWS_BASE}{SECOND_SUBNET}\n[workers]\ncount = {workers}\n"), PUBLIC_KEY)
}

fn spec() -> Spec {
    spec_with_workers(3)
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

// ---- Observed building blocks, each in its converged form ----------------------------------

fn vpc(dns_hostnames: bool) -> Vpc {
    Vpc { id: "vpc-0001".into(), cidr: Some(net("10.20.0.0/16")), dns_hostnames, made_by_tagstack: true }
}

fn subnet(id: &str, cidr: &str, az: &str, map_public_ip: bool) -> Subnet {
    Subnet {
        id: id.into(),
        vpc_id: "vpc-0001".into(),
        cidr: Some(net(cidr)),
        availability_zone: az.into(),
        map_public_ip,
    }
}

fn subnets(map_public_ip: bool) -> Vec<Subnet> {
    vec![
        subnet("subnet-000a", "10.20.1.0/24", "eu-west-3a", map_public_ip),
        subnet("subnet-000b", "10.20.2.0/24", "eu-west-3b", map_public_ip),
    ]
}

fn igw(attached: bool) -> InternetGateway {
    InternetGateway {
        id: "igw-0001".into(),
        attached_vpcs: if attached { vec!["vpc-0001".into()] } else { vec![] },
        made_by_tagstack: true,
    }
}

fn rtb(default_route: Option<&str>, associated: &[&str]) -> RouteTable {
    RouteTable {
        id: "rtb-0001".into(),
        vpc_id: "vpc-0001".into(),
        default_route: default_route.map(str::to_string),
        associations: associated
            .iter()
            .map(|s| (format!("rtbassoc-{}", s.trim_start_matches("subnet-")), (*s).to_string()))
            .collect(),
        made_by_tagstack: true,
    }
}

fn rtb_converged() -> RouteTable {
    rtb(Some("igw-0001"), &["subnet-000a", "subnet-000b"])
}

fn sg(ingress: Vec<IngressRule>) -> SecurityGroup {
    SecurityGroup { id: "sg-0001".into(), vpc_id: "vpc-0001".into(), ingress, made_by_tagstack: true }
}

fn key_pair(spec: &Spec, sha: Option<String>) -> KeyPair {
    KeyPair { id: "key-0001".into(), name: spec.id.key_pair_name(), public_key_sha256: sha }
}

fn key_pair_converged(spec: &Spec) -> KeyPair {
    key_pair(spec, Some(public_key_sha256(&spec.ssh.public_key)))
}

fn roles(spec: &Spec, with_policies: bool) -> Vec<Role> {
    NodeRole::ALL
        .iter()
        .map(|r| Role {
            name: spec.id.iam_name(*r),
            inline_policies: if with_policies { inline_policy_values(*r) } else { vec![] },
        })
        .collect()
}

fn profiles(spec: &Spec, with_role: bool) -> Vec<InstanceProfile> {
    NodeRole::ALL
        .iter()
        .map(|r| InstanceProfile {
            name: spec.id.iam_name(*r),
            roles: if with_role { vec![spec.id.iam_name(*r)] } else { vec![] },
        })
        .collect()
}

fn instance(id: &str, role: NodeRole, state: &str, launch_time: &str) -> Instance {
    Instance {
        id: id.into(),
        role,
        state: state.into(),
        instance_type: "t3.large".into(),
        subnet_id: Some("subnet-000a".into()),
        addresses: Addresses::default(),
        launch_time: Some(launch_time.into()),
        expires_at: None,
        host_key: None,
        retiring: false,
        security_groups: vec!["sg-0001".into()],
        imds_hop_limit: Some(1),
    }
}

fn control_plane() -> Instance {
    instance("i-cp0", NodeRole::ControlPlane, "running", "2025-01-01T10:00:00Z")
}

/// `n` running workers i-w0.., launched one minute apart after the control plane.
fn workers(n: usize) -> Vec<Instance> {
    (0..n)
        .map(|i| instance(&format!("i-w{i}"), NodeRole::Worker, "running", &format!("2025-01-01T10:0{}:00Z", i + 1)))
        .collect()
}

/// Everything the spec asks for, exactly as it asks for it.
fn converged(spec: &Spec) -> Observed {
    let mut instances = vec![control_plane()];
    instances.extend(workers(spec.workers.count as usize));
    Observed {
        depth: Depth::Full,
        vpcs: vec![vpc(true)],
        subnets: subnets(true),
        internet_gateways: vec![igw(true)],
        route_tables: vec![rtb_converged()],
        security_groups: vec![sg(ingress_rules(spec))],
        key_pairs: vec![key_pair_converged(spec)],
        roles: roles(spec, true),
        instance_profiles: profiles(spec, true),
        instances,
        volumes: Vec::new(),
        network_interfaces: Vec::new(),
        expiry: Default::default(),
        backup: Default::default(),
    }
}

/// A teardown's discovery reads neither DNS attributes nor policy documents: a plan from it
/// would show drift that is not there, so the diff refuses it; the teardown needs neither.
#[test]
fn the_diff_refuses_a_teardown_discovery_and_the_teardown_does_not_need_more() {
    let spec = spec();
    let full = converged(&spec);
    let mut shallow = full.clone();
    shallow.depth = Depth::Teardown;
    for v in &mut shallow.vpcs {
        v.dns_hostnames = false;
    }
    for r in &mut shallow.roles {
        r.inline_policies.clear();
    }
    assert!(matches!(diff(&spec, &shallow, None), Err(PlanError::Shallow)));
    let (a, b) = (teardown(&full), teardown(&shallow));
    assert_eq!(a.changes, b.changes);
    assert_eq!(a.first, b.first);
    assert_eq!(a.steps, b.steps);
}

fn plan_for(spec: &Spec, o: &Observed) -> Plan {
    diff(spec, o, None).unwrap()
}

/// The plan of a run that gives the environment the expiry `expires_at`.
fn plan_expiring(spec: &Spec, o: &Observed, expires_at: Option<&str>) -> Plan {
    diff(spec, o, expires_at).unwrap()
}

/// The only change of `kind` named `name`.
fn change<'a>(plan: &'a Plan, kind: Kind, name: &str) -> &'a Change {
    let found: Vec<&Change> = plan.of_kind(kind).filter(|c| c.name == name).collect();
    assert_eq!(found.len(), 1, "{kind:?} {name}: {:#?}", plan.changes);
    found[0]
}

fn instances(plan: &Plan, role: NodeRole) -> &Change {
    change(plan, Kind::Instances, role.as_str())
}

/// Every change that is not Keep, as (kind, name, action): what a drift test expects to see.
fn not_kept(plan: &Plan) -> Vec<(Kind, String, Action)> {
    plan.changes.iter().filter(|c| c.action != Action::Keep).map(|c| (c.kind, c.name.clone(), c.action)).collect()
}

// ---- empty account and converged -----------------------------------------------------------

#[test]
fn empty_account_creates_everything() {
    let spec = spec();
    let plan = plan_for(&spec, &Observed::default());

    assert_eq!(plan.summary(), Summary { create: 13, update: 0, delete: 0, keep: 0 });
    assert!(plan.changes.iter().all(|c| c.action == Action::Create && c.id.is_none()), "{:#?}", plan.changes);
    assert!(!plan.is_converged());
    let kinds: Vec<Kind> = plan.changes.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::Vpc,
            Kind::Subnet,
            Kind::Subnet,
            Kind::InternetGateway,
            Kind::RouteTable,
            Kind::SecurityGroup,
            Kind::KeyPair,
            Kind::IamRole,
            Kind::IamRole,
            Kind::InstanceProfile,
            Kind::InstanceProfile,
            Kind::Instances,
            Kind::Instances,
        ]
    );

    // The creations carry what `up` will do right after creating.
    let sg = plan.one(Kind::SecurityGroup).unwrap();
    assert_eq!(sg.fixes, ingress_rules(&spec).into_iter().map(Fix::Authorize).collect::<Vec<_>>());
    assert_eq!(sg.fixes.len(), 3);
    assert_eq!(
        change(&plan, Kind::IamRole, "tagstack-demo-dev-control-plane").fixes,
        [
            Fix::PutPolicy { name: "cloud-provider-control-plane".into() },
            Fix::PutPolicy { name: "cloud-provider-node".into() },
            Fix::PutPolicy { name: "ebs-csi".into() },
            Fix::PutPolicy { name: "tagstack-guard".into() },
        ]
    );
    assert_eq!(
        change(&plan, Kind::InstanceProfile, "tagstack-demo-dev-worker").fixes,
        [Fix::AddRole { role: "tagstack-demo-dev-worker".into() }]
    );
    assert_eq!(instances(&plan, NodeRole::ControlPlane).fixes, [Fix::Launch { count: 1 }]);
    assert_eq!(instances(&plan, NodeRole::Worker).fixes, [Fix::Launch { count: 3 }]);
    assert_eq!(instances(&plan, NodeRole::Worker).role, Some(NodeRole::Worker));
    assert_eq!(plan.one(Kind::KeyPair).unwrap().name, "tagstack-demo-dev");

    let text = describe(&plan, TITLE);
    assert!(text.starts_with("Plan for demo/dev in eu-west-3: 13 to create, 0 to update, 0 to delete, 0 unchanged\n"));
    assert!(!text.contains("Nothing to do"));
    insta::assert_snapshot!("empty_account_describe", text);
    insta::assert_json_snapshot!("empty_account_plan", plan);
}

#[test]
fn converged_account_has_nothing_to_do() {
    let spec = spec();
    let plan = plan_for(&spec, &converged(&spec));

    assert!(plan.is_converged(), "{:#?}", plan.changes);
    assert_eq!(plan.summary(), Summary { create: 0, update: 0, delete: 0, keep: 13 });
    assert!(plan.changes.iter().all(|c| c.fixes.is_empty() && c.id.is_some()), "{:#?}", plan.changes);
    assert_eq!(plan.one(Kind::Vpc).unwrap().id.as_deref(), Some("vpc-0001"));
    assert_eq!(instances(&plan, NodeRole::ControlPlane).id.as_deref(), Some("i-cp0"));
    assert_eq!(instances(&plan, NodeRole::Worker).id.as_deref(), Some("i-w0,i-w1,i-w2"));

    let text = describe(&plan, TITLE);
    assert!(text.starts_with("Plan for demo/dev in eu-west-3: 0 to create, 0 to update, 0 to delete, 13 unchanged\n"));
    assert!(text.ends_with("Nothing to do: the environment matches the config.\n"), "{text}");
    insta::assert_snapshot!("converged_describe", text);
}

#[test]
fn converged_ignores_terminated_and_shutting_down_instances() {
    let spec = spec();
    let mut o = converged(&spec);
    o.instances.push(instance("i-old0", NodeRole::ControlPlane, "terminated", "2024-12-01T00:00:00Z"));
    o.instances.push(instance("i-old1", NodeRole::Worker, "shutting-down", "2024-12-01T00:00:00Z"));
    let plan = plan_for(&spec, &o);
    assert!(plan.is_converged(), "{:#?}", plan.changes);
    assert_eq!(instances(&plan, NodeRole::Worker).id.as_deref(), Some("i-w0,i-w1,i-w2"));
}

// ---- partially created, step by step -------------------------------------------------------

struct Step {
    name: &'static str,
    observed: Observed,
    /// Every change not listed here must be a Create; listed ones have exactly this action.
    existing: Vec<(&'static str, Action)>,
}

fn label(c: &Change) -> String {
    match c.kind {
        Kind::Instances => format!("instances/{}", c.name),
        k => k.as_str().to_string(),
    }
}

/// The states `up` passes through on an empty account, in creation order; each step builds on
/// the previous one, the last is one worker short of converged.
fn partial_steps(spec: &Spec) -> Vec<Step> {
    use Action::{Keep, Update};
    let base = |vpcs| Observed { vpcs, ..Observed::default() };
    let mut steps = vec![
        Step { name: "01_only_vpc", observed: base(vec![vpc(true)]), existing: vec![("vpc", Keep)] },
        Step {
            name: "02_vpc_without_dns_hostnames",
            observed: base(vec![vpc(false)]),
            existing: vec![("vpc", Update)],
        },
        Step {
            name: "03_subnets_without_public_ip",
            observed: Observed { subnets: subnets(false), ..base(vec![vpc(true)]) },
            existing: vec![("vpc", Keep), ("subnet", Update)],
        },
    ];
    let net = Observed { subnets: subnets(true), ..base(vec![vpc(true)]) };
    steps.push(Step { name: "04_subnets", observed: net.clone(), existing: vec![("vpc", Keep), ("subnet", Keep)] });
    let mut o = net;
    o.internet_gateways = vec![igw(false)];
    steps.push(Step {
        name: "05_igw_not_attached",
        observed: o.clone(),
        existing: vec![("vpc", Keep), ("subnet", Keep), ("internet-gateway", Update)],
    });
    o.internet_gateways = vec![igw(true)];
    let mut have = vec![("vpc", Keep), ("subnet", Keep), ("internet-gateway", Keep)];
    steps.push(Step { name: "06_igw_attached", observed: o.clone(), existing: have.clone() });
    o.route_tables = vec![rtb(None, &[])];
    steps.push(Step {
        name: "07_route_table_without_route",
        observed: o.clone(),
        existing: [have.clone(), vec![("route-table", Update)]].concat(),
    });
    o.route_tables = vec![rtb(Some("igw-0001"), &[])];
    steps.push(Step {
        name: "08_route_without_associations",
        observed: o.clone(),
        existing: [have.clone(), vec![("route-table", Update)]].concat(),
    });
    o.route_tables = vec![rtb_converged()];
    have.push(("route-table", Keep));
    o.security_groups = vec![sg(vec![])];
    steps.push(Step {
        name: "09_security_group_without_rules",
        observed: o.clone(),
        existing: [have.clone(), vec![("security-group", Update)]].concat(),
    });
    o.security_groups = vec![sg(ingress_rules(spec))];
    have.push(("security-group", Keep));
    o.key_pairs = vec![key_pair_converged(spec)];
    have.push(("key-pair", Keep));
    steps.push(Step { name: "10_key_pair", observed: o.clone(), existing: have.clone() });
    o.roles = roles(spec, false);
    steps.push(Step {
        name: "11_roles_without_policies",
        observed: o.clone(),
        existing: [have.clone(), vec![("iam-role", Update)]].concat(),
    });
    o.roles = roles(spec, true);
    have.push(("iam-role", Keep));
    o.instance_profiles = profiles(spec, false);
    steps.push(Step {
        name: "12_profiles_without_role",
        observed: o.clone(),
        existing: [have.clone(), vec![("instance-profile", Update)]].concat(),
    });
    o.instance_profiles = profiles(spec, true);
    have.push(("instance-profile", Keep));
    o.instances = vec![control_plane()];
    have.push(("instances/control-plane", Keep));
    steps.push(Step { name: "13_control_plane_only", observed: o.clone(), existing: have.clone() });
    o.instances.extend(workers(1));
    steps.push(Step {
        name: "14_one_of_three_workers",
        observed: o,
        existing: [have, vec![("instances/worker", Update)]].concat(),
    });
    steps
}

#[test]
fn partially_created_at_each_step() {
    let spec = spec();
    let steps = partial_steps(&spec);
    assert_eq!(steps.len(), 14);
    for step in steps {
        let plan = plan_for(&spec, &step.observed);
        assert_eq!(plan.changes.len(), 13, "{}", step.name);
        assert!(!plan.is_converged(), "{}", step.name);
        for c in &plan.changes {
            let l = label(c);
            let want = step.existing.iter().find(|(k, _)| *k == l).map_or(Action::Create, |(_, a)| *a);
            assert_eq!(c.action, want, "step {}: {l} {}", step.name, c.name);
            // Existing resources are addressed by id; new ones have none.
            assert_eq!(c.id.is_some(), want != Action::Create, "step {}: {l}", step.name);
            // Only Update carries fixes on an existing resource.
            if want == Action::Keep {
                assert!(c.fixes.is_empty(), "step {}: {l} {:?}", step.name, c.fixes);
            }
        }
        insta::assert_snapshot!(format!("partial_{}", step.name), describe(&plan, TITLE));
    }
}

#[test]
fn partial_steps_carry_the_right_fixes() {
    let spec = spec();
    let steps = partial_steps(&spec);
    let fixes_of = |name: &str, kind: Kind| -> Vec<Fix> {
        let step = steps.iter().find(|s| s.name == name).unwrap();
        let plan = plan_for(&spec, &step.observed);
        plan.of_kind(kind).flat_map(|c| c.fixes.clone()).collect()
    };
    assert_eq!(fixes_of("02_vpc_without_dns_hostnames", Kind::Vpc), [Fix::EnableDnsHostnames]);
    assert_eq!(
        fixes_of("03_subnets_without_public_ip", Kind::Subnet),
        [Fix::EnableMapPublicIp, Fix::EnableMapPublicIp]
    );
    assert_eq!(fixes_of("05_igw_not_attached", Kind::InternetGateway), [Fix::AttachGateway]);
    // Without a route table nothing can be associated yet: it is a Create with no fixes.
    assert_eq!(fixes_of("06_igw_attached", Kind::RouteTable), []);
    assert_eq!(
        fixes_of("07_route_table_without_route", Kind::RouteTable),
        [
            Fix::SetDefaultRoute { current: None },
            Fix::Associate { subnet: "10.20.1.0/24".into() },
            Fix::Associate { subnet: "10.20.2.0/24".into() },
        ]
    );
    assert_eq!(
        fixes_of("08_route_without_associations", Kind::RouteTable),
        [Fix::Associate { subnet: "10.20.1.0/24".into() }, Fix::Associate { subnet: "10.20.2.0/24".into() }]
    );
    assert_eq!(
        fixes_of("09_security_group_without_rules", Kind::SecurityGroup),
        [
            Fix::Authorize(IngressRule::SelfAll),
            Fix::Authorize(IngressRule::Tcp { port: 22, cidr: net("203.0.113.0/24") }),
            Fix::Authorize(IngressRule::Tcp { port: 6443, cidr: net("203.0.113.0/24") }),
        ]
    );
    assert_eq!(
        fixes_of("11_roles_without_policies", Kind::IamRole),
        [
            Fix::PutPolicy { name: "cloud-provider-control-plane".into() },
            Fix::PutPolicy { name: "cloud-provider-node".into() },
            Fix::PutPolicy { name: "ebs-csi".into() },
            Fix::PutPolicy { name: "tagstack-guard".into() },
            // The worker's: no ebs-csi since IMDS hop limit 1 (plan::desired::inline_policies).
            Fix::PutPolicy { name: "cloud-provider-node".into() },
            Fix::PutPolicy { name: "tagstack-guard".into() },
        ]
    );
    assert_eq!(
        fixes_of("12_profiles_without_role", Kind::InstanceProfile),
        [
            Fix::AddRole { role: "tagstack-demo-dev-control-plane".into() },
            Fix::AddRole { role: "tagstack-demo-dev-worker".into() },
        ]
    );
    assert_eq!(fixes_of("13_control_plane_only", Kind::Instances), [Fix::Launch { count: 3 }]);
    assert_eq!(fixes_of("14_one_of_three_workers", Kind::Instances), [Fix::Launch { count: 2 }]);
}

// ---- drift ---------------------------------------------------------------------------------

#[test]
fn drift_extra_worker_terminates_the_newest() {
    let spec = spec();
    let mut o = converged(&spec);
    // The extra one is last in discovery order and last by id, but the OLDEST by launch time:
    // the newest, i-w2, is the one to go.
    o.instances.push(instance("i-wz", NodeRole::Worker, "running", "2025-01-01T09:00:00Z"));
    let plan = plan_for(&spec, &o);

    assert_eq!(not_kept(&plan), [(Kind::Instances, "worker".to_string(), Action::Update)]);
    let w = instances(&plan, NodeRole::Worker);
    assert_eq!(w.fixes, [Fix::Terminate { ids: vec!["i-w2".into()] }]);
    assert_eq!(w.id.as_deref(), Some("i-wz,i-w0,i-w1"));
    assert_eq!(w.note.as_deref(), Some("3 wanted, 4 running or stopped"));
    assert_eq!(plan.summary(), Summary { create: 0, update: 1, delete: 0, keep: 12 });
    insta::assert_snapshot!("drift_extra_worker", describe(&plan, TITLE));
}

#[test]
fn drift_missing_subnet_is_created_and_associated() {
    let spec = spec();
    let mut o = converged(&spec);
    o.subnets.retain(|s| s.id != "subnet-000b");
    o.route_tables = vec![rtb(Some("igw-0001"), &["subnet-000a"])];
    let plan = plan_for(&spec, &o);

    assert_eq!(
        not_kept(&plan),
        [
            (Kind::Subnet, "10.20.2.0/24 (eu-west-3b)".to_string(), Action::Create),
            (Kind::RouteTable, "demo-dev-rtb".to_string(), Action::Update),
        ]
    );
    assert_eq!(plan.one(Kind::RouteTable).unwrap().fixes, [Fix::Associate { subnet: "10.20.2.0/24".into() }]);
    // The wanted subnets are listed in the config's order (the first is where nodes launch).
    let names: Vec<&str> = plan.of_kind(Kind::Subnet).map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["10.20.1.0/24 (eu-west-3a)", "10.20.2.0/24 (eu-west-3b)"]);
    insta::assert_snapshot!("drift_missing_subnet", describe(&plan, TITLE));
}

#[test]
fn drift_extra_subnet_is_deleted() {
    let spec = spec();
    let mut o = converged(&spec);
    o.subnets.push(subnet("subnet-000c", "10.20.3.0/24", "eu-west-3c", true));
    let plan = plan_for(&spec, &o);

    assert_eq!(not_kept(&plan), [(Kind::Subnet, "10.20.3.0/24 (eu-west-3c)".to_string(), Action::Delete)]);
    let extra = plan.of_kind(Kind::Subnet).find(|c| c.action == Action::Delete).unwrap();
    assert_eq!(extra.id.as_deref(), Some("subnet-000c"));
    assert_eq!(extra.note.as_deref(), Some("not in the config"));
    // Deletions come after the wanted subnets.
    let actions: Vec<Action> = plan.of_kind(Kind::Subnet).map(|c| c.action).collect();
    assert_eq!(actions, [Action::Keep, Action::Keep, Action::Delete]);
    assert_eq!(plan.summary(), Summary { create: 0, update: 0, delete: 1, keep: 13 });
    insta::assert_snapshot!("drift_extra_subnet", describe(&plan, TITLE));
}

#[test]
fn drift_subnet_in_another_zone_is_kept_with_a_note() {
    let spec = spec();
    let mut o = converged(&spec);
    o.subnets[1].availability_zone = "eu-west-3c".into();
    let plan = plan_for(&spec, &o);
    assert!(plan.is_converged(), "{:#?}", plan.changes);
    let s = change(&plan, Kind::Subnet, "10.20.2.0/24 (eu-west-3b)");
    assert_eq!(s.note.as_deref(), Some("it is in eu-west-3c, the config says eu-west-3b; delete it to move it"));
}

#[test]
fn drift_vpc_block_differs_is_noted() {
    let spec = spec();
    let mut o = converged(&spec);
    o.vpcs[0].cidr = Some(net("10.99.0.0/16"));
    let plan = plan_for(&spec, &o);
    let v = plan.one(Kind::Vpc).unwrap();
    assert_eq!(v.action, Action::Keep);
    assert_eq!(
        v.note.as_deref(),
        Some("its block differs from the config (10.20.0.0/16); a VPC block cannot change in place")
    );
}

#[test]
fn drift_security_group_old_admin_cidr_is_revoked_and_new_authorized() {
    let spec = spec();
    let mut o = converged(&spec);
    let old = net("198.51.100.7/32");
    let new = net("203.0.113.0/24");
    o.security_groups = vec![sg(vec![
        IngressRule::SelfAll,
        IngressRule::Tcp { port: 22, cidr: old },
        IngressRule::Tcp { port: 6443, cidr: old },
        IngressRule::Tcp { port: 6443, cidr: new },
        IngressRule::Other("udp/53 from 0.0.0.0/0".into()),
    ])];
    let plan = plan_for(&spec, &o);

    assert_eq!(not_kept(&plan), [(Kind::SecurityGroup, "demo-dev-sg".to_string(), Action::Update)]);
    assert_eq!(
        plan.one(Kind::SecurityGroup).unwrap().fixes,
        [
            Fix::Authorize(IngressRule::Tcp { port: 22, cidr: new }),
            Fix::Revoke(IngressRule::Tcp { port: 22, cidr: old }),
            Fix::Revoke(IngressRule::Tcp { port: 6443, cidr: old }),
            Fix::Revoke(IngressRule::Other("udp/53 from 0.0.0.0/0".into())),
        ]
    );
    insta::assert_snapshot!("drift_security_group", describe(&plan, TITLE));
}

#[test]
fn drift_key_pair_with_another_hash_is_replaced() {
    let spec = spec();
    for sha in [Some(public_key_sha256("ssh-ed25519 AAAAother")), None] {
        let mut o = converged(&spec);
        o.key_pairs = vec![key_pair(&spec, sha)];
        let plan = plan_for(&spec, &o);
        assert_eq!(not_kept(&plan), [(Kind::KeyPair, "tagstack-demo-dev".to_string(), Action::Update)]);
        let k = plan.one(Kind::KeyPair).unwrap();
        assert_eq!(k.fixes, [Fix::ReplaceKey]);
        assert_eq!(k.id.as_deref(), Some("key-0001"));
    }
    // Only the key material counts, not the comment.
    let mut o = converged(&spec);
    o.key_pairs =
        vec![key_pair(&spec, Some(public_key_sha256("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5 x@y")))];
    assert!(plan_for(&spec, &o).is_converged());
}

#[test]
fn drift_stopped_worker_is_started() {
    let spec = spec();
    let mut o = converged(&spec);
    o.instances.iter_mut().find(|i| i.id == "i-w1").unwrap().state = "stopped".into();
    o.instances.iter_mut().find(|i| i.id == "i-cp0").unwrap().state = "stopping".into();
    let plan = plan_for(&spec, &o);

    assert_eq!(
        not_kept(&plan),
        [
            (Kind::Instances, "control-plane".to_string(), Action::Update),
            (Kind::Instances, "worker".to_string(), Action::Update),
        ]
    );
    assert_eq!(instances(&plan, NodeRole::Worker).fixes, [Fix::Start { ids: vec!["i-w1".into()] }]);
    assert_eq!(instances(&plan, NodeRole::ControlPlane).fixes, [Fix::Start { ids: vec!["i-cp0".into()] }]);
    insta::assert_snapshot!("drift_stopped_nodes", describe(&plan, TITLE));
}

#[test]
fn drift_scale_down_does_not_start_the_stopped_node_it_terminates() {
    let spec = spec();
    let mut o = converged(&spec);
    o.instances.push(instance("i-w3", NodeRole::Worker, "stopped", "2025-01-01T11:00:00Z"));
    let plan = plan_for(&spec, &o);
    assert_eq!(instances(&plan, NodeRole::Worker).fixes, [Fix::Terminate { ids: vec!["i-w3".into()] }]);
}

#[test]
fn drift_iam_policy_changed_and_extra_policy() {
    let spec = spec();
    let mut o = converged(&spec);
    let worker = o.roles.iter_mut().find(|r| r.name == "tagstack-demo-dev-worker").unwrap();
    let node = worker.inline_policies.iter_mut().find(|(n, _)| n == "cloud-provider-node").unwrap();
    node.1 = serde_json::json!({"Version": "2012-10-17", "Statement": []});
    worker.inline_policies.push(("legacy-s3".into(), serde_json::json!({"Statement": []})));
    let plan = plan_for(&spec, &o);

    assert_eq!(not_kept(&plan), [(Kind::IamRole, "tagstack-demo-dev-worker".to_string(), Action::Update)]);
    assert_eq!(
        change(&plan, Kind::IamRole, "tagstack-demo-dev-worker").fixes,
        [Fix::PutPolicy { name: "cloud-provider-node".into() }, Fix::DeletePolicy { name: "legacy-s3".into() }]
    );
    insta::assert_snapshot!("drift_iam_policies", describe(&plan, TITLE));
}

#[test]
fn drift_extra_owned_role_and_profile_are_deleted() {
    let spec = spec();
    let mut o = converged(&spec);
    o.roles.push(Role { name: "tagstack-demo-dev-legacy".into(), inline_policies: vec![] });
    o.instance_profiles.push(InstanceProfile {
        name: "tagstack-demo-dev-legacy".into(),
        roles: vec!["tagstack-demo-dev-legacy".into()],
    });
    let plan = plan_for(&spec, &o);

    assert_eq!(
        not_kept(&plan),
        [
            (Kind::IamRole, "tagstack-demo-dev-legacy".to_string(), Action::Delete),
            (Kind::InstanceProfile, "tagstack-demo-dev-legacy".to_string(), Action::Delete),
        ]
    );
    let r = change(&plan, Kind::IamRole, "tagstack-demo-dev-legacy");
    assert_eq!(r.id.as_deref(), Some("tagstack-demo-dev-legacy"));
    assert_eq!(r.note.as_deref(), Some("not a role this version of tagstack uses"));
    insta::assert_snapshot!("drift_extra_role", describe(&plan, TITLE));
}

#[test]
fn drift_profile_with_a_foreign_role_swaps_it() {
    let spec = spec();
    let mut o = converged(&spec);
    o.instance_profiles[1].roles = vec!["someone-else".into()];
    let plan = plan_for(&spec, &o);
    assert_eq!(
        change(&plan, Kind::InstanceProfile, "tagstack-demo-dev-worker").fixes,
        [Fix::RemoveRole { role: "someone-else".into() }, Fix::AddRole { role: "tagstack-demo-dev-worker".into() }]
    );
}

#[test]
fn drift_route_to_another_target_is_replaced() {
    let spec = spec();
    let mut o = converged(&spec);
    o.route_tables = vec![rtb(Some("nat-0abc"), &["subnet-000a", "subnet-000b"])];
    let plan = plan_for(&spec, &o);
    let r = plan.one(Kind::RouteTable).unwrap();
    assert_eq!(r.fixes, [Fix::SetDefaultRoute { current: Some("nat-0abc".into()) }]);
    assert_eq!(r.fixes[0].to_string(), "replace route 0.0.0.0/0 -> nat-0abc with the internet gateway");
}

#[test]
fn drift_workers_scaled_to_zero_terminates_all() {
    let spec = spec_with_workers(0);
    let mut o = converged(&spec);
    o.instances.extend(workers(3));
    let plan = plan_for(&spec, &o);

    assert_eq!(not_kept(&plan), [(Kind::Instances, "worker".to_string(), Action::Update)]);
    let w = instances(&plan, NodeRole::Worker);
    assert_eq!(w.fixes, [Fix::Terminate { ids: vec!["i-w0".into(), "i-w1".into(), "i-w2".into()] }]);
    assert_eq!(w.id, None);
    assert_eq!(w.note.as_deref(), Some("0 wanted, 3 running or stopped"));
    // Nothing is created: the group line must not claim to be "(new)".
    let text = describe(&plan, TITLE);
    assert!(
        text.contains("  ~ instances         worker                                       -  # 0 wanted"),
        "{text}"
    );
    assert!(!text.contains("(new)"), "{text}");
    insta::assert_snapshot!("drift_workers_to_zero", text);

    // And with no workers left, the worker group disappears from the plan.
    let plan = plan_for(&spec, &converged(&spec));
    assert!(plan.is_converged());
    assert_eq!(plan.of_kind(Kind::Instances).count(), 1);
}

// ---- safety: never pick one of two ---------------------------------------------------------

#[test]
fn two_vpcs_is_an_error_naming_both() {
    let spec = spec();
    let mut o = converged(&spec);
    // Tagged for the environment by hand (no tagstack:component): never healed.
    o.vpcs.push(Vpc {
        id: "vpc-0002".into(),
        cidr: Some(net("10.20.0.0/16")),
        dns_hostnames: true,
        made_by_tagstack: false,
    });
    let err = diff(&spec, &o, None).unwrap_err();
    assert_eq!(err, PlanError::Duplicate { kind: "vpc", count: 2, ids: "vpc-0001, vpc-0002".into() });
    assert_eq!(
        err.to_string(),
        "2 vpc resources are tagged for this environment (vpc-0001, vpc-0002); tagstack will not pick one\n  \
         hint: delete the one you do not want, or fix its tagstack:env tag, then run again"
    );
}

#[test]
fn two_control_planes_is_an_error_naming_both() {
    let spec = spec();
    let mut o = converged(&spec);
    o.instances.push(instance("i-cp1", NodeRole::ControlPlane, "stopped", "2025-01-02T00:00:00Z"));
    let err = diff(&spec, &o, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "2 control-plane instance resources are tagged for this environment (i-cp0, i-cp1); tagstack will not \
         pick one\n  hint: delete the one you do not want, or fix its tagstack:env tag, then run again"
    );
}

#[test]
fn two_security_groups_is_an_error_naming_both() {
    let spec = spec();
    let mut o = converged(&spec);
    o.security_groups.push(SecurityGroup {
        id: "sg-0002".into(),
        vpc_id: "vpc-0001".into(),
        ingress: vec![],
        made_by_tagstack: false,
    });
    let err = diff(&spec, &o, None).unwrap_err();
    assert_eq!(err, PlanError::Duplicate { kind: "security-group", count: 2, ids: "sg-0001, sg-0002".into() });
    assert!(err.to_string().contains("(sg-0001, sg-0002)"));
}

#[test]
fn other_duplicates_are_errors_too() {
    let spec = spec();
    let dup = |f: &dyn Fn(&mut Observed)| {
        let mut o = converged(&spec);
        f(&mut o);
        diff(&spec, &o, None).unwrap_err()
    };
    assert_eq!(
        dup(&|o| o.subnets.push(subnet("subnet-000z", "10.20.1.0/24", "eu-west-3a", true))),
        PlanError::Duplicate { kind: "subnet", count: 2, ids: "subnet-000a, subnet-000z".into() }
    );
    assert_eq!(
        dup(&|o| o.internet_gateways.push(InternetGateway {
            id: "igw-0002".into(),
            attached_vpcs: vec![],
            made_by_tagstack: false
        })),
        PlanError::Duplicate { kind: "internet-gateway", count: 2, ids: "igw-0001, igw-0002".into() }
    );
    assert_eq!(
        dup(&|o| o.route_tables.push(RouteTable {
            id: "rtb-0002".into(),
            vpc_id: "vpc-0001".into(),
            default_route: None,
            associations: vec![],
            made_by_tagstack: false
        })),
        PlanError::Duplicate { kind: "route-table", count: 2, ids: "rtb-0001, rtb-0002".into() }
    );
    assert_eq!(
        dup(&|o| o.key_pairs.push(KeyPair {
            id: "key-0002".into(),
            name: "tagstack-demo-dev".into(),
            public_key_sha256: None
        })),
        PlanError::Duplicate {
            kind: "key-pair",
            count: 2,
            ids: "tagstack-demo-dev (key-0001), tagstack-demo-dev (key-0002)".into()
        }
    );
}

// ---- healing: an empty duplicate tagstack made is deleted, a busy one stays an error -------

fn empty_vpc(id: &str) -> Vpc {
    Vpc { id: id.into(), cidr: Some(net("10.20.0.0/16")), dns_hostnames: false, made_by_tagstack: true }
}

fn deletes(plan: &Plan) -> Vec<(Kind, String)> {
    plan.changes.iter().filter(|c| c.action == Action::Delete).map(|c| (c.kind, c.id.clone().unwrap())).collect()
}

#[test]
fn an_empty_duplicate_vpc_made_by_tagstack_is_deleted_and_the_busy_one_kept() {
    let spec = spec();
    let mut o = converged(&spec);
    // Sorts before the busy one: the busy one is kept anyway.
    o.vpcs.insert(0, empty_vpc("vpc-0000"));
    let plan = diff(&spec, &o, None).unwrap();
    assert_eq!(deletes(&plan), [(Kind::Vpc, "vpc-0000".into())]);
    assert_eq!(plan.one(Kind::Vpc).unwrap().id.as_deref(), Some("vpc-0001"));
    assert!(!plan.is_converged());
    let text = describe(&plan, TITLE);
    assert!(
        text.contains(
            "- vpc               demo-dev-vpc                                 vpc-0000  # duplicate of vpc-0001 made by \
             tagstack (a lost create answer); nothing depends on it"
        ),
        "{text}"
    );
    // Everything else is as converged.
    assert_eq!(not_kept(&plan), [(Kind::Vpc, "demo-dev-vpc".into(), Action::Delete)]);
}

#[test]
fn two_empty_vpcs_made_by_tagstack_keep_the_first_by_id() {
    let spec = spec();
    let o = Observed { vpcs: vec![empty_vpc("vpc-0009"), empty_vpc("vpc-0002")], ..Observed::default() };
    let plan = diff(&spec, &o, None).unwrap();
    assert_eq!(deletes(&plan), [(Kind::Vpc, "vpc-0009".into())]);
    assert_eq!(plan.one(Kind::Vpc).unwrap().id.as_deref(), Some("vpc-0002"));
    // The kept VPC gets its subnets etc. as on a partial create.
    assert_eq!(change(&plan, Kind::Subnet, "10.20.1.0/24 (eu-west-3a)").action, Action::Create);
}

#[test]
fn duplicate_vpcs_with_dependents_are_an_error_naming_both() {
    let spec = spec();
    let mut o = converged(&spec);
    o.vpcs.push(empty_vpc("vpc-0002"));
    let mut other = subnet("subnet-0002", "10.20.1.0/24", "eu-west-3a", true);
    other.vpc_id = "vpc-0002".into();
    o.subnets.push(other);
    let err = diff(&spec, &o, None).unwrap_err();
    assert_eq!(err, PlanError::Duplicate { kind: "vpc", count: 2, ids: "vpc-0001, vpc-0002".into() });
}

#[test]
fn empty_duplicate_gateway_route_table_and_security_group_are_deleted() {
    let spec = spec();
    let mut o = converged(&spec);
    o.internet_gateways.push(InternetGateway { id: "igw-0002".into(), attached_vpcs: vec![], made_by_tagstack: true });
    o.route_tables.push(RouteTable {
        id: "rtb-0002".into(),
        vpc_id: "vpc-0001".into(),
        default_route: Some("igw-0001".into()),
        associations: vec![],
        made_by_tagstack: true,
    });
    o.security_groups.push(SecurityGroup {
        id: "sg-0002".into(),
        vpc_id: "vpc-0001".into(),
        ingress: ingress_rules(&spec),
        made_by_tagstack: true,
    });
    let plan = diff(&spec, &o, None).unwrap();
    assert_eq!(
        deletes(&plan),
        [
            (Kind::InternetGateway, "igw-0002".into()),
            (Kind::RouteTable, "rtb-0002".into()),
            (Kind::SecurityGroup, "sg-0002".into())
        ]
    );
    assert_eq!(plan.one(Kind::InternetGateway).unwrap().id.as_deref(), Some("igw-0001"));
    assert_eq!(plan.one(Kind::RouteTable).unwrap().id.as_deref(), Some("rtb-0001"));
    assert_eq!(plan.one(Kind::SecurityGroup).unwrap().id.as_deref(), Some("sg-0001"));
}

#[test]
fn busy_duplicates_of_other_kinds_stay_errors() {
    let spec = spec();
    let dup = |f: &dyn Fn(&mut Observed)| {
        let mut o = converged(&spec);
        f(&mut o);
        diff(&spec, &o, None).unwrap_err()
    };
    // A second gateway that a route points at, a route table with an association, a group
    // an instance uses.
    let err = dup(&|o| {
        o.internet_gateways.push(InternetGateway {
            id: "igw-0002".into(),
            attached_vpcs: vec![],
            made_by_tagstack: true,
        });
        o.route_tables[0].default_route = Some("igw-0002".into());
    });
    assert_eq!(err, PlanError::Duplicate { kind: "internet-gateway", count: 2, ids: "igw-0001, igw-0002".into() });
    let err = dup(&|o| {
        let mut r = rtb(None, &["subnet-000b"]);
        r.id = "rtb-0002".into();
        o.route_tables.push(r);
    });
    assert_eq!(err, PlanError::Duplicate { kind: "route-table", count: 2, ids: "rtb-0001, rtb-0002".into() });
    let err = dup(&|o| {
        o.security_groups.push(SecurityGroup {
            id: "sg-0002".into(),
            vpc_id: "vpc-0001".into(),
            ingress: vec![],
            made_by_tagstack: true,
        });
        o.instances[0].security_groups = vec!["sg-0002".into()];
    });
    assert_eq!(err, PlanError::Duplicate { kind: "security-group", count: 2, ids: "sg-0001, sg-0002".into() });
}

// ---- teardown ------------------------------------------------------------------------------

#[test]
fn teardown_deletes_in_dependency_order() {
    let spec = spec();
    let mut o = converged(&spec);
    // A terminated leftover is not torn down again.
    o.instances.push(instance("i-gone", NodeRole::Worker, "terminated", "2024-01-01T00:00:00Z"));
    // What the cluster left: a PVC's volume and a detached interface.
    o.volumes.push(crate::plan::observed::Leftover {
        id: "vol-0001".into(),
        state: "available".into(),
        name: Some("pvc kafka/data-kafka-0".into()),
    });
    o.network_interfaces.push(crate::plan::observed::Leftover {
        id: "eni-0001".into(),
        state: "available".into(),
        name: None,
    });
    let plan = teardown(&o);

    assert!(plan.changes.iter().all(|c| c.action == Action::Delete && c.id.is_some()), "{:#?}", plan.changes);
    let order: Vec<(Kind, &str)> = plan.changes.iter().map(|c| (c.kind, c.id.as_deref().unwrap_or(""))).collect();
    assert_eq!(
        order,
        [
            (Kind::Instances, "i-cp0"),
            (Kind::Instances, "i-w0,i-w1,i-w2"),
            (Kind::Volume, "vol-0001"),
            (Kind::NetworkInterface, "eni-0001"),
            (Kind::KeyPair, "key-0001"),
            (Kind::SecurityGroup, "sg-0001"),
            (Kind::RouteTable, "rtb-0001"),
            (Kind::InternetGateway, "igw-0001"),
            (Kind::Subnet, "subnet-000a"),
            (Kind::Subnet, "subnet-000b"),
            (Kind::Vpc, "vpc-0001"),
            (Kind::InstanceProfile, "tagstack-demo-dev-control-plane"),
            (Kind::InstanceProfile, "tagstack-demo-dev-worker"),
            (Kind::IamRole, "tagstack-demo-dev-control-plane"),
            (Kind::IamRole, "tagstack-demo-dev-worker"),
        ]
    );
    assert_eq!(plan.summary(), Summary { create: 0, update: 0, delete: 15, keep: 0 });
    let roles: Vec<Option<NodeRole>> = plan.of_kind(Kind::Instances).map(|c| c.role).collect();
    assert_eq!(roles, [Some(NodeRole::ControlPlane), Some(NodeRole::Worker)]);
    insta::assert_snapshot!("teardown_describe", describe(&plan, "down demo/dev in eu-west-3"));
}

#[test]
fn teardown_of_nothing_is_empty() {
    let o = Observed::default();
    assert!(o.is_empty());
    let plan = teardown(&o);
    assert!(plan.changes.is_empty());
    assert_eq!(plan.summary(), Summary::default());
    assert!(!converged(&spec()).is_empty());
}

#[test]
fn live_instances_are_oldest_first() {
    let o = Observed {
        instances: vec![
            instance("i-b", NodeRole::Worker, "running", "2025-01-01T10:02:00Z"),
            instance("i-a", NodeRole::Worker, "pending", "2025-01-01T10:03:00Z"),
            instance("i-c", NodeRole::Worker, "running", "2025-01-01T10:01:00Z"),
            instance("i-d", NodeRole::Worker, "terminated", "2025-01-01T10:00:00Z"),
            instance("i-cp", NodeRole::ControlPlane, "running", "2025-01-01T09:00:00Z"),
        ],
        ..Observed::default()
    };
    let ids: Vec<&str> = live_instances(&o, NodeRole::Worker).iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["i-c", "i-b", "i-a"]);
}

// ---- client token --------------------------------------------------------------------------

#[test]
fn client_token_is_deterministic_and_short() {
    let spec = spec();
    let t = client_token(&spec.id, NodeRole::Worker, "subnet-000a", 1, 2);
    assert_eq!(t, client_token(&spec.id, NodeRole::Worker, "subnet-000a", 1, 2));
    assert!(t.len() <= 64, "{t} is {} chars", t.len());
    assert!(t.starts_with("tagstack-"), "{t}");
    assert!(t["tagstack-".len()..].chars().all(|c| c.is_ascii_hexdigit()), "{t}");

    let others = [
        client_token(&spec.id, NodeRole::Worker, "subnet-000b", 1, 2),
        client_token(&spec.id, NodeRole::Worker, "subnet-000a", 2, 2),
        client_token(&spec.id, NodeRole::Worker, "subnet-000a", 1, 3),
        client_token(&spec.id, NodeRole::ControlPlane, "subnet-000a", 1, 2),
        client_token(&spec_with_workers(5).id, NodeRole::Worker, "subnet-000a", 1, 2),
    ];
    // Same project/env, so the worker count of the spec does not matter (last one); all other
    // inputs change the token.
    assert_ne!(others[0], t, "subnet id");
    assert_ne!(others[1], t, "existing count");
    assert_ne!(others[2], t, "launch count");
    assert_ne!(others[3], t, "role");
    assert_eq!(others[4], t, "only project, environment, role, subnet and counts count");
    for o in &others {
        assert!(o.len() <= 64);
    }
}

#[test]
fn expiry_added_extended_or_kept() {
    let spec = spec();
    let mut o = converged(&spec);
    o.expiry.untagged = 13;
    assert!(plan_for(&spec, &o).expiry.is_none(), "no expiry wanted, none set");

    let expires_at = Some("2026-11-22T12:00:00Z");
    let plan = plan_expiring(&spec, &o, expires_at);
    assert_eq!(plan.expiry, Some(crate::plan::ExpiryChange { from: None, to: "2026-11-22T12:00:00Z".into() }));
    assert!(!plan.is_converged());
    insta::assert_snapshot!("expiry_added", describe(&plan, "demo/dev in eu-west-3"));

    o.expiry.untagged = 0;
    o.expiry.values.insert("2026-11-22T12:00:00Z".into());
    assert!(plan_expiring(&spec, &o, expires_at).is_converged(), "same expiry everywhere: nothing to do");

    let expires_at = Some("2026-11-22T14:00:00Z");
    let plan = plan_expiring(&spec, &o, expires_at);
    assert_eq!(plan.expiry.as_ref().and_then(|e| e.from.as_deref()), Some("2026-11-22T12:00:00Z"));

    // A new environment gets the expiry in its create calls, not as a separate change.
    assert!(plan_expiring(&spec, &Observed::default(), expires_at).expiry.is_none());
}

#[test]
fn teardown_steps_wait_only_for_what_holds_them() {
    let spec = spec();
    let mut o = converged(&spec);
    o.network_interfaces.push(crate::plan::observed::Leftover {
        id: "eni-0001".into(),
        state: "available".into(),
        name: None,
    });
    let t = teardown(&o);
    let first = t.first.as_ref().map(|s| (s.op.clone(), s.changes.clone()));
    assert_eq!(
        first,
        Some((
            crate::plan::Op::Terminate { ids: vec!["i-cp0".into(), "i-w0".into(), "i-w1".into(), "i-w2".into()] },
            vec![0, 1]
        ))
    );
    // Each stage: the steps that can run once the ones of the stages before succeeded. This
    // listing is the order `down` runs (ops::infra::teardown follows `after`, nothing else).
    let stages: Vec<Vec<String>> = t
        .stages()
        .iter()
        .map(|stage| {
            stage.iter().map(|s| format!("{:?}", s.op).split_whitespace().next().unwrap_or("").to_string()).collect()
        })
        .collect();
    assert_eq!(
        stages,
        [
            vec!["DeleteNetworkInterface", "DeleteKeyPair", "StripRole", "StripRole"],
            vec![
                "DeleteSecurityGroup",
                "DisassociateRouteTable",
                "DetachInternetGateway",
                "DeleteInstanceProfile",
                "DeleteInstanceProfile",
                "DeleteRole",
                "DeleteRole"
            ],
            vec!["DeleteRouteTable", "DeleteInternetGateway", "DeleteSubnet", "DeleteSubnet"],
            vec!["DeleteVpc"],
        ]
    );
    // The VPC waits for the gateway's detachment, not its deletion; a subnet for the
    // associations, not the table's deletion.
    let step = |name: &str| t.steps.iter().position(|s| format!("{:?}", s.op).starts_with(name)).unwrap();
    let vpc = &t.steps[step("DeleteVpc")];
    assert!(vpc.after.contains(&step("DetachInternetGateway")));
    assert!(!vpc.after.contains(&step("DeleteInternetGateway")));
    let subnet = &t.steps[step("DeleteSubnet")];
    assert!(subnet.after.contains(&step("DisassociateRouteTable")));
    assert!(!subnet.after.contains(&step("DeleteRouteTable")));
    // Every step names only earlier steps, and every entry has a step: nothing is skipped.
    for (i, s) in t.steps.iter().enumerate() {
        assert!(s.after.iter().all(|&d| d < i), "{s:?}");
    }
    let mut order = t.report_order().to_vec();
    order.sort_unstable();
    assert_eq!(order, (0..t.changes.len()).collect::<Vec<_>>());

    // A role that is not ours in one of our profiles is removed by the profile's own step.
    o.instance_profiles[0].roles.push("someone-elses".into());
    let t = teardown(&o);
    let empty: Vec<&crate::plan::Op> =
        t.steps.iter().map(|s| &s.op).filter(|op| matches!(op, crate::plan::Op::EmptyInstanceProfile { .. })).collect();
    assert_eq!(
        empty,
        [&crate::plan::Op::EmptyInstanceProfile {
            name: o.instance_profiles[0].name.clone(),
            roles: vec!["someone-elses".into()]
        }]
    );
}

// ---- the typed plan `up` executes, and subnets matched by CIDR -----------------------------

fn infra_for(spec: &Spec, o: &Observed) -> InfraPlan {
    diff_infra(spec, o, None).unwrap()
}

#[test]
fn reordered_config_subnets_converge_instead_of_being_replaced() {
    let mut spec = spec();
    spec.network.subnets.reverse();
    let plan = plan_for(&spec, &converged(&spec));
    assert!(plan.is_converged(), "{:#?}", plan.changes);
    let subnets: Vec<(&str, Option<&str>)> =
        plan.of_kind(Kind::Subnet).map(|c| (c.name.as_str(), c.id.as_deref())).collect();
    assert_eq!(
        subnets,
        [("10.20.2.0/24 (eu-west-3b)", Some("subnet-000b")), ("10.20.1.0/24 (eu-west-3a)", Some("subnet-000a"))]
    );

    // `up` pairs each config entry with the subnet of its CIDR (no positional zip).
    let infra = infra_for(&spec, &converged(&spec));
    let pairs: Vec<(String, Option<&str>)> =
        infra.subnets.iter().map(|s| (s.want.cidr.to_string(), s.subnet.id.as_deref())).collect();
    assert_eq!(
        pairs,
        [("10.20.2.0/24".to_string(), Some("subnet-000b")), ("10.20.1.0/24".to_string(), Some("subnet-000a"))]
    );
    assert!(infra.removals.is_empty());
}

#[test]
fn reordered_config_with_a_missing_subnet_creates_and_associates_that_cidr() {
    let mut spec = spec();
    spec.network.subnets.reverse();
    let mut o = converged(&spec);
    o.subnets.retain(|s| s.id != "subnet-000a");
    o.route_tables = vec![rtb(Some("igw-0001"), &["subnet-000b"])];
    let infra = infra_for(&spec, &o);

    let created: Vec<String> =
        infra.subnets.iter().filter(|s| s.subnet.id.is_none()).map(|s| s.want.cidr.to_string()).collect();
    assert_eq!(created, ["10.20.1.0/24"]);
    assert_eq!(infra.route_table.fix.associate, [net("10.20.1.0/24")]);
    assert_eq!(infra.route_table.fix.default_route, None);
    assert_eq!(
        not_kept(&infra.to_plan()),
        [
            (Kind::Subnet, "10.20.1.0/24 (eu-west-3a)".to_string(), Action::Create),
            (Kind::RouteTable, "demo-dev-rtb".to_string(), Action::Update),
        ]
    );
}

#[test]
fn a_subnet_of_the_same_cidr_in_another_vpc_is_not_ours_to_keep() {
    let spec = spec();
    let mut o = converged(&spec);
    o.subnets[0].vpc_id = "vpc-other".into();
    let infra = infra_for(&spec, &o);
    assert_eq!(infra.subnets[0].subnet.id, None, "matched by CIDR inside our VPC only");
    assert_eq!(infra.subnets[1].subnet.id.as_deref(), Some("subnet-000b"));
    let extra: Vec<(Removable, &str)> = infra.removals.iter().map(|r| (r.what, r.id.as_str())).collect();
    assert_eq!(extra, [(Removable::Subnet, "subnet-000a")]);
}

#[test]
fn the_flat_plan_is_the_typed_plans_view() {
    let spec = spec();
    let mut observed = vec![Observed::default(), converged(&spec)];
    observed.extend(partial_steps(&spec).into_iter().map(|s| s.observed));
    let mut drifted = converged(&spec);
    drifted.instances.push(instance("i-wz", NodeRole::Worker, "running", "2025-01-01T09:00:00Z"));
    drifted.subnets.push(subnet("subnet-000c", "10.20.3.0/24", "eu-west-3c", true));
    drifted.vpcs.insert(0, Vpc { id: "vpc-0000".into(), ..vpc(false) });
    observed.push(drifted);
    for o in &observed {
        let infra = infra_for(&spec, o);
        let flat = infra.to_plan();
        assert_eq!(flat.changes, plan_for(&spec, o).changes);
        assert_eq!(serde_json::to_value(&flat).unwrap(), serde_json::to_value(plan_for(&spec, o)).unwrap());
    }
}

#[test]
fn instance_groups_carry_their_ids_as_lists() {
    let spec = spec();
    let mut o = converged(&spec);
    o.instances.push(instance("i-wz", NodeRole::Worker, "running", "2025-01-01T09:00:00Z"));
    o.instances.iter_mut().find(|i| i.id == "i-w1").unwrap().state = "stopped".into();
    let infra = infra_for(&spec, &o);
    let w = infra.instances.iter().find(|g| g.role == NodeRole::Worker).unwrap();
    assert_eq!(w.kept, ["i-wz", "i-w0", "i-w1"]);
    assert_eq!(w.start, ["i-w1"]);
    assert_eq!(w.terminate, ["i-w2"]);
    assert_eq!((w.create, w.launch), (false, 0));
    // The flat plan shows them as it always has: one comma-joined id.
    assert_eq!(instances(&infra.to_plan(), NodeRole::Worker).id.as_deref(), Some("i-wz,i-w0,i-w1"));
}

#[test]
fn typed_fixes_per_kind() {
    let spec = spec();
    let steps = partial_steps(&spec);
    let at = |name: &str| infra_for(&spec, &steps.iter().find(|s| s.name == name).unwrap().observed);
    assert!(at("02_vpc_without_dns_hostnames").vpc.fix.enable_dns_hostnames);
    assert!(at("03_subnets_without_public_ip").subnets.iter().all(|s| s.subnet.fix.map_public_ip));
    assert!(at("05_igw_not_attached").gateway.fix.attach);
    let rtb = at("07_route_table_without_route").route_table;
    assert_eq!(rtb.fix.default_route, Some(DefaultRoute::Add));
    assert_eq!(rtb.fix.associate, [net("10.20.1.0/24"), net("10.20.2.0/24")]);
    let mut o = converged(&spec);
    o.route_tables[0].default_route = Some("nat-0001".into());
    assert_eq!(
        infra_for(&spec, &o).route_table.fix.default_route,
        Some(DefaultRoute::Replace { current: "nat-0001".into() })
    );
    let iam = at("12_profiles_without_role").iam;
    assert_eq!(iam.len(), 2);
    assert!(
        iam.iter().all(|i| i.profile.fix.add_role.as_ref() == Some(&i.name) && i.iam_role.fix == Default::default())
    );
    let empty = infra_for(&spec, &Observed::default());
    assert_eq!(empty.security_group.fix.authorize, ingress_rules(&spec));
    assert!(empty.needs_launch());
    assert!(!infra_for(&spec, &converged(&spec)).needs_launch());
}

#[test]
fn drift_scale_down_retires_joined_workers_and_terminates_the_others() {
    let spec = spec();
    let mut o = converged(&spec);
    // Two extra workers, both newer than the three kept: i-w3 joined the cluster (its host key
    // was recorded), i-w4 never did.
    let mut joined = instance("i-w3", NodeRole::Worker, "running", "2025-01-02T10:00:00Z");
    joined.host_key = Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBZ".into());
    o.instances.push(joined);
    o.instances.push(instance("i-w4", NodeRole::Worker, "running", "2025-01-02T11:00:00Z"));
    let plan = plan_for(&spec, &o);
    let w = instances(&plan, NodeRole::Worker);
    assert_eq!(w.fixes, [Fix::Retire { ids: vec!["i-w3".into()] }, Fix::Terminate { ids: vec!["i-w4".into()] }]);
    assert_eq!(
        w.fixes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["drain, remove from the cluster, then terminate i-w3", "terminate i-w4"]
    );
    let infra = crate::plan::diff_infra(&spec, &o, None).unwrap();
    let g = infra.instances.iter().find(|g| g.role == NodeRole::Worker).unwrap();
    assert_eq!((g.retire.as_slice(), g.terminate.as_slice()), (&["i-w3".to_string()][..], &["i-w4".to_string()][..]));
}

#[test]
fn drift_a_worker_marked_for_replacement_is_replaced_then_retired() {
    let spec = spec();
    let mut o = converged(&spec);
    // i-w1 (joined) is marked by `tagstack replace`: not counted, so one launch, and retired.
    let w1 = o.instances.iter_mut().find(|i| i.id == "i-w1").unwrap();
    w1.retiring = true;
    w1.host_key = Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBZ".into());
    let plan = plan_for(&spec, &o);
    let w = instances(&plan, NodeRole::Worker);
    assert_eq!(w.fixes, [Fix::Launch { count: 1 }, Fix::Retire { ids: vec!["i-w1".into()] }]);
    assert_eq!(w.note.as_deref(), Some("3 wanted, 3 running or stopped, 1 being replaced"));
    assert_eq!(w.id.as_deref(), Some("i-w0,i-w2"));
    let infra = crate::plan::diff_infra(&spec, &o, None).unwrap();
    let g = infra.instances.iter().find(|g| g.role == NodeRole::Worker).unwrap();
    assert_eq!(g.replacing, ["i-w1"]);
    // A control plane is never replaced this way: the mark is ignored on it.
    let mut o = converged(&spec);
    o.instances.iter_mut().find(|i| i.role == NodeRole::ControlPlane).unwrap().retiring = true;
    assert!(plan_for(&spec, &o).is_converged());
}

// ---- backup bucket (issue 12) --------------------------------------------------------------

fn spec_with_backup(days: u32) -> Spec {
    use crate::config::testing::{AWS_BASE, SECOND_SUBNET, parse_with_key};
    parse_with_key(
        &format!("{AWS_BASE}{SECOND_SUBNET}\n[workers]\ncount = 3\n[backup]\nretention_days = {days}\n"),
        PUBLIC_KEY,
    )
}

fn with_bucket(seen: super::observed::BucketSeen) -> Observed {
    let mut o = converged(&spec());
    o.backup = super::observed::BackupBucket { name: "tagstack-demo-dev-123456789012".into(), seen };
    o
}

fn bucket_change(plan: &Plan) -> Option<&Change> {
    plan.changes.iter().find(|c| c.kind == Kind::BackupBucket)
}

#[test]
fn backups_wanted_create_a_configured_bucket_and_converge_on_one() {
    use super::observed::{Bucket, BucketSeen};
    let spec = spec_with_backup(7);
    let plan = diff(&spec, &with_bucket(BucketSeen::Absent), None).unwrap();
    let c = bucket_change(&plan).unwrap();
    assert_eq!((c.action, c.name.as_str(), c.id.as_deref()), (Action::Create, "tagstack-demo-dev-123456789012", None));
    assert_eq!(
        c.fixes,
        [Fix::EnforceBucketOwner, Fix::BlockPublicAccess, Fix::EncryptByDefault, Fix::ExpireAfter { days: 7 }]
    );
    // The bucket is the last entry: every plan without one is unchanged.
    assert_eq!(plan.changes.last().map(|c| c.kind), Some(Kind::BackupBucket));

    let good = Bucket { encrypted: true, public_access_blocked: true, retention_days: Some(7), owner_enforced: true };
    let plan = diff(&spec, &with_bucket(BucketSeen::Ours(good.clone())), None).unwrap();
    assert!(plan.is_converged(), "{:?}", bucket_change(&plan));

    let drift = Bucket { public_access_blocked: false, retention_days: Some(30), ..good };
    let plan = diff(&spec, &with_bucket(BucketSeen::Ours(drift)), None).unwrap();
    let c = bucket_change(&plan).unwrap();
    assert_eq!(c.action, Action::Update);
    assert_eq!(c.fixes, [Fix::BlockPublicAccess, Fix::ExpireAfter { days: 7 }]);
}

#[test]
fn an_unconfigured_bucket_is_kept_and_a_foreign_one_refused_only_when_wanted() {
    use super::observed::{Bucket, BucketSeen};
    // Without [backup]: nothing, a kept bucket of ours (never deleted by `up`), a foreign one ignored.
    let plan = diff(&spec(), &with_bucket(BucketSeen::Absent), None).unwrap();
    assert!(bucket_change(&plan).is_none());
    let plan = diff(&spec(), &with_bucket(BucketSeen::Ours(Bucket::default())), None).unwrap();
    let c = bucket_change(&plan).unwrap();
    assert_eq!((c.action, c.fixes.len()), (Action::Keep, 0));
    assert!(c.note.as_deref().unwrap().contains("--delete-backups"));
    assert!(plan.is_converged());
    let foreign = BucketSeen::Foreign { why: "it has no tags".into() };
    let plan = diff(&spec(), &with_bucket(foreign.clone()), None).unwrap();
    assert!(bucket_change(&plan).is_none());
    // With [backup]: a foreign bucket stops the plan, naming it.
    let err = diff(&spec_with_backup(7), &with_bucket(foreign), None).unwrap_err();
    assert_eq!(
        err,
        PlanError::ForeignBucket { name: "tagstack-demo-dev-123456789012".into(), why: "it has no tags".into() }
    );
    assert!(err.to_string().contains("tagstack will not use or change it"));
}

#[test]
fn down_keeps_the_bucket_unless_told_and_deletes_it_independently() {
    use super::observed::{Bucket, BucketSeen};
    use super::{Backups, Op, teardown_with};
    let o = with_bucket(BucketSeen::Ours(Bucket::default()));
    let kept = teardown(&o);
    assert_eq!(kept.kept_bucket.as_deref(), Some("tagstack-demo-dev-123456789012"));
    assert!(kept.changes.iter().all(|c| c.kind != Kind::BackupBucket));
    assert_eq!(kept.changes, teardown(&converged(&spec())).changes);

    let gone = teardown_with(&o, Backups::Delete);
    assert_eq!(gone.kept_bucket, None);
    let step = gone.steps.iter().find(|s| matches!(s.op, Op::DeleteBucket { .. })).unwrap();
    assert_eq!(step.op, Op::DeleteBucket { name: "tagstack-demo-dev-123456789012".into() });
    assert!(step.after.is_empty(), "nothing holds the bucket");
    assert_eq!(gone.report_order().last().map(|&i| gone.changes[i].kind), Some(Kind::BackupBucket));

    // A foreign bucket is neither kept (not ours to mention) nor deleted.
    let foreign = with_bucket(BucketSeen::Foreign { why: "x".into() });
    let t = teardown_with(&foreign, Backups::Delete);
    assert!(t.changes.iter().all(|c| c.kind != Kind::BackupBucket));
    assert_eq!(t.kept_bucket, None);
}

/// An environment launched at hop limit 2, whose worker role still has the EBS CSI policy:
/// the infra stage keeps that policy (the controller of the old layout runs on a worker), and
/// the plan lists the hop limits and the policy for `up` to change after its cluster stage.
fn legacy(spec: &Spec) -> Observed {
    let mut o = converged(spec);
    for i in &mut o.instances {
        i.imds_hop_limit = Some(2);
    }
    let worker = spec.id.iam_name(NodeRole::Worker);
    let ebs = inline_policy_values(NodeRole::ControlPlane).into_iter().find(|(n, _)| n == "ebs-csi").unwrap();
    o.roles.iter_mut().find(|r| r.name == worker).unwrap().inline_policies.push(ebs);
    o
}

#[test]
fn a_legacy_environment_keeps_the_worker_policy_in_the_infra_stage_and_lists_the_hardening() {
    let spec = spec();
    let o = legacy(&spec);
    let infra = diff_infra(&spec, &o, None).unwrap();
    let worker = spec.id.iam_name(NodeRole::Worker);
    assert_eq!(infra.hardening.hop_limit, ["i-cp0", "i-w0", "i-w1", "i-w2"]);
    assert_eq!(infra.hardening.policies, [(worker.clone(), "ebs-csi".to_string())]);
    let plan = infra.to_plan();
    assert!(plan.is_converged(), "the infra stage has nothing to do: {:#?}", plan.changes);
    assert!(plan.hardening.is_some());
    let text = describe(&plan, "demo/dev");
    assert!(text.contains("imds hop limit    i-w0 -> 1"), "{text}");
    assert!(text.contains(&format!("role policy       {worker}/ebs-csi")), "{text}");
    assert!(!text.contains("Nothing to do"), "{text}");
}

#[test]
fn an_environment_at_hop_limit_1_has_no_hardening_and_drops_a_leftover_worker_policy() {
    let spec = spec();
    let converged_plan = diff_infra(&spec, &converged(&spec), None).unwrap();
    assert!(converged_plan.hardening.is_empty());
    assert!(converged_plan.to_plan().hardening.is_none());
    // Hop limits already lowered (a hardening whose policy delete failed): the infra stage
    // deletes the policy itself, the controller having moved before the hop limits did.
    let mut o = legacy(&spec);
    for i in &mut o.instances {
        i.imds_hop_limit = Some(1);
    }
    let plan = plan_for(&spec, &o);
    assert!(plan.hardening.is_none());
    let role = change(&plan, Kind::IamRole, &spec.id.iam_name(NodeRole::Worker));
    assert_eq!(role.action, Action::Update);
    assert!(role.fixes.iter().any(|f| f.to_string().contains("ebs-csi")), "{:?}", role.fixes);
}

/// An instance that reports no hop limit (moto, or an answer without MetadataOptions) is not
/// taken for a legacy one, and a terminated legacy instance does not count.
#[test]
fn only_live_instances_reporting_a_higher_hop_limit_are_hardened() {
    let spec = spec();
    let mut o = converged(&spec);
    o.instances[1].imds_hop_limit = None;
    o.instances[2].imds_hop_limit = Some(2);
    o.instances[2].state = "terminated".into();
    o.instances.push(instance("i-w9", NodeRole::Worker, "running", "2025-01-01T11:00:00Z"));
    let infra = diff_infra(&spec, &o, None).unwrap();
    assert!(infra.hardening.is_empty(), "{:?}", infra.hardening);
}
