//! Kubernetes assembly, as Tilt's `assembleK8s`/`translateK8s` do it: picks the workloads
//! (objects matching a `k8s_kind` selector or containing an image), names them (shortest
//! unique `name[:kind[:namespace[:group]]]`, or `workload_to_resource_function`), attaches
//! Services whose selector matches a workload's pod template, gives other pod-template objects
//! their own resource, applies `k8s_resource` options in call order (renames, new resources
//! from `objects=`), injects image dependencies, infers pod readiness, and leaves the rest in
//! `uncategorized`. `k8s_custom_deploy` resources come first, as Tilt creates them at call time.

use std::collections::{BTreeMap, HashMap};

use crate::model::{K8sSpec, LiveUpdateStep, Resource, ResourceType, TriggerMode};
use crate::tiltfile::k8s_objects::{self, ImageLocator, ObjectSelector};
use crate::tiltfile::state::{CustomDeployDecl, K8sKind, K8sObject, State};
use crate::tiltfile::suggest::did_you_mean;

use super::images::{BuildIndex, ref_matches, with_base_images};

/// Kubernetes resources in Tilt's order, and the `uncategorized` resource if any.
#[derive(Debug, Default)]
pub struct K8sAssembly {
    pub resources: Vec<Resource>,
    pub uncategorized: Option<Resource>,
}

/// A workload object as `workload_to_resource_function` sees it (a `K8sObjectID`).
#[derive(Debug, Clone)]
pub struct WorkloadCandidate {
    /// Index into `State::k8s_objects`.
    pub index: usize,
    pub name: String,
    pub kind: String,
    pub namespace: String,
    pub group: String,
}

/// The kinds Tilt registers before any Tiltfile runs: `Job` (pods must succeed) and
/// `CronJob` (pods are ignored), both in `batch/v1`.
pub fn initial_kinds() -> Vec<K8sKind> {
    [("Job", "succeeded"), ("CronJob", "ignore")]
        .into_iter()
        .filter_map(|(kind, readiness)| {
            ObjectSelector::partial("batch/v1", kind, "", "")
                .ok()
                .map(|selector| K8sKind {
                    selector,
                    image_locators: Vec::new(),
                    pod_readiness: readiness.to_owned(),
                })
        })
        .collect()
}

/// The registered kinds, built-in ones included.
fn effective_kinds(state: &State) -> Vec<K8sKind> {
    if state.k8s_kinds_initialized {
        state.k8s_kinds.clone()
    } else {
        let mut kinds = initial_kinds();
        kinds.extend(state.k8s_kinds.iter().cloned());
        kinds
    }
}

/// What image discovery needs: kinds, their locators, and builds matched in env vars.
struct Finder<'a> {
    state: &'a State,
    kinds: Vec<K8sKind>,
    locators: Vec<ImageLocator>,
    env_images: Vec<String>,
    builds: BuildIndex<'a>,
    /// For each object that is a Service with a selector: the selector.
    service_selectors: Vec<Option<Vec<(String, String)>>>,
    /// For each object: the image references it names, found once.
    images: Vec<std::cell::OnceCell<Result<Vec<String>, String>>>,
}

impl<'a> Finder<'a> {
    fn new(state: &'a State) -> Self {
        let kinds = effective_kinds(state);
        let locators = kinds
            .iter()
            .flat_map(|k| k.image_locators.iter().cloned())
            .collect();
        let env_images = state
            .images
            .iter()
            .filter(|i| i.match_in_env_vars)
            .map(|i| i.image_ref.clone())
            .collect();
        Finder {
            state,
            kinds,
            locators,
            env_images,
            builds: BuildIndex::new(&state.images),
            service_selectors: state
                .k8s_objects
                .iter()
                .map(K8sObject::service_selector)
                .collect(),
            images: state
                .k8s_objects
                .iter()
                .map(|_| std::cell::OnceCell::new())
                .collect(),
        }
    }

    /// The image references object `index` names.
    fn images(&self, index: usize) -> Result<&[String], String> {
        let o = &self.state.k8s_objects[index];
        self.images[index]
            .get_or_init(|| {
                k8s_objects::find_images(o, &self.locators, &self.env_images, ref_matches)
            })
            .as_deref()
            .map_err(Clone::clone)
    }

    fn is_workload(&self, index: usize) -> Result<bool, String> {
        let o = &self.state.k8s_objects[index];
        if self.kinds.iter().any(|k| k.selector.matches(o)) {
            return Ok(true);
        }
        let images = self
            .images(index)
            .map_err(|e| format!("finding image in {}/{}: {e}", o.kind, o.name))?;
        Ok(!images.is_empty())
    }

