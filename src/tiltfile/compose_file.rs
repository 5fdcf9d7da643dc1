//! Docker Compose projects read natively, without a Docker daemon or a compose binary: what
//! `docker compose config` would tell Tilt about a project, as far as resources need it.
//!
//! Owns: `.env` parsing, `${VAR}` interpolation (`$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`,
//! `${VAR:?e}`, `${VAR?e}`, `${VAR:+r}`, `${VAR+r}`, `$$`), YAML merge keys, merging several
//! files in order (services key-wise, later wins; lists such as `ports` appended; `command` and
//! `entrypoint` replaced; `environment`/`labels` merged as mappings; `!reset`/`!override`),
//! profiles, `depends_on` in list and map form, published ports, and the service order.
//!
//! Relative paths (build contexts, `env_file`s, bind-mount sources) resolve against the project
//! directory, as compose does for every file of a project. The service configs handed back are
//! the merged, interpolated YAML with those paths made absolute, `build` in its long form and
//! `depends_on` in its map form; everything else stays as written.
//!
//! Not here: Starlark (see `builtins::compose`) and anything that talks to Docker.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};

/// Marker keys for the `!reset` and `!override` YAML tags while files are merged.
const RESET: &str = "\u{0}reset";
const OVERRIDE: &str = "\u{0}override";

/// Compose's project-name normalisation: lower case, only `[a-z0-9_-]`, no leading `_`/`-`.
pub fn normalize_project_name(name: &str) -> String {
    let kept: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    kept.trim_start_matches(['_', '-']).to_owned()
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Substitutes variables in `text` as compose does. `lookup` returns a variable's value, or
/// None when it is unset; unset variables without a default become empty strings.
pub fn interpolate(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let invalid = || {
        format!(
            "invalid interpolation format in {text:?}: you may need to escape any $ with another $"
        )
    };
    while i < chars.len() {
        let c = chars[i];
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.push('$');
                i += 2;
            }
            Some('{') => {
                let start = i + 2;
                let mut depth = 1;
                let mut j = start;
                while j < chars.len() {
                    match chars[j] {
                        '$' if chars.get(j + 1) == Some(&'$') => j += 1,
                        '$' if chars.get(j + 1) == Some(&'{') => {
                            depth += 1;
                            j += 1;
                        }
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(invalid());
                }
                let inner: String = chars[start..j].iter().collect();
                out.push_str(&braced(&inner, lookup).map_err(|e| e.unwrap_or_else(invalid))?);
                i = j + 1;
            }
            Some(&n) if is_name_start(n) => {
                let mut j = i + 1;
                while j < chars.len() && is_name_char(chars[j]) {
                    j += 1;
                }
                let name: String = chars[i + 1..j].iter().collect();
                out.push_str(&lookup(&name).unwrap_or_default());
                i = j;
            }
            _ => return Err(invalid()),
        }
    }
    Ok(out)
}

