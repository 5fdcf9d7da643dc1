//! Live updates into a running container through the engine API: deletes and `run()` steps via
//! exec, changed files as one tar through the container's sync channel (or the archive endpoint
//! when the image cannot run one), and restarts.

use std::sync::Arc;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::query_parameters::{RestartContainerOptions, UploadToContainerOptions};
use futures_util::StreamExt;
use thiserror::Error;

use super::sync_channel::ChannelError;
use super::{DockerError, DockerHandle};
use crate::liveupdate::UpdatePlan;
use crate::runtime::LogSink;
use crate::runtime::process::display_command;

#[derive(Debug, Error)]
pub enum ContainerUpdateError {
    #[error(transparent)]
    Sync(#[from] ChannelError),
    #[error("building the sync archive: {0}")]
    Archive(String),
    #[error("run step {command:?} failed with exit code {code}")]
    RunFailed { command: String, code: i64 },
    #[error("deleting files in the container ({command:?}) failed with exit code {code}")]
    DeleteFailed { command: String, code: i64 },
    #[error(transparent)]
    Docker(#[from] DockerError),
}

/// Applies `plan` to container `id`: deletes, then the copies, then `run()` steps in order,
/// then a restart when the plan asks for one.
pub async fn apply(
    handle: &DockerHandle,
    id: &str,
    plan: &UpdatePlan,
    log: &Arc<dyn LogSink>,
) -> Result<(), ContainerUpdateError> {
    let docker = &handle.get().await?;
    if !plan.deletes.is_empty() {
        log.line(&format!(
            "Deleting {} path(s) in container {}",
            plan.deletes.len(),
            short(id)
        ));
        remove(docker, id, &plan.deletes).await?;
    }
    if !plan.copies.is_empty() {
        let copies = plan.copies.clone();
        let (tar, skipped) =
            tokio::task::spawn_blocking(move || crate::liveupdate::archive(&copies))
                .await
                .map_err(|e| ContainerUpdateError::Archive(e.to_string()))?
                .map_err(|e| ContainerUpdateError::Archive(e.to_string()))?;
        for s in skipped.iter().filter(|s| !s.vanished) {
            log.line(&format!("Not synced: {}: {}", s.local.display(), s.reason));
        }
        log.line(&format!(
            "Syncing {} file(s) to container {}",
            plan.copies.len(),
            short(id)
        ));
        match handle.channels().extract(docker, id, &tar).await {
            Ok(()) => {}
            Err(ChannelError::Unavailable) => {
                let options = UploadToContainerOptions {
                    path: "/".to_string(),
                    ..Default::default()
                };
                docker
                    .upload_to_container(id, Some(options), bollard::body_full(tar.into()))
                    .await
                    .map_err(DockerError::api(format!(
                        "copying files into container {}",
                        short(id)
                    )))?;
            }
            Err(e) => return Err(ContainerUpdateError::Sync(e)),
        }
        // Files deleted locally between planning and archiving are deleted remotely too.
        let vanished: Vec<String> = skipped
            .into_iter()
            .filter(|s| s.vanished)
            .map(|s| s.remote)
            .collect();
        remove(docker, id, &vanished).await?;
    }
    for run in &plan.runs {
        let command = display_command(&run.cmd);
        if !run.echo_off {
            log.line(&format!("Running: {command}"));
        }
        let code = exec(docker, id, &run.cmd, Some(log)).await?;
        if code != 0 {
            return Err(ContainerUpdateError::RunFailed { command, code });
        }
    }
    if plan.restart {
        log.line(&format!("Restarting container {}", short(id)));
        docker
            .restart_container(
                id,
                Some(RestartContainerOptions {
                    t: Some(0),
                    signal: None,
                }),
            )
            .await
            .map_err(DockerError::api(format!(
                "restarting container {}",
                short(id)
            )))?;
    }
    Ok(())
}

/// `rm -rf` of `paths` in the container.
async fn remove(docker: &Docker, id: &str, paths: &[String]) -> Result<(), ContainerUpdateError> {
    if paths.is_empty() {
        return Ok(());
    }
    let mut argv = vec!["rm".to_string(), "-rf".into(), "--".into()];
    argv.extend(paths.iter().cloned());
    let code = exec(docker, id, &argv, None).await?;
    if code != 0 {
        return Err(ContainerUpdateError::DeleteFailed {
            command: display_command(&argv),
            code,
        });
    }
    Ok(())
}

/// Runs `argv` in the container, its output to `log` (dropped when `None`); the exit code.
async fn exec(
    docker: &Docker,
    id: &str,
    argv: &[String],
    log: Option<&Arc<dyn LogSink>>,
) -> Result<i64, ContainerUpdateError> {
    let what = || {
        format!(
            "running {} in container {}",
            display_command(argv),
            short(id)
        )
    };
    let created = docker
        .create_exec(
            id,
            CreateExecOptions {
                cmd: Some(argv.to_vec()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(DockerError::api(what()))?;
    match docker
        .start_exec(&created.id, None)
        .await
        .map_err(DockerError::api(what()))?
    {
        StartExecResults::Attached { mut output, .. } => {
            let mut partial = String::new();
            while let Some(Ok(chunk)) = output.next().await {
                let (LogOutput::StdOut { message }
                | LogOutput::StdErr { message }
                | LogOutput::Console { message }) = chunk
                else {
                    continue;
                };
                let Some(log) = log else { continue };
                partial.push_str(&String::from_utf8_lossy(&message));
                while let Some(pos) = partial.find('\n') {
                    let line: String = partial.drain(..=pos).collect();
                    log.line(line.trim_end_matches(['\n', '\r']));
                }
            }
            if let Some(log) = log.filter(|_| !partial.is_empty()) {
                log.line(&partial);
            }
        }
        StartExecResults::Detached => {}
    }
    let inspect = docker
        .inspect_exec(&created.id)
        .await
        .map_err(DockerError::api(what()))?;
    Ok(inspect.exit_code.unwrap_or(-1))
}

/// The short id Docker shows.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