    fn workloads(&self) -> Result<Vec<usize>, String> {
        let mut out = Vec::new();
        for i in 0..self.state.k8s_objects.len() {
            if self.is_workload(i)? {
                out.push(i);
            }
        }
        Ok(out)
    }
}

/// The objects that will become workload resources, in order.
pub fn workload_candidates(state: &State) -> Vec<WorkloadCandidate> {
    let finder = Finder::new(state);
    state
        .k8s_objects
        .iter()
        .enumerate()
        .filter(|(i, _)| finder.is_workload(*i).unwrap_or(false))
        .map(|(index, o)| WorkloadCandidate {
            index,
            name: o.name.clone(),
            kind: o.kind.clone(),
            namespace: o.namespace_or_default().to_owned(),
            group: o.group().to_owned(),
        })
        .collect()
}

/// Shortest unique candidate names; true duplicates get `:<index>` after the longest one.
fn unique_names(objects: &[&K8sObject]) -> Vec<String> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for o in objects {
        for n in o.potential_names() {
            *counts.entry(n).or_default() += 1;
        }
    }
    objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let names = o.potential_names();
            names
                .iter()
                .find(|n| counts.get(*n) == Some(&1))
                .cloned()
                .unwrap_or_else(|| format!("{}:{i}", names.last().cloned().unwrap_or_default()))
        })
        .collect()
}

fn workload_resource_names(state: &State, workloads: &[usize]) -> Result<Vec<String>, String> {
    let objects: Vec<&K8sObject> = workloads.iter().map(|i| &state.k8s_objects[*i]).collect();
    if !state.workload_to_resource_fn {
        return Ok(unique_names(&objects));
    }
    let mut taken: HashMap<&str, usize> = HashMap::new();
    let mut names = Vec::new();
    for (pos, index) in workloads.iter().enumerate() {
        let o = objects[pos];
        let Some(name) = state.workload_names.get(index) else {
            return Err(format!(
                "error applying workload_to_resource_function: no resource name for '{}'",
                o.object_id_string()
            ));
        };
        if let Some(other) = taken.get(name.as_str()) {
            return Err(format!(
                "error applying workload_to_resource_function: both '{}' and '{}' mapped to resource name '{name}'",
                o.object_id_string(),
                objects[*other].object_id_string()
            ));
        }
        taken.insert(name, pos);
        names.push(name.clone());
    }
    Ok(names)
}

/// A Kubernetes resource being assembled.
#[derive(Debug, Default)]
struct Res {
    name: String,
    /// Indices into `State::k8s_objects`, in the order they joined.
    entities: Vec<usize>,
    /// Image references found in the entities, first occurrence first.
    found_images: Vec<String>,
    custom: Option<CustomDeployDecl>,
    manually_grouped: bool,
    port_forwards: Vec<crate::model::PortForward>,
    extra_pod_selectors: Vec<BTreeMap<String, String>>,
    trigger_mode: Option<TriggerMode>,
    auto_init: Option<bool>,
    resource_deps: Vec<String>,
    links: Vec<crate::model::Link>,
    labels: Vec<String>,
    pod_readiness: String,
    discovery_strategy: String,
}

impl Res {
    fn named(name: &str) -> Res {
        Res {
            name: name.to_owned(),
            ..Default::default()
        }
    }

    fn add_entity(&mut self, index: usize, finder: &Finder) -> Result<(), String> {
        self.entities.push(index);
        for image in finder.images(index)? {
            if !self.found_images.contains(image) {
                self.found_images.push(image.clone());
            }
        }
        Ok(())
    }
}

/// Why a new Kubernetes resource may not be called `name`, if it may not: another Kubernetes
/// resource, a local resource or a Docker Compose service already has the name.
fn name_conflict(state: &State, resources: &[Res], name: &str) -> Option<String> {
    if resources.iter().any(|r| r.name == name) {
        Some(format!("k8s_resource named {name:?} already exists"))
    } else if state.locals.iter().any(|l| l.name == name) {
        Some(format!("local_resource named {name:?} already exists"))
    } else if state
        .compose_projects
        .iter()
        .flat_map(|p| p.services.iter())
        .any(|s| s.name == name)
    {
        Some(format!("dc_resource named {name:?} already exists"))
    } else {
        None
    }
}

