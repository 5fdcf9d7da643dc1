//! Docker Compose builtins: `docker_compose` reads a project's files at call time (natively,
//! through [`compose_file`]) and records its services; `dc_resource` configures one of the
//! services read so far. Calls naming the same project merge into it. Turning services into
//! resources (image matching, links) is `assemble::compose`'s job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::none::NoneType;
use starlark::values::{Value, ValueLike};

use super::common::{labels_arg, links_arg, resource_deps_arg};
use super::docker::validate_ref;
use super::os::env_overlay_snapshot;
use super::settings::trigger_mode_arg;
use crate::tiltfile::compose_file::{self, ComposeFile, LoadOptions};
use crate::tiltfile::eval::ctx;
use crate::tiltfile::state::{ComposeProject, ComposeService, DcResourceOptions, State};
use crate::tiltfile::values::{
    Blob, abs_path, arg_error, builtin_error, sequence_items, string_or_list,
};

pub fn register(b: &mut GlobalsBuilder) {
    compose_builtins(b);
}

/// How Tilt's Go code names the type of a value in its own error messages (`%T`).
fn go_type_name(v: Value) -> String {
    match v.get_type() {
        "bool" => "starlark.Bool".into(),
        "int" => "starlark.Int".into(),
        "float" => "starlark.Float".into(),
        "NoneType" => "starlark.NoneType".into(),
        "string" => "starlark.String".into(),
        "list" => "*starlark.List".into(),
        "tuple" => "starlark.Tuple".into(),
        "dict" => "*starlark.Dict".into(),
        "set" => "*starlark.Set".into(),
        "struct" => "*starlarkstruct.Struct".into(),
        "function" => "*starlark.Function".into(),
        other => other.to_owned(),
    }
}

fn optional_bool(function: &str, param: &str, v: Option<Value>) -> starlark::Result<Option<bool>> {
    match v {
        None => Ok(None),
        Some(v) => v
            .unpack_bool()
            .map(Some)
            .ok_or_else(|| arg_error(function, param, format!("got {}, want bool", v.get_type()))),
    }
}

/// Where Blob configs are written: a directory under the system temp dir that this user owns.
fn blob_dir() -> std::io::Result<PathBuf> {
    let base = std::env::temp_dir();
    let shared = base.join("tiltrs-compose");
    if owned_dir(&shared).is_ok() {
        return Ok(shared);
    }
    let own = base.join(format!("tiltrs-compose-{}", current_uid(&base)?));
    owned_dir(&own)?;
    Ok(own)
}

#[cfg(unix)]
fn uid_of_new_file(dir: &Path) -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    let probe = dir.join(format!(".tiltrs-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    let uid = std::fs::metadata(&probe).map(|m| m.uid());
    let _ = std::fs::remove_file(&probe);
    uid
}

#[cfg(unix)]
fn current_uid(base: &Path) -> std::io::Result<u32> {
    uid_of_new_file(base)
}

#[cfg(not(unix))]
fn current_uid(_base: &Path) -> std::io::Result<u32> {
    Ok(0)
}

/// Creates `dir` if needed and checks it is a directory owned by the current user, so no one
/// else can swap the files the engine later hands to `docker compose`.
fn owned_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(std::io::Error::other("not a directory"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != uid_of_new_file(dir)? {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "owned by another user",
            ));
        }
    }
    Ok(())
}

/// Writes a Blob config to `<temp>/tiltrs-compose/<sha256>.yml` (stable across runs).
fn write_blob(yaml: &str) -> Result<PathBuf, String> {
    let fail = |e: std::io::Error| format!("unable to store yaml blob: {e}");
    let dir = blob_dir().map_err(fail)?;
    let name = format!("{:x}.yml", Sha256::digest(yaml.as_bytes()));
    let path = dir.join(&name);
    if std::fs::read(&path).ok().as_deref() != Some(yaml.as_bytes()) {
        let tmp = dir.join(format!(".{name}.{}", std::process::id()));
        std::fs::write(&tmp, yaml).map_err(fail)?;
        std::fs::rename(&tmp, &path).map_err(fail)?;
    }
    Ok(path)
}

