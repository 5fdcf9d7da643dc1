//! Image targets after evaluation: dependencies between images (Dockerfile `FROM` lines with
//! build args substituted, `custom_build(image_deps=)`), matching container image references to
//! declared builds (registry and tag ignored unless the build's ref has a tag), and the
//! transitive closure a resource needs.

use std::collections::{BTreeMap, HashMap};

use crate::model::{Builder, ImageTarget};

/// `(repository without registry, tag)` of an image reference.
pub fn split_ref(r: &str) -> (String, Option<String>) {
    let without_digest = r.split('@').next().unwrap_or(r);
    let (name, tag) = match without_digest.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t.to_owned())),
        _ => (without_digest, None),
    };
    (normalize_name(name), tag)
}

/// Docker's familiar name: drops `docker.io/` and `library/`.
fn normalize_name(name: &str) -> String {
    let name = name
        .strip_prefix("docker.io/")
        .or_else(|| name.strip_prefix("index.docker.io/"))
        .unwrap_or(name);
    name.strip_prefix("library/").unwrap_or(name).to_owned()
}

/// Does the container image `candidate` match the build `build_ref`? By repository name when
/// the build's ref has no tag, exactly (name and tag) when it has one.
pub fn ref_matches(build_ref: &str, candidate: &str) -> bool {
    let (build_name, build_tag) = split_ref(build_ref);
    let (name, tag) = split_ref(candidate);
    if build_name != name {
        return false;
    }
    match build_tag {
        Some(t) => tag.as_deref() == Some(t.as_str()),
        None => true,
    }
}

/// Declared builds indexed by repository name, to match many image references quickly.
pub struct BuildIndex<'a> {
    by_name: HashMap<String, Vec<(Option<String>, &'a ImageTarget)>>,
}

impl<'a> BuildIndex<'a> {
    pub fn new(images: &'a [ImageTarget]) -> Self {
        let mut by_name: HashMap<String, Vec<(Option<String>, &'a ImageTarget)>> = HashMap::new();
        for image in images {
            let (name, tag) = split_ref(&image.image_ref);
            by_name.entry(name).or_default().push((tag, image));
        }
        BuildIndex { by_name }
    }

    /// The build a container image refers to. A build whose ref has a tag matches that exact
    /// ref; a build without one matches the repository, unless another build of the same
    /// repository has a tag, in which case it only matches the untagged name (as Tilt does).
    pub fn find(&self, candidate: &str) -> Option<&'a ImageTarget> {
        let (name, tag) = split_ref(candidate);
        let builds = self.by_name.get(&name)?;
        if let Some((_, exact)) = builds.iter().find(|(t, _)| t.is_some() && *t == tag) {
            return Some(exact);
        }
        let tagged_sibling = builds.iter().any(|(t, _)| t.is_some());
        builds
            .iter()
            .find(|(t, _)| t.is_none() && (!tagged_sibling || tag.is_none()))
            .map(|(_, image)| *image)
    }
}

/// The first declared image that `candidate` refers to.
pub fn match_image<'a>(images: &'a [ImageTarget], candidate: &str) -> Option<&'a ImageTarget> {
    images.iter().find(|i| ref_matches(&i.image_ref, candidate))
}

/// Base images named by `FROM` lines, with `ARG` defaults and build args substituted.
fn from_refs(dockerfile: &str, build_args: &BTreeMap<String, String>) -> Vec<String> {
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<String> = Vec::new();
    let mut refs = Vec::new();
    for raw in dockerfile.lines() {
        let line = raw.trim();
        let mut words = line.split_whitespace();
        let Some(instruction) = words.next() else {
            continue;
        };
        match instruction.to_ascii_uppercase().as_str() {
            "ARG" => {
                if let Some(decl) = words.next() {
                    let (k, v) = decl.split_once('=').unwrap_or((decl, ""));
                    let value = build_args
                        .get(k)
                        .cloned()
                        .unwrap_or_else(|| v.trim_matches('"').to_owned());
                    args.insert(k.to_owned(), value);
                }
            }
            "FROM" => {
                let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
                let Some(image) = rest.first() else { continue };
                let image = substitute(image, &args);
                if !stages.contains(&image.to_ascii_lowercase()) {
                    refs.push(image);
                }
                if let (Some(as_kw), Some(stage)) = (rest.get(1), rest.get(2))
                    && as_kw.eq_ignore_ascii_case("as")
                {
                    stages.push(stage.to_ascii_lowercase());
                }
            }
            _ => {}
        }
    }
    refs
}

fn substitute(text: &str, args: &BTreeMap<String, String>) -> String {
    let mut out = text.to_owned();
    for (k, v) in args {
        out = out
            .replace(&format!("${{{k}}}"), v)
            .replace(&format!("${k}"), v);
    }
    out
}

/// Fills `image_deps` from Dockerfiles; `custom_build` deps must name declared images.
pub fn link_image_deps(images: &mut [ImageTarget]) -> Result<(), String> {
    let snapshot: Vec<ImageTarget> = images.to_vec();
    let index = BuildIndex::new(&snapshot);
    for image in images.iter_mut() {
        match image.builder {
            Builder::Docker => {
                let mut deps: Vec<String> = Vec::new();
                for base in from_refs(&image.dockerfile_contents, &image.build_args) {
                    if let Some(dep) = index.find(&base)
                        && dep.image_ref != image.image_ref
                        && !deps.contains(&dep.image_ref)
                    {
                        deps.push(dep.image_ref.clone());
                    }
                }
                image.image_deps = deps;
            }
            Builder::Custom => {
                if let Some(dep) = image.image_deps.iter().find(|d| index.find(d).is_none()) {
                    return Err(format!(
                        "image {:?}: image dep {dep:?} not found",
                        image.image_ref
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `direct` plus every image they build on, base images first.
pub fn with_base_images(direct: &[String], images: &[ImageTarget]) -> Vec<String> {
    fn visit(r: &str, images: &[ImageTarget], out: &mut Vec<String>, stack: &mut Vec<String>) {
        if out.iter().any(|o| o == r) || stack.iter().any(|s| s == r) {
            return;
        }
        stack.push(r.to_owned());
        if let Some(image) = images.iter().find(|i| i.image_ref == r) {
            for dep in &image.image_deps {
                if let Some(target) = match_image(images, dep) {
                    visit(&target.image_ref, images, out, stack);
                }
            }
        }
        stack.pop();
        out.push(r.to_owned());
    }
    let mut out = Vec::new();
    for r in direct {
        visit(r, images, &mut out, &mut Vec::new());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_ignores_registry_prefix_and_tag_unless_given() {
        assert!(ref_matches("app", "app:v1"));
        assert!(ref_matches("app", "docker.io/library/app"));
        assert!(!ref_matches("app:v1", "app:v2"));
        assert!(ref_matches("gcr.io/p/app", "gcr.io/p/app:latest"));
        assert!(!ref_matches("gcr.io/p/app", "app"));
    }

    #[test]
    fn from_lines_with_args_and_stages() {
        let df = "ARG BASE=base-img\nFROM ${BASE} AS build\nRUN x\nFROM build\nFROM --platform=linux/amd64 other:1\n";
        assert_eq!(
            from_refs(df, &BTreeMap::new()),
            vec!["base-img".to_owned(), "other:1".to_owned()]
        );
        let mut args = BTreeMap::new();
        args.insert("BASE".to_owned(), "custom".to_owned());
        assert_eq!(from_refs(df, &args)[0], "custom");
    }
}
