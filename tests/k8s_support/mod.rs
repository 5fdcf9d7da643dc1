//! Shared helpers for tests against a real Kubernetes cluster (`../shared/k8s-cluster`, whose
//! admin kubeconfig `.ci/run` exports as `TILTRS_TEST_KUBECONFIG`): required in CI, skipped
//! with a visible message elsewhere. Each test gets its own namespace, deleted afterwards.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::docker_support::docker_or_skip;
use crate::engine_support::{Project, marker, wait_until};

/// The cluster's kubeconfig, or `None` (skipped) when the test cannot run here.
pub fn cluster_or_skip(test: &str) -> Option<PathBuf> {
    if !docker_or_skip(test) {
        return None;
    }
    match std::env::var_os("TILTRS_TEST_KUBECONFIG") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{test}: a cluster is required when CI is set (TILTRS_TEST_KUBECONFIG)")
        }
        _ => {
            eprintln!(
                "SKIPPED {test}: TILTRS_TEST_KUBECONFIG is not set (run ../shared/k8s-cluster/up)"
            );
            None
        }
    }
}

/// A test's namespace; deleted (without waiting) when dropped.
pub struct Namespace {
    pub name: String,
    kubeconfig: PathBuf,
}

impl Namespace {
    pub fn new(kubeconfig: &Path) -> Namespace {
        Namespace {
            name: format!("tiltrs-t{}", marker().replace('.', "")),
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = kubectl(
            &self.kubeconfig,
            &[
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ],
        );
    }
}

/// Runs kubectl against the cluster; its trimmed stdout on success.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(args)
        .output()
        .map_err(|e| format!("cannot run kubectl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Waits until `kubectl args` prints something containing `needle`.
pub fn wait_kubectl(kubeconfig: &Path, args: &[&str], needle: &str) -> String {
    wait_until(|| {
        kubectl(kubeconfig, args)
            .ok()
            .filter(|o| o.contains(needle))
    })
    .unwrap_or_else(|| {
        panic!(
            "kubectl {args:?} never printed {needle:?}; last: {:?}",
            kubectl(kubeconfig, args)
        )
    })
}

/// A project whose commands talk to the test cluster.
pub fn project(tiltfile: &str, kubeconfig: &Path) -> Project {
    let mut p = Project::new(tiltfile);
    p.env
        .push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    p
}