/// Reads a file the way Go reports failures (`open <path>: no such file or directory`).
fn read_config(path: &Path) -> Result<String, String> {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("open {}: no such file or directory", path.display())
            }
            _ => format!("open {}: {e}", path.display()),
        })
}

/// The `{kind} named "x" already exists` error, if `name` is taken by another resource
/// (compose services of `except_project` are not counted: that project is being re-read).
fn resource_conflict(state: &State, name: &str, except_project: Option<&str>) -> Option<String> {
    let other_dc = state
        .compose_projects
        .iter()
        .filter(|p| Some(p.name.as_str()) != except_project)
        .any(|p| p.services.iter().any(|s| s.name == name));
    if other_dc {
        return Some(format!("dc_resource named {name:?} already exists"));
    }
    state
        .declared_names()
        .into_iter()
        .find(|(n, kind)| *n == name && *kind != "dc_resource")
        .map(|(_, kind)| format!("{kind} named {name:?} already exists"))
}

/// Reads (or re-reads) the project's files and replaces its services.
fn read_project(state: &mut State, index: usize) -> Result<(), String> {
    let project = &state.compose_projects[index];
    let overlay = env_overlay_snapshot();
    let dotenv_path = project
        .env_file
        .clone()
        .unwrap_or_else(|| project.project_dir.join(".env"));
    let dotenv = match std::fs::read_to_string(&dotenv_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && project.env_file.is_none() => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("couldn't find env file: {}", dotenv_path.display()));
        }
        Err(e) => return Err(format!("reading {}: {e}", dotenv_path.display())),
    };
    let env = compose_file::project_env(&overlay, dotenv.as_deref())
        .map_err(|e| format!("{}: {e}", dotenv_path.display()))?;
    let mut files = Vec::new();
    for path in &project.config_files {
        files.push(ComposeFile {
            path: path.clone(),
            text: read_config(path)?,
        });
    }
    let services = compose_file::load(&LoadOptions {
        files: &files,
        project_name: &project.name,
        working_dir: &project.project_dir,
        env: &env,
        profiles: &project.profiles,
    })?;

    let project_name = project.name.clone();
    let mut parsed = Vec::new();
    for svc in services {
        if let Some(conflict) = resource_conflict(state, &svc.name, Some(&project_name)) {
            return Err(conflict);
        }
        if validate_ref("docker_compose", "image", &svc.image).is_err() {
            return Err(format!(
                "getting service {}: Error parsing image name {:?}: invalid reference format",
                svc.name, svc.image
            ));
        }
        for env_file in &svc.env_files {
            state.record_file(&env_file.path);
            if env_file.required && !env_file.path.is_file() {
                return Err(format!(
                    "env file {} not found: no such file or directory",
                    env_file.path.display()
                ));
            }
        }
        let build_dockerignore = svc.build.as_ref().and_then(|b| {
            let context = PathBuf::from(&b.context);
            if !context.is_absolute() {
                return None;
            }
            let beside = b
                .dockerfile
                .as_ref()
                .map(|d| PathBuf::from(format!("{}.dockerignore", d.display())))
                .filter(|p| p.exists());
            Some(beside.unwrap_or_else(|| context.join(".dockerignore")))
        });
        parsed.push(ComposeService {
            name: svc.name.clone(),
            service: svc.name,
            config: svc.config,
            depends_on: svc.depends_on,
            image: svc.image,
            build_dockerignore,
            published_ports: svc.published_ports,
        });
    }
    let project = &mut state.compose_projects[index];
    for svc in &parsed {
        let options = project.options.entry(svc.name.clone()).or_default();
        let mut deps = std::mem::take(&mut options.resource_deps);
        deps.extend(svc.depends_on.iter().cloned());
        deps.sort();
        deps.dedup();
        options.resource_deps = deps;
    }
    project.services = parsed;
    Ok(())
}