/// The inside of `${...}`. `Err(None)` means a malformed expression.
fn braced(inner: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, Option<String>> {
    let name_len = inner
        .char_indices()
        .find(|(_, c)| !is_name_char(*c))
        .map_or(inner.len(), |(i, _)| i);
    let (name, rest) = inner.split_at(name_len);
    if name.is_empty() || !name.starts_with(is_name_start) {
        return Err(None);
    }
    let value = lookup(name);
    if rest.is_empty() {
        return Ok(value.unwrap_or_default());
    }
    let (colon, op_rest) = match rest.strip_prefix(':') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let mut op_chars = op_rest.chars();
    let op = op_chars.next().ok_or(None)?;
    let arg = op_chars.as_str();
    // With a colon, an empty value counts as unset.
    let set = match &value {
        Some(v) => !(colon && v.is_empty()),
        None => false,
    };
    let sub = |s: &str| interpolate(s, lookup).map_err(Some);
    match op {
        '-' => {
            if set {
                Ok(value.unwrap_or_default())
            } else {
                sub(arg)
            }
        }
        '+' => {
            if set {
                sub(arg)
            } else {
                Ok(String::new())
            }
        }
        '?' => {
            if set {
                Ok(value.unwrap_or_default())
            } else if arg.is_empty() {
                Err(Some(format!("required variable {name} is missing a value")))
            } else {
                Err(Some(format!(
                    "required variable {name} is missing a value: {arg}"
                )))
            }
        }
        _ => Err(None),
    }
}

/// Parses a dotenv file (`KEY=VALUE`, `export KEY=VALUE`, `KEY: VALUE`, comments, single and
/// double quotes, multi-line quoted values, a bare `KEY` taken from the environment).
/// Unquoted and double-quoted values are interpolated: from `env` first, then from keys
/// defined earlier in the file.
pub fn parse_dotenv(
    text: &str,
    env: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let lookup_in = |out: &[(String, String)], k: &str| -> Option<String> {
        env.get(k).cloned().or_else(|| {
            out.iter()
                .rev()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        })
    };
    while i < chars.len() {
        // Skip blank space and comments between entries.
        match chars[i] {
            '\n' => {
                line += 1;
                i += 1;
                continue;
            }
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        let key_start = i;
        while i < chars.len() && !matches!(chars[i], '=' | ':' | '\n') {
            i += 1;
        }
        let mut key: String = chars[key_start..i].iter().collect();
        key = key.trim().to_owned();
        if let Some(rest) = key.strip_prefix("export ") {
            key = rest.trim().to_owned();
        }
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("line {line}: invalid variable name {key:?}"));
        }
        if i >= chars.len() || chars[i] == '\n' {
            // A bare name takes its value from the environment.
            if let Some(v) = env.get(&key) {
                out.push((key, v.clone()));
            }
            continue;
        }
        i += 1; // '=' or ':'
        while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
            i += 1;
        }
        let value = match chars.get(i) {
            Some('\'') => {
                let start = i + 1;
                let end = (start..chars.len())
                    .find(|&j| chars[j] == '\'')
                    .ok_or_else(|| format!("line {line}: unterminated quoted value"))?;
                let v: String = chars[start..end].iter().collect();
                line += v.matches('\n').count();
                i = end + 1;
                v
            }
            Some('"') => {
                let mut raw = String::new();
                let mut j = i + 1;
                loop {
                    let Some(&c) = chars.get(j) else {
                        return Err(format!("line {line}: unterminated quoted value"));
                    };
                    match c {
                        '"' => break,
                        '\\' => {
                            let next = chars.get(j + 1).copied().unwrap_or('\\');
                            match next {
                                'n' => raw.push('\n'),
                                'r' => raw.push('\r'),
                                't' => raw.push('\t'),
                                '$' => raw.push_str("$$"),
                                other => raw.push(other),
                            }
                            j += 2;
                        }
                        '\n' => {
                            line += 1;
                            raw.push('\n');
                            j += 1;
                        }
                        other => {
                            raw.push(other);
                            j += 1;
                        }
                    }
                }
                i = j + 1;
                interpolate(&raw, &|k| lookup_in(&out, k))
                    .map_err(|e| format!("line {line}: {e}"))?
            }
            _ => {
                let start = i;
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                let raw: String = chars[start..i].iter().collect();
                let without_comment = match raw.find(" #").or_else(|| raw.find("\t#")) {
                    Some(pos) => &raw[..pos],
                    None => raw.as_str(),
                };
                interpolate(without_comment.trim(), &|k| lookup_in(&out, k))
                    .map_err(|e| format!("line {line}: {e}"))?
            }
        };
        // Whatever follows a quoted value on its line is ignored.
        while i < chars.len() && chars[i] != '\n' {
            i += 1;
        }
        out.push((key, value));
    }
    Ok(out)
}

/// One compose file to load: where it is (for messages) and its text.
#[derive(Debug, Clone)]
pub struct ComposeFile {
    pub path: PathBuf,
    pub text: String,
}

/// What a project is loaded with.
#[derive(Debug, Clone)]
pub struct LoadOptions<'a> {
    pub files: &'a [ComposeFile],
    pub project_name: &'a str,
    /// The project directory: relative paths in every file resolve against it.
    pub working_dir: &'a Path,
    /// Variables for interpolation (environment over `.env`).
    pub env: &'a BTreeMap<String, String>,
    pub profiles: &'a [String],
}

/// An `env_file` of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFileRef {
    pub path: PathBuf,
    pub required: bool,
}

/// A service's build, when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// Absolute directory, or a remote context (URL) as written.
    pub context: String,
    /// Absolute Dockerfile path, when the context is local and no inline Dockerfile is used.
    pub dockerfile: Option<PathBuf>,
}

/// One enabled service of a loaded project.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    /// The merged, interpolated service definition (see the module doc for normalisations).
    pub config: Json,
    /// Services this one depends on, sorted.
    pub depends_on: Vec<String>,
    /// `image:`, or compose's default name for the image it builds (`<project>_<service>`).
    pub image: String,
    pub build: Option<BuildInfo>,
    /// Published host ports, in declaration order (ranges expanded when compose does).
    pub published_ports: Vec<u16>,
    pub env_files: Vec<EnvFileRef>,
}

/// Reads the project's variables: `env` (the evaluation's environment) over the dotenv file.
pub fn project_env(
    env: &BTreeMap<String, String>,
    dotenv: Option<&str>,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = env.clone();
    if let Some(text) = dotenv {
        for (k, v) in parse_dotenv(text, env)? {
            out.entry(k).or_insert(v);
        }
    }
    Ok(out)
}

