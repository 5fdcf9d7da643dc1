//! Assembly: turns what the Tiltfile declared ([`State`]) into the model, as Tilt's
//! `assemble` + `translate*` do: image dependencies, Kubernetes and Compose resources (in
//! their own modules), local resources, enabled resources, dependency checks, and Tilt's
//! resource order (Kubernetes, Compose, local, then `uncategorized`).

pub mod compose;
pub mod images;
pub mod k8s;

use std::collections::BTreeSet;

use crate::graph::ResourceGraph;
use crate::model::{Resource, ResourceType, TiltfileResult};
use crate::tiltfile::state::State;
use crate::tiltfile::suggest::did_you_mean;

/// Assembles the result; an `Err` is a load error (no position).
pub fn assemble(mut state: State) -> Result<TiltfileResult, String> {
    let unused = state.steps_used.iter().filter(|u| !**u).count();
    if unused > 0 {
        return Err(format!(
            "found {unused} live_update steps that were created but not used in a live_update"
        ));
    }
    images::link_image_deps(&mut state.images)?;

    let k8s = k8s::assemble(&mut state)?;
    // Kubernetes and Docker Compose resources may be mixed, as in current Tilt.
    let compose = compose::assemble(&mut state)?;

    let has_compose = !compose.resources.is_empty();
    let mut resources: Vec<Resource> = k8s.resources;
    resources.extend(compose.resources);
    for local in std::mem::take(&mut state.locals) {
        let mut r = Resource::new(&local.name, ResourceType::Local);
        r.trigger_mode = local
            .trigger_mode
            .unwrap_or(state.settings.default_trigger_mode);
        r.auto_init = local.auto_init;
        r.resource_deps = local.resource_deps;
        r.labels = local.labels;
        r.links = local.links;
        r.local = Some(local.spec);
        resources.push(r);
    }
    check_duplicate_names(&resources)?;

    let mut used_images: BTreeSet<String> = BTreeSet::new();
    for r in &resources {
        used_images.extend(r.image_refs.iter().cloned());
    }
    if let Some(u) = &k8s.uncategorized {
        used_images.extend(u.image_refs.iter().cloned());
    }
    let suppressed = &state.settings.suppress_unused_image_warnings;
    for image in &state.images {
        if used_images.contains(&image.image_ref)
            || suppressed.iter().any(|s| s == "*" || s == &image.image_ref)
        {
            continue;
        }
        let kind = if !has_compose {
            "Kubernetes"
        } else {
            "Docker Compose"
        };
        state.warnings.push(format!(
            "Image not used in any {kind} config:\n    ✕ {}\nSkipping this image build\nIf this is deliberate, suppress this warning with: update_settings(suppress_unused_image_warnings=[\"{}\"])",
            image.image_ref, image.image_ref
        ));
    }
    let images = std::mem::take(&mut state.images)
        .into_iter()
        .filter(|i| used_images.contains(&i.image_ref))
        .collect();

    apply_enabled(&state, &mut resources)?;
    if let Some(u) = k8s.uncategorized {
        resources.push(u);
    }
    drop_unknown_deps(&mut resources, &mut state.warnings);
    ResourceGraph::from_resources(&resources).map_err(|e| e.to_string())?;

    Ok(TiltfileResult {
        resources,
        images,
        settings: state.settings,
        config_files: state.config_files,
        warnings: state.warnings,
        env: Default::default(),
    })
}

fn check_duplicate_names(resources: &[Resource]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for r in resources {
        if !seen.insert(r.name.as_str()) {
            let kind = match r.kind {
                ResourceType::Local => "local_resource",
                ResourceType::DockerCompose => "dc_resource",
                ResourceType::K8s | ResourceType::K8sCustomDeploy => "k8s_resource",
            };
            return Err(format!("{kind} named {:?} already exists", r.name));
        }
    }
    Ok(())
}

/// Resources named on the command line (when `config.parse` is not used) or by
/// `config.set_enabled_resources`, plus their transitive `resource_deps`; the rest are disabled.
fn apply_enabled(state: &State, resources: &mut [Resource]) -> Result<(), String> {
    let requested: Vec<String> = match &state.enabled_resources {
        Some(list) => list.clone(),
        None if !state.config_parsed && !state.args.is_empty() => state.args.clone(),
        None => return Ok(()),
    };
    let names: Vec<&str> = resources.iter().map(|r| r.name.as_str()).collect();
    for name in &requested {
        if !names.contains(&name.as_str()) {
            return Err(format!(
                "no resource found with name {name:?}{}",
                did_you_mean(name, names.iter().copied())
            ));
        }
    }
    let mut enabled: BTreeSet<String> = BTreeSet::new();
    let mut queue = requested;
    while let Some(name) = queue.pop() {
        if !enabled.insert(name.clone()) {
            continue;
        }
        if let Some(r) = resources.iter().find(|r| r.name == name) {
            queue.extend(r.resource_deps.iter().cloned());
        }
    }
    for r in resources.iter_mut() {
        r.enabled = enabled.contains(&r.name);
    }
    Ok(())
}

/// Drops `resource_deps` naming unknown resources, with a warning (as Tilt does).
fn drop_unknown_deps(resources: &mut [Resource], warnings: &mut Vec<String>) {
    let names: BTreeSet<String> = resources.iter().map(|r| r.name.clone()).collect();
    for r in resources.iter_mut() {
        let mut kept = Vec::new();
        for dep in std::mem::take(&mut r.resource_deps) {
            if names.contains(&dep) {
                if !kept.contains(&dep) {
                    kept.push(dep);
                }
            } else {
                warnings.push(format!(
                    "resource {:?} depends on unknown resource {dep:?}; ignoring the dependency{}",
                    r.name,
                    did_you_mean(&dep, names.iter().map(String::as_str))
                ));
            }
        }
        r.resource_deps = kept;
    }
}