/// Moves Services (from `pool`) whose selector matches a pod template of `owner` into `res`.
/// A Service must have no namespace, or the owner's.
fn attach_services(
    state: &State,
    owner: usize,
    pool: &mut Vec<usize>,
    res: &mut Res,
    finder: &Finder,
) -> Result<(), String> {
    let owner_obj = &state.k8s_objects[owner];
    for labels in owner_obj.template_labels() {
        let mut rest = Vec::new();
        for idx in std::mem::take(pool) {
            let o = &state.k8s_objects[idx];
            let selected = finder.service_selectors[idx].as_ref().is_some_and(|sel| {
                sel.iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            });
            if selected
                && (o.namespace.is_empty()
                    || o.namespace_or_default() == owner_obj.namespace_or_default())
            {
                res.add_entity(idx, finder)?;
            } else {
                rest.push(idx);
            }
        }
        *pool = rest;
    }
    Ok(())
}

fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const RESTART_CONTAINER_DEPRECATION: &str = "Found `restart_container()` LiveUpdate step in resource(s): [{}]. `restart_container()`  has been deprecated for k8s resources. We recommend the restart_process extension: https://github.com/tilt-dev/tilt-extensions/tree/master/restart_process. For more information, see https://docs.tilt.dev/live_update_reference.html#restarting-your-process";

pub fn assemble(state: &mut State) -> Result<K8sAssembly, String> {
    if state.k8s_objects.is_empty()
        && state.custom_deploys.is_empty()
        && state.k8s_resource_options.is_empty()
    {
        // Nothing Kubernetes was declared: skip building selectors and indexes.
        return Ok(K8sAssembly::default());
    }
    collect_secrets(state);
    let state: &State = state;
    let finder = Finder::new(state);

    let mut resources: Vec<Res> = state
        .custom_deploys
        .iter()
        .map(|c| Res {
            name: c.name.clone(),
            custom: Some(c.clone()),
            ..Default::default()
        })
        .collect();

    // Workloads, each with the Services that select its pods. Only Services with a selector
    // can be attached: the others wait aside (indices keep the YAML order).
    let workloads = finder.workloads()?;
    let mut is_workload = vec![false; state.k8s_objects.len()];
    for &i in &workloads {
        is_workload[i] = true;
    }
    let (mut unresourced, selectorless): (Vec<usize>, Vec<usize>) = (0..state.k8s_objects.len())
        .filter(|&i| !is_workload[i])
        .partition(|&i| finder.service_selectors[i].is_some());
    let names = workload_resource_names(state, &workloads)?;
    for (index, name) in workloads.iter().zip(names) {
        if let Some(conflict) = name_conflict(state, &resources, &name) {
            return Err(format!(
                "error making resource for workload {}: {conflict}",
                state.k8s_objects[*index].object_id_string()
            ));
        }
        let mut res = Res::named(&name);
        res.add_entity(*index, &finder)?;
        attach_services(state, *index, &mut unresourced, &mut res, &finder)?;
        resources.push(res);
    }
    unresourced.extend(selectorless);
    unresourced.sort_unstable();

    // Other objects with pod templates get a resource named after the object.
    let (with_template, mut rest): (Vec<usize>, Vec<usize>) = unresourced
        .into_iter()
        .partition(|i| !state.k8s_objects[*i].pod_templates().is_empty());
    for index in with_template {
        let name = state.k8s_objects[index].name.clone();
        let pos = match resources.iter().position(|r| r.name == name) {
            Some(pos) => pos,
            None => {
                resources.push(Res::named(&name));
                resources.len() - 1
            }
        };
        resources[pos].entities.push(index);
        let mut res = std::mem::take(&mut resources[pos]);
        let attached = attach_services(state, index, &mut rest, &mut res, &finder);
        resources[pos] = res;
        attached?;
    }
    let mut unresourced = rest;

    apply_options(state, &mut resources, &mut unresourced)?;

    let mut out = Vec::new();
    let mut restart_offenders = Vec::new();
    for res in resources {
        let resource = translate(state, &finder, res)?;
        if uses_restart_container(state, &resource) {
            restart_offenders.push(resource.name.clone());
        }
        out.push(resource);
    }
    if !restart_offenders.is_empty() {
        return Err(RESTART_CONTAINER_DEPRECATION.replace("{}", &restart_offenders.join(", ")));
    }

    let uncategorized = (!unresourced.is_empty()).then(|| {
        let mut r = Resource::new("uncategorized", ResourceType::K8s);
        r.trigger_mode = TriggerMode::Auto;
        r.k8s = Some(K8sSpec {
            objects: unresourced
                .iter()
                .map(|i| state.k8s_objects[*i].id())
                .collect(),
            port_forwards: Vec::new(),
            pod_readiness: "ignore".to_owned(),
            manifests: unresourced
                .iter()
                .map(|i| state.k8s_objects[*i].value.clone())
                .collect(),
            image_fields: unresourced
                .iter()
                .map(|i| k8s_objects::image_fields(&state.k8s_objects[*i], &finder.locators))
                .collect(),
            extra_pod_selectors: Vec::new(),
            discovery_strategy: String::new(),
            custom_deploy: None,
        });
        r
    });
    Ok(K8sAssembly {
        resources: out,
        uncategorized,
    })
}