/// Loads, interpolates and merges the files of a project and returns its enabled services in
/// order: the order of the files (first appearance), with each service's dependencies placed
/// before it.
pub fn load(opts: &LoadOptions) -> Result<Vec<Service>, String> {
    let lookup = |k: &str| opts.env.get(k).cloned();
    let mut merged = Map::new();
    for file in opts.files {
        let doc = parse_file(file)?;
        let doc = interpolate_value(doc, &lookup, &mut Vec::new())
            .map_err(|e| format!("{}: {e}", file.path.display()))?;
        let Json::Object(doc) = doc else {
            return Err(format!(
                "{}: Top-level object must be a mapping",
                file.path.display()
            ));
        };
        let normalized = normalize_document(doc, &file.path)?;
        merge_top_level(&mut merged, normalized);
    }
    let merged = strip_markers(Json::Object(merged));
    let services = match merged.get("services") {
        None | Some(Json::Null) => Map::new(),
        Some(Json::Object(s)) => s.clone(),
        Some(_) => return Err("services must be a mapping".to_owned()),
    };

    let active = |svc: &Map<String, Json>| -> bool {
        let profiles = string_items(svc.get("profiles"));
        profiles.is_empty()
            || opts
                .profiles
                .iter()
                .any(|p| p == "*" || profiles.iter().any(|s| s == p))
    };
    let enabled: Vec<(String, Map<String, Json>)> = services
        .iter()
        .filter_map(|(name, v)| match v {
            Json::Object(m) if active(m) => Some((name.clone(), m.clone())),
            _ => None,
        })
        .collect();
    let disabled: BTreeSet<&str> = services
        .keys()
        .map(String::as_str)
        .filter(|n| !enabled.iter().any(|(e, _)| e == n))
        .collect();

    let mut out = Vec::new();
    for (name, mut svc) in enabled.clone() {
        let deps = depends_on_map(svc.get("depends_on"));
        for (dep, required) in &deps {
            let exists = enabled.iter().any(|(e, _)| e == dep);
            let optional_and_disabled = !required && disabled.contains(dep.as_str());
            if !exists && !optional_and_disabled {
                return Err(format!(
                    "service {name:?} depends on undefined service {dep:?}: invalid compose project"
                ));
            }
        }
        let image = match svc.get("image") {
            Some(Json::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Json::Null) | None => None,
            Some(Json::String(_)) => None,
            Some(other) => {
                return Err(format!(
                    "services.{name}.image must be a string, not {}",
                    json_kind(other)
                ));
            }
        };
        let build = resolve_build(&mut svc, opts.working_dir, &name)?;
        if image.is_none() && build.is_none() {
            return Err(format!(
                "service {name:?} has neither an image nor a build context specified: invalid compose project"
            ));
        }
        let env_files = resolve_env_files(&mut svc, opts.working_dir, &name)?;
        resolve_volumes(&mut svc, opts.working_dir);
        let published_ports = match svc.get("ports") {
            Some(Json::Array(ports)) => ports.iter().flat_map(published_ports).collect(),
            _ => Vec::new(),
        };
        let mut dep_names: Vec<String> = deps.iter().map(|(d, _)| d.clone()).collect();
        dep_names.sort();
        dep_names.dedup();
        out.push(Service {
            image: image.unwrap_or_else(|| format!("{}_{}", opts.project_name, name)),
            name,
            config: Json::Object(svc),
            depends_on: dep_names,
            build,
            published_ports,
            env_files,
        });
    }
    Ok(dependency_order(out))
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a mapping",
    }
}

/// File order, with every service's dependencies (in file order) moved before it.
fn dependency_order(services: Vec<Service>) -> Vec<Service> {
    fn visit(i: usize, services: &[Service], seen: &mut Vec<bool>, order: &mut Vec<usize>) {
        if seen[i] {
            return;
        }
        seen[i] = true;
        for (j, other) in services.iter().enumerate() {
            if services[i].depends_on.contains(&other.name) {
                visit(j, services, seen, order);
            }
        }
        order.push(i);
    }
    let mut seen = vec![false; services.len()];
    let mut order = Vec::new();
    for i in 0..services.len() {
        visit(i, &services, &mut seen, &mut order);
    }
    let mut slots: Vec<Option<Service>> = services.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Parses one file's YAML (merge keys applied; `!reset`/`!override` kept as markers).
fn parse_file(file: &ComposeFile) -> Result<Json, String> {
    let value: yaml_serde::Value =
        yaml_serde::from_str(&file.text).map_err(|e| format!("{}: {e}", file.path.display()))?;
    if value.is_null() {
        return Err(format!("{}: empty compose file", file.path.display()));
    }
    Ok(yaml_to_json(value))
}

fn yaml_to_json(v: yaml_serde::Value) -> Json {
    use yaml_serde::Value as Y;
    match v {
        Y::Null => Json::Null,
        Y::Bool(b) => Json::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::from(i)
            } else if let Some(u) = n.as_u64() {
                Json::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Json::Null, Json::Number)
            }
        }
        Y::String(s) => Json::String(s),
        Y::Sequence(items) => Json::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => {
            // Merge keys (`<<: *anchor`, or a list of anchors, earlier ones winning) fill in
            // what the mapping does not set itself, at the position of the `<<` key.
            let entries: Vec<(String, Json)> = m
                .into_iter()
                .map(|(k, v)| (yaml_key(k), yaml_to_json(v)))
                .collect();
            let explicit: BTreeSet<&str> = entries
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| *k != "<<")
                .collect();
            let mut out = Map::new();
            for (key, value) in &entries {
                if key != "<<" {
                    out.insert(key.clone(), value.clone());
                    continue;
                }
                let sources = match value {
                    Json::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                for source in sources {
                    if let Json::Object(source) = source {
                        for (k, v) in source {
                            if !explicit.contains(k.as_str()) && !out.contains_key(k) {
                                out.insert(k.clone(), v.clone());
                            }
                        }
                    }
                }
            }
            Json::Object(out)
        }
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let inner = yaml_to_json(t.value);
            let marker = match tag.as_str() {
                "!reset" => RESET,
                "!override" => OVERRIDE,
                _ => return inner,
            };
            let mut m = Map::new();
            m.insert(marker.to_owned(), inner);
            Json::Object(m)
        }
    }
}

