//! `custom_build`: the user's command builds the image; tiltrs names the ref it expects.
//!
//! As in Tilt, the command gets `EXPECTED_REF` (`name:tilt-build-<unix seconds>`, or
//! `name:<tag>` with `tag=`), `EXPECTED_REGISTRY`, `EXPECTED_IMAGE` and `EXPECTED_TAG`, plus
//! `TILT_IMAGE_i`/`TILT_IMAGE_MAP_i` for the declared images it builds on. With
//! `outputs_image_ref_to` the command writes the ref it built to that file instead. Unless
//! `skips_local_docker`, the image must exist in the engine afterwards.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{BuildEnv, BuildError, BuiltImage, split_tag};
use crate::docker::image_exists;
use crate::model::ImageTarget;
use crate::runtime::local::{CmdOutcome, run_cmd};
use crate::runtime::process::display_command;

pub(super) async fn build(
    image: &ImageTarget,
    base_tags: &BTreeMap<String, String>,
    env: &BuildEnv,
) -> Result<BuiltImage, BuildError> {
    let err = |message: String| BuildError::Custom {
        image: image.image_ref.clone(),
        message,
    };
    let spec = image
        .custom
        .as_ref()
        .ok_or_else(|| err("not a custom_build".into()))?;
    let (name, _) = split_tag(&image.image_ref);
    let tag = if spec.tag.is_empty() {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        format!("tilt-build-{secs}")
    } else {
        spec.tag.clone()
    };
    let expected = format!("{name}:{tag}");
    let mut cmd_env = env.env.clone();
    cmd_env.extend(spec.env.clone());
    cmd_env.insert("EXPECTED_REF".into(), expected.clone());
    cmd_env.insert("EXPECTED_IMAGE".into(), name.to_string());
    cmd_env.insert("EXPECTED_TAG".into(), tag);
    cmd_env.insert("EXPECTED_REGISTRY".into(), String::new());
    for (i, (base_ref, base_tag)) in base_tags.iter().enumerate() {
        cmd_env.insert(format!("TILT_IMAGE_{i}"), base_tag.clone());
        cmd_env.insert(format!("TILT_IMAGE_MAP_{i}"), base_ref.clone());
    }
    if let Some(out) = &spec.outputs_image_ref_to {
        // A stale ref from an earlier run must not pass for this one.
        let _ = std::fs::remove_file(out);
    }
    env.log.line(&format!(
        "Custom build: running {}",
        display_command(&spec.command)
    ));
    match run_cmd(
        &spec.command,
        spec.dir.clone(),
        cmd_env,
        env.log.clone(),
        env.cancel.clone(),
        env.grace,
        env.kill_now.clone(),
    )
    .await
    {
        CmdOutcome::Success => {}
        CmdOutcome::Cancelled => return Err(BuildError::Cancelled),
        CmdOutcome::Failed(status) => {
            return Err(err(format!(
                "command \"{}\" failed: {status}",
                display_command(&spec.command)
            )));
        }
        CmdOutcome::SpawnFailed(e) => return Err(err(e)),
    }
    let built_ref = match &spec.outputs_image_ref_to {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                err(format!(
                    "reading the image ref from outputs_image_ref_to {}: {e}",
                    path.display()
                ))
            })?;
            let r = text.trim().to_string();
            if r.is_empty() {
                return Err(err(format!(
                    "outputs_image_ref_to {} is empty",
                    path.display()
                )));
            }
            r
        }
        None => expected,
    };
    if !spec.skips_local_docker {
        let docker = env.docker.get().await?;
        if !image_exists(&docker, &built_ref).await? {
            return Err(err(format!(
                "the command succeeded, but image {built_ref} does not exist; \
                 it must build and tag $EXPECTED_REF (or set skips_local_docker=True)"
            )));
        }
    }
    env.log.line(&format!("Custom build produced {built_ref}"));
    Ok(BuiltImage {
        image_ref: image.image_ref.clone(),
        tag: built_ref,
        cached: false,
    })
}