/// The project and index of the service named `name`, as `dc_resource` looks it up.
fn find_service(state: &State, name: &str, project_name: &str) -> Result<(usize, usize), String> {
    let mut found = None;
    let mut all = Vec::new();
    for (pi, project) in state.compose_projects.iter().enumerate() {
        if !project_name.is_empty() && project.name != project_name {
            continue;
        }
        for (si, svc) in project.services.iter().enumerate() {
            if svc.name == name {
                if found.is_some() {
                    return Err(format!(
                        "found multiple resources named {name:?}, please specify which one with project_name= argument"
                    ));
                }
                found = Some((pi, si));
            }
            all.push(svc.name.as_str());
        }
    }
    found.ok_or_else(|| {
        format!(
            "no Docker Compose service found with name {name:?}. Found these instead:\n\t{}",
            all.join("; ")
        )
    })
}

/// Renames a service's resource and rewrites the other services' dependencies on it.
fn rename_service(
    state: &mut State,
    (pi, si): (usize, usize),
    new_name: &str,
) -> Result<(), String> {
    if let Some(conflict) = resource_conflict(state, new_name, None) {
        return Err(conflict);
    }
    let project = &mut state.compose_projects[pi];
    let old = std::mem::replace(&mut project.services[si].name, new_name.to_owned());
    if let Some(options) = project.options.remove(&old) {
        project.options.insert(new_name.to_owned(), options);
    }
    for (i, svc) in project.services.iter_mut().enumerate() {
        if i == si {
            continue;
        }
        if let Some(pos) = svc.depends_on.iter().position(|d| *d == old) {
            svc.depends_on[pos] = new_name.to_owned();
            if let Some(options) = project.options.get_mut(&svc.name)
                && let Some(rd) = options.resource_deps.iter().position(|d| *d == old)
            {
                options.resource_deps[rd] = new_name.to_owned();
            }
        }
    }
    Ok(())
}

/// One entry of `docker_compose(configPaths)`.
enum ConfigSource {
    Path(PathBuf),
    Blob(String),
}

