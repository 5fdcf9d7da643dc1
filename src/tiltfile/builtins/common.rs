//! Argument shapes shared by the resource builtins: resource names, `labels=`, `links=`,
//! `port_forwards=`, `resource_deps=`.

use starlark::values::{Value, ValueLike};

use crate::model::{Link, PortForward};
use crate::tiltfile::values::{
    TiltObject, arg_error, builtin_error, sequence_items, str_or_blob, string_or_list,
};

/// A resource name must be a valid path segment: not `.`/`..`, no `/` or `%`.
pub fn validate_name(function: &str, name: &str) -> starlark::Result<()> {
    if name.is_empty() {
        return Err(builtin_error(function, "name must not be empty"));
    }
    if name == "." || name == ".." || name.contains('/') || name.contains('%') {
        return Err(builtin_error(
            function,
            format!(
                "invalid value {name:?}: may not be '.' or '..' and may not contain '/' or '%'"
            ),
        ));
    }
    Ok(())
}

/// `labels=`: a string or a list; each a valid Kubernetes label value, at most 63 characters.
pub fn labels_arg(function: &str, v: Option<Value>) -> starlark::Result<Vec<String>> {
    let labels = string_or_list(function, "labels", v)?;
    for l in &labels {
        let valid = !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && l.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && l.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(arg_error(
                function,
                "labels",
                format!(
                    "Invalid label {l:?}: a valid label must be 63 characters or less, begin and end with an alphanumeric character ([a-z0-9A-Z]) with dashes (-), underscores (_), dots (.), and alphanumerics between"
                ),
            ));
        }
    }
    Ok(labels)
}

/// A URL for `link()`: no scheme gets `http://`; Go's url.Parse decides what a scheme is.
pub fn normalize_url(url: &str) -> String {
    let has_scheme = url.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if has_scheme {
        url.to_owned()
    } else {
        format!("http://{url}")
    }
}

/// `links=`: a URL string, a `link()` value, or a list of these.
pub fn links_arg(function: &str, v: Option<Value>) -> starlark::Result<Vec<Link>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    let items = match sequence_items(v) {
        Some(items) => items,
        None => vec![v],
    };
    items
        .into_iter()
        .map(|item| {
            if let Some(url) = str_or_blob(item) {
                if url.is_empty() {
                    return Err(arg_error(function, "links", "url empty"));
                }
                return Ok(Link {
                    url: normalize_url(&url),
                    name: String::new(),
                });
            }
            match item.downcast_ref::<TiltObject>() {
                Some(TiltObject::Link { url, name }) => Ok(Link {
                    url: url.clone(),
                    name: name.clone(),
                }),
                _ => Err(arg_error(
                    function,
                    "links",
                    format!(
                        "Want a string, a link, or a sequence of these; found {}",
                        item.get_type()
                    ),
                )),
            }
        })
        .collect()
}

/// Parses `"L"`, `"L:C"` or `"host:L:C"`.
fn parse_port_forward_string(function: &str, s: &str) -> starlark::Result<PortForward> {
    let parts: Vec<&str> = s.split(':').collect();
    let port = |p: &str| -> starlark::Result<u16> {
        p.trim().parse::<u16>().map_err(|_| {
            arg_error(
                function,
                "port_forwards",
                format!("invalid port {p:?} in {s:?}: ports must be integers 0-65535"),
            )
        })
    };
    let (host, local, container) = match parts.as_slice() {
        [l] => (String::new(), port(l)?, None),
        [l, c] => (String::new(), port(l)?, Some(port(c)?)),
        [h, l, c] => (h.to_string(), port(l)?, Some(port(c)?)),
        _ => {
            return Err(arg_error(
                function,
                "port_forwards",
                format!(
                    "invalid port forward {s:?}: want LOCAL, LOCAL:CONTAINER or HOST:LOCAL:CONTAINER"
                ),
            ));
        }
    };
    Ok(PortForward {
        local_port: local,
        container_port: container,
        host,
        name: String::new(),
        link_path: String::new(),
    })
}

fn one_port_forward(function: &str, v: Value) -> starlark::Result<PortForward> {
    if let Some(i) = v.unpack_i32() {
        let port = u16::try_from(i).map_err(|_| {
            arg_error(
                function,
                "port_forwards",
                format!("invalid port {i}: ports must be 0-65535"),
            )
        })?;
        return Ok(PortForward {
            local_port: port,
            container_port: None,
            host: String::new(),
            name: String::new(),
            link_path: String::new(),
        });
    }
    if let Some(s) = v.unpack_str() {
        return parse_port_forward_string(function, s);
    }
    match v.downcast_ref::<TiltObject>() {
        Some(TiltObject::PortForward(pf)) => Ok(pf.clone()),
        _ => Err(arg_error(
            function,
            "port_forwards",
            format!(
                "Expected a string, int or port_forward, got {}",
                v.get_type()
            ),
        )),
    }
}

/// `port_forwards=`: an int, a string, a `port_forward()` value, or a list of these.
pub fn port_forwards_arg(function: &str, v: Option<Value>) -> starlark::Result<Vec<PortForward>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    match sequence_items(v) {
        Some(items) => items
            .into_iter()
            .map(|i| one_port_forward(function, i))
            .collect(),
        None => Ok(vec![one_port_forward(function, v)?]),
    }
}

/// `resource_deps=`: a list of resource names.
pub fn resource_deps_arg(function: &str, v: Option<Value>) -> starlark::Result<Vec<String>> {
    string_or_list(function, "resource_deps", v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_scheme_rules_follow_go() {
        assert_eq!(normalize_url("example.com"), "http://example.com");
        assert_eq!(normalize_url("localhost:8000"), "localhost:8000");
        assert_eq!(normalize_url("https://x.dev/a"), "https://x.dev/a");
        assert_eq!(normalize_url("127.0.0.1:80"), "http://127.0.0.1:80");
    }
}