fn yaml_key(k: yaml_serde::Value) -> String {
    use yaml_serde::Value as Y;
    match k {
        Y::String(s) => s,
        Y::Number(n) => n.to_string(),
        Y::Bool(b) => b.to_string(),
        Y::Null => "null".to_owned(),
        other => yaml_serde::to_string(&other)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
    }
}

/// Interpolates every string value (keys are left alone). `path` names the value in errors.
fn interpolate_value(
    v: Json,
    lookup: &dyn Fn(&str) -> Option<String>,
    path: &mut Vec<String>,
) -> Result<Json, String> {
    Ok(match v {
        Json::String(s) => {
            Json::String(interpolate(&s, lookup).map_err(|e| format!("{}: {e}", path.join(".")))?)
        }
        Json::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                path.push(i.to_string());
                out.push(interpolate_value(item, lookup, path)?);
                path.pop();
            }
            Json::Array(out)
        }
        Json::Object(m) => {
            let mut out = Map::new();
            for (k, item) in m {
                // Extension fields (`x-...`) are free-form and compose leaves them alone too.
                if path.is_empty() && k.starts_with("x-") {
                    out.insert(k, item);
                    continue;
                }
                path.push(k.clone());
                let value = interpolate_value(item, lookup, path)?;
                path.pop();
                out.insert(k, value);
            }
            Json::Object(out)
        }
        other => other,
    })
}