#[starlark_module]
fn compose_builtins(builder: &mut GlobalsBuilder) {
    #[allow(non_snake_case)]
    fn docker_compose<'v>(
        configPaths: Value<'v>,
        env_file: Option<Value<'v>>,
        project_name: Option<Value<'v>>,
        profiles: Option<Value<'v>>,
        wait: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let f = "docker_compose";
        let items = if configPaths.is_none() {
            Vec::new()
        } else {
            sequence_items(configPaths).unwrap_or_else(|| vec![configPaths])
        };
        if items.is_empty() {
            return Err(builtin_error(f, "Nothing to compose"));
        }
        let mut sources = Vec::new();
        for item in items {
            if let Some(blob) = item.downcast_ref::<Blob>() {
                sources.push(ConfigSource::Blob(blob.0.clone()));
            } else if let Some(path) = item.unpack_str() {
                sources.push(ConfigSource::Path(PathBuf::from(path)));
            } else {
                return Err(builtin_error(
                    f,
                    format!(
                        "expected blob | path (string). Actual type: {}",
                        go_type_name(item)
                    ),
                ));
            }
        }
        let env_file = match env_file.filter(|v| !v.is_none()) {
            None => None,
            Some(v) => Some(v.unpack_str().ok_or_else(|| {
                arg_error(f, "env_file", format!("got {}, want string", v.get_type()))
            })?),
        };
        let project_name = match project_name {
            None => String::new(),
            Some(v) => v
                .unpack_str()
                .ok_or_else(|| {
                    arg_error(
                        f,
                        "project_name",
                        format!("got {}, want string", v.get_type()),
                    )
                })?
                .to_owned(),
        };
        let profiles_set = profiles.is_some_and(|v| !v.is_none());
        let mut profiles = string_or_list(f, "profiles", profiles)?;
        let wait = optional_bool(f, "wait", wait)?.unwrap_or(false);

        let ev = ctx(eval)?;
        let mut state = ev.state.borrow_mut();
        let cwd = state.cwd();
        let env_file = env_file.map(|p| abs_path(&cwd, p));
        if let Some(p) = &env_file {
            state.record_file(p);
        }
        let mut name = project_name;
        let mut project_dir: Option<PathBuf> = None;
        let mut config_files = Vec::new();
        for source in sources {
            match source {
                ConfigSource::Blob(yaml) => {
                    config_files.push(write_blob(&yaml).map_err(|e| builtin_error(f, e))?);
                }
                ConfigSource::Path(p) => {
                    let path = abs_path(&cwd, &p.to_string_lossy());
                    let dir = path.parent().map_or_else(|| cwd.clone(), Path::to_path_buf);
                    if name.is_empty() {
                        name = compose_file::normalize_project_name(
                            &dir.file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default(),
                        );
                    }
                    project_dir.get_or_insert(dir);
                    state.record_file(&path);
                    config_files.push(path);
                }
            }
        }
        if name.is_empty() {
            name = compose_file::normalize_project_name(
                &cwd.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        }
        let project_dir = project_dir.unwrap_or_else(|| cwd.clone());
        if !profiles_set {
            let from_env = env_overlay_snapshot()
                .get("COMPOSE_PROFILES")
                .cloned()
                .unwrap_or_default();
            if !from_env.is_empty() {
                state.log.push(format!(
                    "Compose project {name:?} loading profiles from environment: {from_env}"
                ));
                profiles = from_env.split(',').map(str::to_owned).collect();
            }
        }

        let index = match state.compose_projects.iter().position(|p| p.name == name) {
            Some(i) => {
                let project = &mut state.compose_projects[i];
                for path in config_files {
                    if !project.config_files.contains(&path) {
                        project.config_files.push(path);
                    }
                }
                if env_file.is_some() {
                    project.env_file = env_file;
                }
                i
            }
            None => {
                state.compose_projects.push(ComposeProject {
                    name,
                    project_dir,
                    config_files,
                    env_file,
                    profiles,
                    wait,
                    services: Vec::new(),
                    options: BTreeMap::new(),
                });
                state.compose_projects.len() - 1
            }
        };
        read_project(&mut state, index).map_err(|e| builtin_error(f, e))?;
        Ok(NoneType)
    }

    #[allow(clippy::too_many_arguments)]
    fn dc_resource<'v>(
        name: &str,
        image: Option<Value<'v>>,
        trigger_mode: Option<Value<'v>>,
        resource_deps: Option<Value<'v>>,
        infer_links: Option<Value<'v>>,
        links: Option<Value<'v>>,
        labels: Option<Value<'v>>,
        auto_init: Option<Value<'v>>,
        project_name: Option<&str>,
        new_name: Option<&str>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let f = "dc_resource";
        let trigger_mode = trigger_mode_arg(f, trigger_mode)?;
        let resource_deps = resource_deps_arg(f, resource_deps)?;
        let infer_links = optional_bool(f, "infer_links", infer_links)?;
        let links = links_arg(f, links)?;
        let labels = labels_arg(f, labels)?;
        let auto_init = optional_bool(f, "auto_init", auto_init)?;
        if name.is_empty() {
            return Err(builtin_error(f, "`name` must not be empty"));
        }
        let image = match image.filter(|v| !v.is_none()) {
            None => None,
            Some(v) => match v.unpack_str() {
                Some(s) => {
                    validate_ref(f, "image", s)?;
                    Some(s.to_owned())
                }
                None => {
                    return Err(builtin_error(
                        f,
                        format!("image arg must be a string; got {}", go_type_name(v)),
                    ));
                }
            },
        };

        let ev = ctx(eval)?;
        let mut state = ev.state.borrow_mut();
        let (pi, si) = find_service(&state, name, project_name.unwrap_or_default())
            .map_err(|e| builtin_error(f, e))?;
        let new_name = new_name.unwrap_or_default();
        if !new_name.is_empty() {
            super::common::validate_name(f, new_name)?;
            rename_service(&mut state, (pi, si), new_name).map_err(|e| builtin_error(f, e))?;
        }
        let project = &mut state.compose_projects[pi];
        let resource = project.services[si].name.clone();
        let options: &mut DcResourceOptions = project.options.entry(resource).or_default();
        if trigger_mode.is_some() {
            options.trigger_mode = trigger_mode;
        }
        if infer_links.is_some() {
            options.infer_links = infer_links;
        }
        options.links.extend(links);
        for label in labels {
            if !options.labels.contains(&label) {
                options.labels.push(label);
            }
        }
        if image.is_some() {
            options.image = image;
        }
        for dep in resource_deps {
            if !options.resource_deps.contains(&dep) {
                options.resource_deps.push(dep);
            }
        }
        if auto_init.is_some() {
            options.auto_init = auto_init;
        }
        Ok(NoneType)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiltfile::state::LocalDecl;

    fn service(name: &str, deps: &[&str]) -> ComposeService {
        ComposeService {
            name: name.into(),
            service: name.into(),
            config: serde_json::json!({}),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            image: format!("p_{name}"),
            build_dockerignore: None,
            published_ports: Vec::new(),
        }
    }

    fn project(name: &str, services: Vec<ComposeService>) -> ComposeProject {
        let mut options = BTreeMap::new();
        for s in &services {
            options.insert(
                s.name.clone(),
                DcResourceOptions {
                    resource_deps: s.depends_on.clone(),
                    ..Default::default()
                },
            );
        }
        ComposeProject {
            name: name.into(),
            project_dir: PathBuf::from("/p"),
            config_files: Vec::new(),
            env_file: None,
            profiles: Vec::new(),
            wait: false,
            services,
            options,
        }
    }

    #[test]
    fn rename_rewrites_dependents_and_moves_options() {
        let mut state = State::default();
        state.compose_projects.push(project(
            "p",
            vec![service("db", &[]), service("api", &["db"])],
        ));
        let at = find_service(&state, "db", "").unwrap();
        rename_service(&mut state, at, "database").unwrap();
        let p = &state.compose_projects[0];
        assert_eq!(p.services[0].name, "database");
        assert_eq!(p.services[0].service, "db");
        assert_eq!(p.services[1].depends_on, vec!["database"]);
        assert_eq!(p.options["api"].resource_deps, vec!["database"]);
        assert!(p.options.contains_key("database") && !p.options.contains_key("db"));
        assert!(
            find_service(&state, "db", "")
                .unwrap_err()
                .contains("database; api")
        );
    }

    #[test]
    fn lookups_filter_by_project() {
        let mut state = State::default();
        state
            .compose_projects
            .push(project("a", vec![service("x", &[])]));
        state
            .compose_projects
            .push(project("b", vec![service("y", &[])]));
        assert_eq!(find_service(&state, "y", "").unwrap(), (1, 0));
        assert!(find_service(&state, "y", "a").is_err());
        assert_eq!(find_service(&state, "x", "a").unwrap(), (0, 0));
    }

    #[test]
    fn conflicts_name_the_other_resource_kind() {
        let mut state = State::default();
        state
            .compose_projects
            .push(project("a", vec![service("x", &[])]));
        state.locals.push(LocalDecl {
            name: "build".into(),
            spec: crate::model::LocalSpec {
                cmd: vec!["make".into()],
                serve_cmd: Vec::new(),
                dir: PathBuf::from("/"),
                serve_dir: PathBuf::from("/"),
                deps: Vec::new(),
                ignore: Vec::new(),
                env: BTreeMap::new(),
                serve_env: BTreeMap::new(),
                allow_parallel: false,
                readiness_probe: None,
            },
            trigger_mode: None,
            auto_init: true,
            resource_deps: Vec::new(),
            labels: Vec::new(),
            links: Vec::new(),
        });
        assert_eq!(
            resource_conflict(&state, "x", None).unwrap(),
            "dc_resource named \"x\" already exists"
        );
        assert_eq!(resource_conflict(&state, "x", Some("a")), None);
        assert_eq!(
            resource_conflict(&state, "build", Some("a")).unwrap(),
            "local_resource named \"build\" already exists"
        );
    }

    #[test]
    fn go_type_names() {
        starlark::environment::Module::with_temp_heap(|module| {
            assert_eq!(go_type_name(module.heap().alloc(3)), "starlark.Int");
        });
        assert_eq!(go_type_name(Value::new_bool(true)), "starlark.Bool");
        assert_eq!(go_type_name(Value::new_none()), "starlark.NoneType");
    }
}
