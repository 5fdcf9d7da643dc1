//! Reading the kubeconfig as kubectl does (`KUBECONFIG`, several files, `~/.kube/config`):
//! the current context and its default namespace.

use std::path::PathBuf;

/// The kubeconfig files kubectl would read, in order.
pub fn kubeconfig_paths() -> Vec<PathBuf> {
    match std::env::var_os("KUBECONFIG") {
        Some(v) if !v.is_empty() => std::env::split_paths(&v).collect(),
        _ => dirs::home_dir()
            .map(|h| vec![h.join(".kube").join("config")])
            .unwrap_or_default(),
    }
}

/// The current context's name and namespace: `("", "")` without a kubeconfig, and namespace
/// `default` for a context that sets none.
pub fn current_context() -> (String, String) {
    let docs: Vec<serde_json::Value> = kubeconfig_paths()
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|text| yaml_serde::from_str(&text).ok())
        .collect();
    let Some(name) = docs
        .iter()
        .filter_map(|d| d.get("current-context").and_then(|c| c.as_str()))
        .find(|c| !c.is_empty())
    else {
        return (String::new(), String::new());
    };
    let namespace = docs
        .iter()
        .filter_map(|d| d.get("contexts").and_then(|c| c.as_array()))
        .flatten()
        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(name))
        .and_then(|c| c.pointer("/context/namespace"))
        .and_then(|n| n.as_str())
        .filter(|n| !n.is_empty())
        .unwrap_or("default");
    (name.to_owned(), namespace.to_owned())
}

/// The default namespace a named context sets, if any.
pub fn context_namespace(context: &str) -> Option<String> {
    kubeconfig_paths()
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|text| yaml_serde::from_str::<serde_json::Value>(&text).ok())
        .filter_map(|d| d.get("contexts").and_then(|c| c.as_array()).cloned())
        .flatten()
        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(context))
        .and_then(|c| c.pointer("/context/namespace")?.as_str().map(str::to_owned))
        .filter(|n| !n.is_empty())
}
