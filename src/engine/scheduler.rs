//! Which queued updates may start now: Tilt's build control, as a pure function of the state.
//!
//! Rules (Tilt's `internal/engine/buildcontrol`):
//! - at most `max_parallel_updates` updates at once;
//! - a local `cmd` without `allow_parallel` runs alone: nothing starts beside it, and it waits
//!   for running updates to finish;
//! - a resource's first update waits until each of its `resource_deps` has ever been ready;
//!   later updates ignore deps;
//! - triggered resources go first (in trigger order), then never-built ones in Tiltfile order,
//!   then the rest in Tiltfile order;
//! - among never-built ones, Kubernetes resources that create Namespaces or CRDs (Tilt's
//!   `uncategorized`, usually) go first: other resources' objects need them, and an apply that
//!   waits for its namespace must not hold a slot that its creator waits for.

use std::collections::HashMap;

use super::state::{EngineState, ResourceState};

/// Whether a resource applies Namespaces or CRDs, which other resources' objects may need.
fn creates_cluster_prerequisites(r: &ResourceState) -> bool {
    r.spec.k8s.as_ref().is_some_and(|k| {
        k.manifests.iter().any(|m| {
            matches!(
                m.get("kind").and_then(|k| k.as_str()),
                Some("Namespace" | "CustomResourceDefinition")
            )
        })
    })
}

/// Names of the resources to start now, in start order.
pub fn next_builds(
    state: &EngineState,
    max_parallel: usize,
    trigger_order: &[String],
) -> Vec<String> {
    let max_parallel = max_parallel.max(1);
    let by_name: HashMap<&str, &ResourceState> = state
        .resources
        .iter()
        .map(|r| (r.name.as_str(), &**r))
        .collect();
    let building: Vec<&ResourceState> = state
        .resources
        .iter()
        .filter(|r| r.current.is_some())
        .map(|r| &**r)
        .collect();
    if building.iter().any(|r| !r.allow_parallel()) {
        return Vec::new();
    }
    let ready_to_go = |r: &ResourceState| {
        r.spec.enabled
            && r.queued.is_some()
            && r.current.is_none()
            && (r.has_built()
                || r.spec
                    .resource_deps
                    .iter()
                    .all(|d| by_name.get(d.as_str()).is_none_or(|dep| dep.ever_ready)))
    };
    let mut order: Vec<&ResourceState> = Vec::new();
    for name in trigger_order {
        if let Some(r) = by_name.get(name.as_str())
            && ready_to_go(r)
            && !order.iter().any(|o| o.name == r.name)
        {
            order.push(r);
        }
    }
    for (unbuilt_pass, prerequisites_only) in [(true, true), (true, false), (false, false)] {
        for r in state.resources.iter() {
            if r.has_built() != unbuilt_pass
                && (!prerequisites_only || creates_cluster_prerequisites(r))
                && ready_to_go(r)
                && !order.iter().any(|o| o.name == r.name)
            {
                order.push(r);
            }
        }
    }
    let mut running = building.len();
    let mut serial_running = false;
    let mut out = Vec::new();
    for r in order {
        if running >= max_parallel || serial_running {
            break;
        }
        if !r.allow_parallel() && running > 0 {
            continue;
        }
        out.push(r.name.clone());
        running += 1;
        if !r.allow_parallel() {
            serial_running = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::state::{BuildReason, BuildRecord};
    use crate::model::{LocalSpec, Resource, ResourceType};
    use std::sync::Arc;

    fn local(name: &str, deps: &[&str], parallel: bool) -> ResourceState {
        let mut r = Resource::new(name, ResourceType::Local);
        r.resource_deps = deps.iter().map(|s| s.to_string()).collect();
        r.local = Some(LocalSpec {
            cmd: vec!["true".into()],
            serve_cmd: vec![],
            dir: "/".into(),
            serve_dir: "/".into(),
            deps: vec![],
            ignore: vec![],
            env: Default::default(),
            serve_env: Default::default(),
            allow_parallel: parallel,
            readiness_probe: None,
        });
        let mut s = ResourceState::new(r);
        s.queued = Some(BuildReason::Initial);
        s
    }

    fn state(rs: Vec<ResourceState>) -> EngineState {
        EngineState {
            resources: rs.into_iter().map(Arc::new).collect(),
            ..Default::default()
        }
    }

    fn building(mut r: ResourceState) -> ResourceState {
        r.queued = None;
        r.current = Some(BuildRecord {
            start: std::time::SystemTime::now(),
            end: None,
            duration: None,
            reason: BuildReason::Initial,
            result: None,
            error: None,
        });
        r
    }

    #[test]
    fn serial_cmds_run_one_at_a_time() {
        let s = state(vec![local("a", &[], false), local("b", &[], false)]);
        assert_eq!(next_builds(&s, 3, &[]), vec!["a"]);
        let s = state(vec![
            building(local("a", &[], true)),
            local("b", &[], false),
        ]);
        assert!(next_builds(&s, 3, &[]).is_empty());
        let s = state(vec![
            building(local("a", &[], false)),
            local("b", &[], true),
        ]);
        assert!(next_builds(&s, 3, &[]).is_empty());
    }

    #[test]
    fn parallel_bound_and_deps() {
        let s = state(vec![
            local("a", &[], true),
            local("b", &["a"], true),
            local("c", &[], true),
            local("d", &[], true),
            local("e", &[], true),
        ]);
        assert_eq!(next_builds(&s, 3, &[]), vec!["a", "c", "d"]);
        let mut a = local("a", &[], true);
        a.queued = None;
        a.ever_ready = true;
        let s = state(vec![a, local("b", &["a"], true)]);
        assert_eq!(next_builds(&s, 3, &[]), vec!["b"]);
    }

    #[test]
    fn namespaces_and_crds_are_applied_first() {
        let mut ns = ResourceState::new({
            let mut r = Resource::new("uncategorized", ResourceType::K8s);
            r.k8s = Some(crate::model::K8sSpec {
                objects: vec![],
                port_forwards: vec![],
                pod_readiness: "ignore".into(),
                manifests: vec![Arc::new(
                    serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}),
                )],
                image_fields: vec![],
                extra_pod_selectors: vec![],
                discovery_strategy: String::new(),
                custom_deploy: None,
            });
            r
        });
        ns.queued = Some(BuildReason::Initial);
        let s = state(vec![local("a", &[], true), local("b", &[], true), ns]);
        assert_eq!(next_builds(&s, 2, &[]), vec!["uncategorized", "a"]);
    }

    #[test]
    fn triggers_go_first_and_disabled_never_run() {
        let mut c = local("c", &[], true);
        c.queued = Some(BuildReason::Trigger);
        let mut d = local("d", &[], true);
        d.spec.enabled = false;
        let s = state(vec![local("a", &[], true), local("b", &[], true), c, d]);
        assert_eq!(next_builds(&s, 2, &["c".to_string()]), vec!["c", "a"]);
    }
}