/// Secret values (`data` decoded, `stringData` as is) for log scrubbing, unless disabled.
fn collect_secrets(state: &mut State) {
    if !state.settings.secret_scrub {
        return;
    }
    let mut found = Vec::new();
    for o in &state.k8s_objects {
        if o.kind != "Secret" || o.api_version != "v1" {
            continue;
        }
        if let Some(serde_json::Value::Object(data)) = o.value.get("data") {
            for v in data.values() {
                if let Some(decoded) = v.as_str().and_then(|s| k8s_objects::base64_decode(s).ok()) {
                    found.push(String::from_utf8_lossy(&decoded).into_owned());
                }
            }
        }
        if let Some(serde_json::Value::Object(data)) = o.value.get("stringData") {
            found.extend(data.values().filter_map(|v| v.as_str().map(str::to_owned)));
        }
    }
    for s in found {
        if !s.is_empty() && !state.secrets.contains(&s) {
            state.secrets.push(s);
        }
    }
}

/// Applies `k8s_resource` calls in order: new resources from `objects=`, option merging,
/// renames, and objects moved out of the unresourced pool.
fn apply_options(
    state: &State,
    resources: &mut Vec<Res>,
    unresourced: &mut Vec<usize>,
) -> Result<(), String> {
    if state.k8s_resource_options.is_empty() {
        return Ok(());
    }
    // Fragments are computed once, over every object, before any option is applied (and
    // only when some option names objects).
    let mut fragments: HashMap<String, Vec<usize>> = HashMap::new();
    let mut full_names: Vec<String> = Vec::new();
    if state
        .k8s_resource_options
        .iter()
        .any(|o| !o.objects.is_empty())
    {
        let all = resources
            .iter()
            .flat_map(|r| r.entities.iter().copied())
            .chain(unresourced.iter().copied());
        for idx in all {
            for f in state.k8s_objects[idx].fragments() {
                fragments.entry(f).or_default().push(idx);
            }
            full_names.push(state.k8s_objects[idx].full_name());
        }
    }

    for opts in &state.k8s_resource_options {
        let target = if opts.manually_grouped {
            if let Some(conflict) = name_conflict(state, resources, &opts.new_name) {
                return Err(conflict);
            }
            let mut res = Res::named(&opts.new_name);
            res.manually_grouped = true;
            resources.push(res);
            opts.new_name.as_str()
        } else {
            opts.workload.as_str()
        };
        let Some(pos) = resources.iter().position(|r| r.name == target) else {
            let known: Vec<&str> = resources.iter().map(|r| r.name.as_str()).collect();
            return Err(format!(
                "k8s_resource at {} specified unknown resource {target:?}. known k8s resources: {}{}",
                opts.position,
                known.join(", "),
                did_you_mean(target, known.iter().copied())
            ));
        };
        {
            let r = &mut resources[pos];
            r.extra_pod_selectors
                .extend(opts.extra_pod_selectors.iter().cloned());
            if !opts.pod_readiness.is_empty() {
                r.pod_readiness = opts.pod_readiness.clone();
            }
            if !opts.discovery_strategy.is_empty() {
                r.discovery_strategy = opts.discovery_strategy.clone();
            }
            r.port_forwards.extend(opts.port_forwards.iter().cloned());
            if opts.trigger_mode.is_some() {
                r.trigger_mode = opts.trigger_mode;
            }
            if opts.auto_init.is_some() {
                r.auto_init = opts.auto_init;
            }
            r.resource_deps.extend(opts.resource_deps.iter().cloned());
            r.links.extend(opts.links.iter().cloned());
            for l in &opts.labels {
                if !r.labels.contains(l) {
                    r.labels.push(l.clone());
                }
            }
        }
        if !opts.new_name.is_empty() && opts.new_name != resources[pos].name {
            if resources.iter().any(|r| r.name == opts.new_name) {
                return Err(format!(
                    "k8s_resource at {} specified to rename {:?} to {:?}, but there already exists a resource with that name",
                    opts.position, resources[pos].name, opts.new_name
                ));
            }
            resources[pos].name = opts.new_name.clone();
        }

        let selectors = opts
            .objects
            .iter()
            .map(|o| {
                ObjectSelector::from_fragment(o)
                    .map_err(|e| format!("Error making selector from string {o:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (o, selector) in opts.objects.iter().zip(selectors) {
            let matching = fragments
                .get(&o.to_lowercase())
                .cloned()
                .unwrap_or_default();
            if matching.is_empty() {
                return Err(format!(
                    "No object identified by the fragment {o:?} could be found. Possible objects are: {}",
                    quoted_list(&full_names)
                ));
            }
            if matching.len() > 1 {
                let names: Vec<String> = matching
                    .iter()
                    .map(|i| state.k8s_objects[*i].full_name())
                    .collect();
                return Err(format!(
                    "{o:?} is not a unique fragment. Objects that match {o:?} are {}",
                    quoted_list(&names)
                ));
            }
            let found: Vec<usize> = unresourced
                .iter()
                .copied()
                .filter(|i| selector.matches(&state.k8s_objects[*i]))
                .collect();
            let Some(first) = found.first().copied() else {
                let remaining: Vec<String> = unresourced
                    .iter()
                    .map(|i| state.k8s_objects[*i].full_name())
                    .collect();
                return Err(format!(
                    "No object identified by the fragment {o:?} could be found in remaining YAML. Valid remaining fragments are: {}",
                    quoted_list(&remaining)
                ));
            };
            unresourced.retain(|i| *i != first);
            resources[pos].entities.push(first);
        }
    }
    Ok(())
}

/// Pod readiness: explicit, else from `k8s_kind` (wait, then ignore, then succeeded), else
/// `ignore` for hand-grouped resources without pod selectors or images, else `wait`.
fn infer_pod_readiness(finder: &Finder, res: &Res, has_images: bool) -> String {
    if !res.pod_readiness.is_empty() {
        return res.pod_readiness.clone();
    }
    let mut modes = Vec::new();
    for idx in &res.entities {
        let o = &finder.state.k8s_objects[*idx];
        for k in &finder.kinds {
            if k.selector.matches(o) && !k.pod_readiness.is_empty() {
                modes.push(k.pod_readiness.as_str());
            }
        }
    }
    for mode in ["wait", "ignore", "succeeded"] {
        if modes.contains(&mode) {
            return mode.to_owned();
        }
    }
    if res.manually_grouped && res.extra_pod_selectors.is_empty() && !has_images {
        return "ignore".to_owned();
    }
    "wait".to_owned()
}

fn translate(state: &State, finder: &Finder, res: Res) -> Result<Resource, String> {
    if res.entities.is_empty() && res.custom.is_none() {
        return Err(format!(
            "resource {:?}: could not associate any k8s YAML with this resource",
            res.name
        ));
    }
    let mut direct: Vec<String> = Vec::new();
    if let Some(custom) = &res.custom {
        for dep in &custom.image_deps {
            let Some(image) = finder.builds.find(dep) else {
                return Err(format!(
                    "resource {:?}: image build {dep:?} not found",
                    res.name
                ));
            };
            if !direct.contains(&image.image_ref) {
                direct.push(image.image_ref.clone());
            }
        }
    }
    for found in &res.found_images {
        if let Some(image) = finder.builds.find(found)
            && !direct.contains(&image.image_ref)
        {
            direct.push(image.image_ref.clone());
        }
    }
    let pod_readiness = infer_pod_readiness(finder, &res, !direct.is_empty());
    let kind = if res.custom.is_some() {
        ResourceType::K8sCustomDeploy
    } else {
        ResourceType::K8s
    };
    let mut r = Resource::new(&res.name, kind);
    r.trigger_mode = res
        .trigger_mode
        .unwrap_or(state.settings.default_trigger_mode);
    r.auto_init = res.auto_init.unwrap_or(true);
    r.resource_deps = res.resource_deps;
    r.labels = res.labels;
    r.links = res.links;
    r.image_refs = with_base_images(&direct, &state.images);
    r.k8s = Some(K8sSpec {
        objects: res
            .entities
            .iter()
            .map(|i| state.k8s_objects[*i].id())
            .collect(),
        port_forwards: res.port_forwards,
        pod_readiness,
        manifests: res
            .entities
            .iter()
            .map(|i| state.k8s_objects[*i].value.clone())
            .collect(),
        image_fields: res
            .entities
            .iter()
            .map(|i| k8s_objects::image_fields(&state.k8s_objects[*i], &finder.locators))
            .collect(),
        extra_pod_selectors: res.extra_pod_selectors,
        discovery_strategy: res.discovery_strategy,
        custom_deploy: res.custom.map(|c| c.spec),
    });
    Ok(r)
}

/// Does a live update of this resource (its images, or its custom deploy) restart the
/// container? That is a load error for Kubernetes resources.
fn uses_restart_container(state: &State, r: &Resource) -> bool {
    let restarts = |steps: &[LiveUpdateStep]| {
        steps
            .iter()
            .any(|s| matches!(s, LiveUpdateStep::RestartContainer {}))
    };
    let custom = r
        .k8s
        .as_ref()
        .and_then(|k| k.custom_deploy.as_ref())
        .is_some_and(|c| restarts(&c.live_update));
    custom
        || r.image_refs.iter().any(|image_ref| {
            state
                .images
                .iter()
                .find(|i| &i.image_ref == image_ref)
                .is_some_and(|i| restarts(&i.live_update))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ImageTarget;
    use crate::tiltfile::k8s_objects::parse_objects;

    fn state_with(yaml: &str) -> State {
        State {
            k8s_objects: parse_objects(yaml).unwrap(),
            ..Default::default()
        }
    }

    const TWO_FOOS: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: foo, namespace: ns1}
spec: {template: {metadata: {labels: {app: foo}}, spec: {containers: [{name: c, image: gcr.io/foo1}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: foo, namespace: ns2}
spec: {template: {metadata: {labels: {app: foo}}, spec: {containers: [{name: c, image: gcr.io/foo2}]}}}
---
apiVersion: v1
kind: Service
metadata: {name: foo, namespace: ns2}
spec: {selector: {app: foo}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
";

    #[test]
    fn names_and_service_namespaces() {
        let mut state = state_with(TWO_FOOS);
        let out = assemble(&mut state).unwrap();
        let names: Vec<&str> = out.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["foo:deployment:ns1", "foo:deployment:ns2"]);
        let second = out.resources[1].k8s.as_ref().unwrap();
        assert_eq!(
            second.objects,
            vec!["foo:Deployment:ns2", "foo:Service:ns2"]
        );
        let unc = out.uncategorized.unwrap();
        assert_eq!(unc.k8s.unwrap().objects, vec!["cfg:ConfigMap:default"]);
    }

    #[test]
    fn candidates_report_default_namespace() {
        let state = state_with(TWO_FOOS);
        let c = workload_candidates(&state);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].namespace, "ns1");
        assert_eq!(c[0].group, "apps");
    }

    #[test]
    fn true_duplicates_get_an_index() {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: busybox}]}\n";
        let mut state = state_with(&format!("{yaml}---\n{yaml}"));
        let out = assemble(&mut state).unwrap();
        let names: Vec<&str> = out.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["p:pod:default:core:0", "p:pod:default:core:1"]);
    }

    fn build(image_ref: &str) -> ImageTarget {
        ImageTarget::new(image_ref, crate::model::Builder::Docker, Default::default())
    }

    #[test]
    fn tagged_siblings_switch_to_exact_matching() {
        let images = vec![build("vandelay/app"), build("vandelay/app:jessie")];
        let index = BuildIndex::new(&images);
        let matched = |c: &str| index.find(c).map(|i| i.image_ref.clone());
        assert_eq!(matched("vandelay/app").as_deref(), Some("vandelay/app"));
        assert_eq!(
            matched("docker.io/vandelay/app:jessie").as_deref(),
            Some("vandelay/app:jessie")
        );
        assert_eq!(matched("vandelay/app:other"), None);
        let single = vec![build("gcr.io/foo")];
        let single = BuildIndex::new(&single);
        assert!(single.find("gcr.io/foo:v1").is_some());
        assert!(single.find("gcr.io/bar").is_none());
    }

    #[test]
    fn jobs_succeed_and_cronjobs_are_ignored() {
        let mut state = state_with(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\n---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\n",
        );
        let out = assemble(&mut state).unwrap();
        let modes: Vec<String> = out
            .resources
            .iter()
            .map(|r| r.k8s.as_ref().unwrap().pod_readiness.clone())
            .collect();
        assert_eq!(modes, vec!["succeeded", "ignore"]);
    }
}