/// Strings of a string-or-list value.
fn string_items(v: Option<&Json>) -> Vec<String> {
    match v {
        Some(Json::String(s)) => vec![s.clone()],
        Some(Json::Array(items)) => items
            .iter()
            .filter_map(|i| match i {
                Json::String(s) => Some(s.clone()),
                Json::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `depends_on` as `(service, required)`, from either form.
fn depends_on_map(v: Option<&Json>) -> Vec<(String, bool)> {
    match v {
        Some(Json::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(|s| (s.to_owned(), true)))
            .collect(),
        Some(Json::Object(m)) => m
            .iter()
            .map(|(k, d)| {
                let required = d.get("required").and_then(Json::as_bool).unwrap_or(true);
                (k.clone(), required)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Rewrites the shapes that have several forms into one, so files merge key by key:
/// `depends_on` and `networks` lists become maps, `build` strings become `{context}`,
/// `environment`-like lists of `K=V` become maps, `env_file` strings become lists.
fn normalize_document(
    mut doc: Map<String, Json>,
    path: &Path,
) -> Result<Map<String, Json>, String> {
    let Some(slot) = doc.get_mut("services") else {
        return Ok(doc);
    };
    let services = match std::mem::take(slot) {
        Json::Null => Map::new(),
        Json::Object(s) => s,
        _ => return Err(format!("{}: services must be a mapping", path.display())),
    };
    let mut out = Map::new();
    for (name, svc) in services {
        let svc = match svc {
            Json::Object(m) => m,
            Json::Null => Map::new(),
            _ => {
                return Err(format!(
                    "{}: services.{name} must be a mapping",
                    path.display()
                ));
            }
        };
        out.insert(name, Json::Object(normalize_service(svc)));
    }
    *slot = Json::Object(out);
    Ok(doc)
}

fn list_to_mapping(v: Json) -> Json {
    match v {
        Json::Array(items) => {
            let mut m = Map::new();
            for item in items {
                let text = match item {
                    Json::String(s) => s,
                    other => other.to_string(),
                };
                match text.split_once('=') {
                    Some((k, val)) => m.insert(k.to_owned(), Json::String(val.to_owned())),
                    None => m.insert(text, Json::Null),
                };
            }
            Json::Object(m)
        }
        other => other,
    }
}

/// Replaces the value at `key` (if any) with `f(value)`, keeping the key's position.
fn rewrite(map: &mut Map<String, Json>, key: &str, f: impl FnOnce(Json) -> Json) {
    if let Some(slot) = map.get_mut(key) {
        *slot = f(std::mem::take(slot));
    }
}

fn depends_on_long_form(v: Json) -> Json {
    let long = |d: Map<String, Json>| {
        let mut d = d;
        d.entry("condition")
            .or_insert_with(|| Json::String("service_started".into()));
        d.entry("required").or_insert(Json::Bool(true));
        Json::Object(d)
    };
    match v {
        Json::Array(items) => Json::Object(
            items
                .into_iter()
                .filter_map(|item| match item {
                    Json::String(s) => Some((s, long(Map::new()))),
                    _ => None,
                })
                .collect(),
        ),
        Json::Object(m) => Json::Object(
            m.into_iter()
                .map(|(k, d)| match d {
                    Json::Object(d) => (k, long(d)),
                    _ => (k, long(Map::new())),
                })
                .collect(),
        ),
        other => other,
    }
}

fn normalize_service(mut svc: Map<String, Json>) -> Map<String, Json> {
    for key in ["environment", "labels", "annotations", "sysctls"] {
        rewrite(&mut svc, key, list_to_mapping);
    }
    rewrite(&mut svc, "depends_on", depends_on_long_form);
    rewrite(&mut svc, "networks", |v| match v {
        Json::Array(items) => Json::Object(
            items
                .into_iter()
                .filter_map(|i| i.as_str().map(|s| (s.to_owned(), Json::Null)))
                .collect(),
        ),
        other => other,
    });
    rewrite(&mut svc, "build", |v| match v {
        Json::String(context) => {
            let mut m = Map::new();
            m.insert("context".into(), Json::String(context));
            Json::Object(m)
        }
        Json::Object(mut m) => {
            for key in ["args", "labels"] {
                rewrite(&mut m, key, list_to_mapping);
            }
            Json::Object(m)
        }
        other => other,
    });
    rewrite(&mut svc, "env_file", |v| match v {
        Json::String(s) => Json::Array(vec![Json::String(s)]),
        other => other,
    });
    svc
}

/// Merges a normalised document into the project so far.
fn merge_top_level(base: &mut Map<String, Json>, over: Map<String, Json>) {
    for (key, value) in over {
        if key == "services" {
            let Json::Object(services) = value else {
                continue;
            };
            let base_services = base
                .entry("services")
                .or_insert_with(|| Json::Object(Map::new()));
            if !base_services.is_object() {
                *base_services = Json::Object(Map::new());
            }
            if let Json::Object(base_services) = base_services {
                for (name, svc) in services {
                    match base_services.get_mut(&name) {
                        Some(existing) => merge_value(existing, svc, &["services", "*"]),
                        None => {
                            base_services.insert(name, svc);
                        }
                    }
                }
            }
            continue;
        }
        match base.get_mut(&key) {
            Some(existing) => merge_value(existing, value, &[key.as_str()]),
            None => {
                base.insert(key, value);
            }
        }
    }
}

/// Keys whose lists are replaced rather than appended.
fn replaces(path: &[&str]) -> bool {
    matches!(
        path,
        ["services", "*", "command"]
            | ["services", "*", "entrypoint"]
            | ["services", "*", "healthcheck", "test"]
    )
}

/// The mount target of a volume entry, which compose merges volumes by.
fn volume_target(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            match parts.len() {
                1 => Some(parts[0].to_owned()),
                _ => Some(parts[1].to_owned()),
            }
        }
        Json::Object(m) => m.get("target").and_then(Json::as_str).map(str::to_owned),
        _ => None,
    }
}

fn merge_value(base: &mut Json, over: Json, path: &[&str]) {
    if let Json::Object(m) = &over
        && (m.contains_key(RESET) || m.contains_key(OVERRIDE))
    {
        *base = over;
        return;
    }
    if replaces(path) {
        *base = over;
        return;
    }
    match (base, over) {
        (Json::Object(b), Json::Object(o)) => {
            for (k, v) in o {
                let mut child: Vec<&str> = path.to_vec();
                child.push(k.as_str());
                match b.get_mut(&k) {
                    Some(existing) => merge_value(existing, v, &child),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (Json::Array(b), Json::Array(o)) => {
            if matches!(path, ["services", "*", "volumes"]) {
                for item in o {
                    let target = volume_target(&item);
                    match b
                        .iter_mut()
                        .find(|e| target.is_some() && volume_target(e) == target)
                    {
                        Some(slot) => *slot = item,
                        None => b.push(item),
                    }
                }
            } else {
                for item in o {
                    if !b.contains(&item) {
                        b.push(item);
                    }
                }
            }
        }
        (slot, o) => *slot = o,
    }
}

/// Applies `!reset` (drop the key) and `!override` (take the value as is).
fn strip_markers(v: Json) -> Json {
    match v {
        Json::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                if let Json::Object(inner) = &v {
                    if inner.contains_key(RESET) {
                        continue;
                    }
                    if let Some(value) = inner.get(OVERRIDE) {
                        out.insert(k, strip_markers(value.clone()));
                        continue;
                    }
                }
                out.insert(k, strip_markers(v));
            }
            Json::Object(out)
        }
        Json::Array(items) => Json::Array(items.into_iter().map(strip_markers).collect()),
        other => other,
    }
}

fn is_remote_context(context: &str) -> bool {
    context.contains("://") || context.starts_with("git@") || context.starts_with("github.com/")
}

fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let expanded = match p.strip_prefix("~/") {
        Some(rest) => dirs::home_dir().map_or_else(|| PathBuf::from(p), |h| h.join(rest)),
        None => PathBuf::from(p),
    };
    crate::tiltfile::values::clean_path(&base.join(expanded))
}

/// Makes the build context absolute and fills in the default Dockerfile name.
fn resolve_build(
    svc: &mut Map<String, Json>,
    base: &Path,
    name: &str,
) -> Result<Option<BuildInfo>, String> {
    let Some(build) = svc.get_mut("build") else {
        return Ok(None);
    };
    let Json::Object(b) = build else {
        return Err(format!(
            "services.{name}.build must be a string or a mapping"
        ));
    };
    let context = match b.get("context") {
        None | Some(Json::Null) => ".".to_owned(),
        Some(Json::String(s)) => s.clone(),
        Some(_) => return Err(format!("services.{name}.build.context must be a string")),
    };
    if is_remote_context(&context) {
        return Ok(Some(BuildInfo {
            context,
            dockerfile: None,
        }));
    }
    let context_dir = resolve_path(base, &context);
    let context_str = context_dir.to_string_lossy().into_owned();
    b.insert("context".into(), Json::String(context_str.clone()));
    let inline = b.contains_key("dockerfile_inline");
    let dockerfile = match b.get("dockerfile") {
        Some(Json::String(d)) => Some(d.clone()),
        None | Some(Json::Null) if !inline => Some("Dockerfile".to_owned()),
        None | Some(Json::Null) => None,
        Some(_) => return Err(format!("services.{name}.build.dockerfile must be a string")),
    };
    if let Some(d) = &dockerfile {
        b.insert("dockerfile".into(), Json::String(d.clone()));
    }
    Ok(Some(BuildInfo {
        context: context_str,
        dockerfile: dockerfile.map(|d| resolve_path(&context_dir, &d)),
    }))
}

/// Makes `env_file` paths absolute (short and long forms).
fn resolve_env_files(
    svc: &mut Map<String, Json>,
    base: &Path,
    name: &str,
) -> Result<Vec<EnvFileRef>, String> {
    let Some(Json::Array(items)) = svc.get_mut("env_file") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in items.iter_mut() {
        match item {
            Json::String(s) => {
                let p = resolve_path(base, s);
                *s = p.to_string_lossy().into_owned();
                out.push(EnvFileRef {
                    path: p,
                    required: true,
                });
            }
            Json::Object(m) => {
                let Some(Json::String(s)) = m.get("path").cloned() else {
                    return Err(format!("services.{name}.env_file: path is required"));
                };
                let p = resolve_path(base, &s);
                m.insert(
                    "path".into(),
                    Json::String(p.to_string_lossy().into_owned()),
                );
                let required = m.get("required").and_then(Json::as_bool).unwrap_or(true);
                out.push(EnvFileRef { path: p, required });
            }
            _ => {
                return Err(format!(
                    "services.{name}.env_file must be a string or a list"
                ));
            }
        }
    }
    Ok(out)
}

/// Makes bind-mount sources absolute (`./x:/y`, `../x:/y`, `~/x:/y`, long `type: bind`).
fn resolve_volumes(svc: &mut Map<String, Json>, base: &Path) {
    let Some(Json::Array(items)) = svc.get_mut("volumes") else {
        return;
    };
    let is_path = |s: &str| s.starts_with('.') || s.starts_with('/') || s.starts_with('~');
    for item in items.iter_mut() {
        match item {
            Json::String(s) => {
                if let Some((source, rest)) = s.split_once(':')
                    && is_path(source)
                {
                    let abs = resolve_path(base, source);
                    *s = format!("{}:{rest}", abs.display());
                }
            }
            Json::Object(m) => {
                let bind = m.get("type").and_then(Json::as_str) == Some("bind");
                if let Some(Json::String(source)) = m.get("source").cloned()
                    && (bind || is_path(&source))
                {
                    let abs = resolve_path(base, &source);
                    m.insert(
                        "source".into(),
                        Json::String(abs.to_string_lossy().into_owned()),
                    );
                }
            }
            _ => {}
        }
    }
}

/// A single port or a `lo-hi` range.
fn port_range(s: &str) -> Option<(u16, u16)> {
    let s = s.trim();
    match s.split_once('-') {
        Some((lo, hi)) => {
            let lo: u16 = lo.trim().parse().ok()?;
            let hi: u16 = hi.trim().parse().ok()?;
            (lo <= hi).then_some((lo, hi))
        }
        None => s.parse().ok().map(|p| (p, p)),
    }
}

/// Published host ports of one `ports:` entry. The short syntax is
/// `[[IP:]HOST:]CONTAINER[/PROTO]`; a bare container port publishes nothing (the host port is
/// random), and a host range is used only when it matches a container range of the same
/// length, as compose expands it. The long syntax publishes `published` when it is a number.
pub fn published_ports(entry: &Json) -> Vec<u16> {
    match entry {
        Json::String(spec) => {
            let spec = spec.trim();
            let without_proto = spec.split('/').next().unwrap_or(spec);
            // An IPv6 host IP is written in brackets.
            let rest = match without_proto.strip_prefix('[') {
                Some(r) => match r.split_once("]:") {
                    Some((_, after)) => after,
                    None => return Vec::new(),
                },
                None => without_proto,
            };
            let parts: Vec<&str> = rest.split(':').collect();
            let (host, container) = match parts.as_slice() {
                [_] => return Vec::new(),
                [h, c] => (*h, *c),
                [.., h, c] => (*h, *c),
                [] => return Vec::new(),
            };
            if host.trim().is_empty() {
                return Vec::new();
            }
            let (Some((hlo, hhi)), Some((clo, chi))) = (port_range(host), port_range(container))
            else {
                return Vec::new();
            };
            if hlo == hhi {
                return if hlo == 0 { Vec::new() } else { vec![hlo] };
            }
            if hhi - hlo != chi - clo {
                return Vec::new();
            }
            (hlo..=hhi).filter(|p| *p != 0).collect()
        }
        Json::Object(m) => {
            let port = match m.get("published") {
                Some(Json::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
                Some(Json::String(s)) => s.trim().parse::<u16>().ok(),
                _ => None,
            };
            port.filter(|p| *p != 0).into_iter().collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn interp(text: &str, pairs: &[(&str, &str)]) -> Result<String, String> {
        let e = env(pairs);
        interpolate(text, &|k| e.get(k).cloned())
    }

    #[test]
    fn interpolation_forms() {
        let vars = [("A", "1"), ("EMPTY", "")];
        assert_eq!(interp("$A-${A}", &vars).unwrap(), "1-1");
        assert_eq!(interp("${MISSING}", &vars).unwrap(), "");
        assert_eq!(interp("${MISSING:-d}", &vars).unwrap(), "d");
        assert_eq!(interp("${EMPTY:-d}", &vars).unwrap(), "d");
        assert_eq!(interp("${EMPTY-d}", &vars).unwrap(), "");
        assert_eq!(interp("${MISSING-d}", &vars).unwrap(), "d");
        assert_eq!(interp("${A:+yes}${MISSING:+no}", &vars).unwrap(), "yes");
        assert_eq!(interp("${EMPTY+set}", &vars).unwrap(), "set");
        assert_eq!(interp("$$A costs $$5", &vars).unwrap(), "$A costs $5");
        assert_eq!(interp("${MISSING:-${A}0}", &vars).unwrap(), "10");
        assert_eq!(interp("héllo ${A}", &vars).unwrap(), "héllo 1");
    }

    #[test]
    fn interpolation_errors() {
        assert_eq!(
            interp("${X:?must be set}", &[]).unwrap_err(),
            "required variable X is missing a value: must be set"
        );
        assert_eq!(
            interp("${X?}", &[]).unwrap_err(),
            "required variable X is missing a value"
        );
        assert!(interp("${X:?e}", &[("X", "")]).is_err());
        assert!(interp("${X?e}", &[("X", "")]).is_ok());
        assert!(
            interp("${", &[])
                .unwrap_err()
                .contains("invalid interpolation")
        );
        assert!(interp("${}", &[]).is_err());
        assert!(interp("a $ b", &[]).is_err());
        assert!(interp("${1X}", &[]).is_err());
    }

    #[test]
    fn dotenv_parsing() {
        let text = "# comment\nA=1\nexport B = two words # trailing\nC='lit $A'\nD=\"q $A\\n\"\nE=${A}x\nF: yaml\nG=\"multi\nline\"\nBARE\n";
        let parsed = parse_dotenv(text, &env(&[("BARE", "from-env")])).unwrap();
        let get = |k: &str| parsed.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("A"), Some("1"));
        assert_eq!(get("B"), Some("two words"));
        assert_eq!(get("C"), Some("lit $A"));
        assert_eq!(get("D"), Some("q 1\n"));
        assert_eq!(get("E"), Some("1x"));
        assert_eq!(get("F"), Some("yaml"));
        assert_eq!(get("G"), Some("multi\nline"));
        assert_eq!(get("BARE"), Some("from-env"));
    }

    #[test]
    fn environment_wins_over_dotenv() {
        let merged = project_env(&env(&[("A", "env")]), Some("A=file\nB=file\n")).unwrap();
        assert_eq!(merged["A"], "env");
        assert_eq!(merged["B"], "file");
    }

    #[test]
    fn project_names() {
        assert_eq!(normalize_project_name("My App.v2"), "myappv2");
        assert_eq!(normalize_project_name("_-x_y"), "x_y");
    }

    #[test]
    fn port_syntaxes() {
        let p = |s: &str| published_ports(&Json::String(s.into()));
        assert_eq!(p("8080:80"), vec![8080]);
        assert_eq!(p("127.0.0.1:8080:80"), vec![8080]);
        assert_eq!(p("127.0.0.1::80"), Vec::<u16>::new());
        assert_eq!(p("80"), Vec::<u16>::new());
        assert_eq!(p("3000/tcp"), Vec::<u16>::new());
        assert_eq!(p("9090:90/udp"), vec![9090]);
        assert_eq!(p("[::1]:7070:70"), vec![7070]);
        assert_eq!(p("8000-8001:9000-9001"), vec![8000, 8001]);
        assert_eq!(p("8000-8010:80"), Vec::<u16>::new());
        assert_eq!(published_ports(&Json::from(80)), Vec::<u16>::new());
        let long: Json = serde_json::json!({"target": 80, "published": 8081});
        assert_eq!(published_ports(&long), vec![8081]);
        let long_str: Json = serde_json::json!({"target": 80, "published": "8082"});
        assert_eq!(published_ports(&long_str), vec![8082]);
        let no_pub: Json = serde_json::json!({"target": 80});
        assert_eq!(published_ports(&no_pub), Vec::<u16>::new());
    }

    fn load_texts(
        texts: &[&str],
        profiles: &[&str],
        vars: &[(&str, &str)],
    ) -> Result<Vec<Service>, String> {
        let files: Vec<ComposeFile> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| ComposeFile {
                path: PathBuf::from(format!("/p/f{i}.yml")),
                text: t.to_string(),
            })
            .collect();
        let e = env(vars);
        let profiles: Vec<String> = profiles.iter().map(|s| s.to_string()).collect();
        load(&LoadOptions {
            files: &files,
            project_name: "proj",
            working_dir: Path::new("/p"),
            env: &e,
            profiles: &profiles,
        })
    }

    #[test]
    fn files_merge_in_order() {
        let base = "services:\n  web:\n    image: web:1\n    command: [a, b]\n    ports: ['8000:80']\n    environment: [A=1, B=2]\n  db:\n    image: db\n";
        let over = "services:\n  web:\n    image: web:2\n    command: [c]\n    ports: ['9000:90']\n    environment:\n      B: three\n  cache:\n    image: redis\n";
        let services = load_texts(&[base, over], &[], &[]).unwrap();
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["web", "db", "cache"]);
        let web = &services[0];
        assert_eq!(web.image, "web:2");
        assert_eq!(web.published_ports, vec![8000, 9000]);
        assert_eq!(web.config["command"], serde_json::json!(["c"]));
        assert_eq!(
            web.config["environment"],
            serde_json::json!({"A": "1", "B": "three"})
        );
    }

    #[test]
    fn depends_on_forms_and_order() {
        let text = "services:\n  web:\n    image: w\n    depends_on: [db, cache]\n  worker:\n    image: k\n    depends_on:\n      db:\n        condition: service_healthy\n  db:\n    image: d\n  cache:\n    image: c\n";
        let services = load_texts(&[text], &[], &[]).unwrap();
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["db", "cache", "web", "worker"]);
        assert_eq!(services[2].depends_on, vec!["cache", "db"]);
        assert_eq!(services[3].depends_on, vec!["db"]);
        assert_eq!(
            services[2].config["depends_on"]["db"],
            serde_json::json!({"condition": "service_started", "required": true})
        );
    }

    #[test]
    fn profiles_select_services() {
        let text = "services:\n  a:\n    image: a\n  b:\n    image: b\n    profiles: [debug]\n";
        let names = |p: &[&str]| -> Vec<String> {
            load_texts(&[text], p, &[])
                .unwrap()
                .into_iter()
                .map(|s| s.name)
                .collect()
        };
        assert_eq!(names(&[]), ["a"]);
        assert_eq!(names(&["debug"]), ["a", "b"]);
        assert_eq!(names(&["*"]), ["a", "b"]);
        let dep = "services:\n  a:\n    image: a\n    depends_on: [b]\n  b:\n    image: b\n    profiles: [debug]\n";
        assert!(
            load_texts(&[dep], &[], &[])
                .unwrap_err()
                .contains("depends on undefined service \"b\"")
        );
    }

    #[test]
    fn builds_and_default_image() {
        let text = "services:\n  app:\n    build: ./app\n  other:\n    build:\n      context: ctx\n      dockerfile: Dockerfile.dev\n    image: custom\n";
        let services = load_texts(&[text], &[], &[]).unwrap();
        assert_eq!(services[0].image, "proj_app");
        assert_eq!(
            services[0].build,
            Some(BuildInfo {
                context: "/p/app".into(),
                dockerfile: Some("/p/app/Dockerfile".into())
            })
        );
        assert_eq!(services[1].image, "custom");
        assert_eq!(
            services[1]
                .build
                .as_ref()
                .and_then(|b| b.dockerfile.clone()),
            Some(PathBuf::from("/p/ctx/Dockerfile.dev"))
        );
        let neither = "services:\n  x:\n    command: hi\n";
        assert!(
            load_texts(&[neither], &[], &[])
                .unwrap_err()
                .contains("neither an image")
        );
    }

    #[test]
    fn interpolation_applies_to_values() {
        let text = "services:\n  web:\n    image: ${IMG:-nginx}\n    ports: ['${PORT}:80']\n";
        let services = load_texts(&[text], &[], &[("PORT", "4000")]).unwrap();
        assert_eq!(services[0].image, "nginx");
        assert_eq!(services[0].published_ports, vec![4000]);
    }

    #[test]
    fn yaml_merge_keys_and_reset() {
        let text =
            "x-base: &base\n  image: base\n  ports: ['1000:1']\nservices:\n  a:\n    <<: *base\n";
        let services = load_texts(&[text], &[], &[]).unwrap();
        assert_eq!(services[0].image, "base");
        assert_eq!(services[0].published_ports, vec![1000]);
        let over = "services:\n  a:\n    ports: !reset []\n";
        let services = load_texts(&[text, over], &[], &[]).unwrap();
        assert!(services[0].published_ports.is_empty());
    }

    #[test]
    fn env_files_and_volumes_resolve_against_the_project() {
        let text = "services:\n  a:\n    image: a\n    env_file: a.env\n    volumes: ['./src:/src', 'named:/data']\n";
        let services = load_texts(&[text], &[], &[]).unwrap();
        assert_eq!(
            services[0].env_files,
            vec![EnvFileRef {
                path: "/p/a.env".into(),
                required: true
            }]
        );
        assert_eq!(
            services[0].config["volumes"],
            serde_json::json!(["/p/src:/src", "named:/data"])
        );
    }
}
