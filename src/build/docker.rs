//! `docker_build` through the Docker engine API.
//!
//! The image's inputs (the files its context includes, the Dockerfile after base images are
//! substituted, build args and options) are hashed into a content tag, `REF:tilt-<hash>`.
//! When the engine already has that tag nothing is built, so an unchanged image is never
//! rebuilt, also across restarts of tiltrs. Otherwise the context is tarred on a blocking
//! thread and streamed to the engine while it is being read, and the build output goes to the
//! resource's log line by line.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptions, TagImageOptions};
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::context::{self, ContextFilter};
use super::{BuildError, BuiltImage, content_tag, split_tag};
use crate::docker::{DockerError, image_exists};
use crate::model::ImageTarget;
use crate::runtime::LogSink;

/// Size of the chunks the context is streamed in.
const CHUNK: usize = 64 * 1024;

/// Builds `image` (or finds it already built). `base_tags` maps refs of declared images this
/// one builds on to the tags they were just built as; `FROM` lines naming them are rewritten.
pub async fn build(
    docker: &Docker,
    image: &ImageTarget,
    base_tags: &BTreeMap<String, String>,
    log: &Arc<dyn LogSink>,
    cancel: &CancellationToken,
) -> Result<BuiltImage, BuildError> {
    let filter = ContextFilter::for_image(image).map_err(|e| BuildError::Context {
        image: image.image_ref.clone(),
        message: e.to_string(),
    })?;
    let dockerfile = rewrite_from_lines(&image.dockerfile_contents, base_tags);
    let inside_context = image
        .dockerfile
        .as_ref()
        .and_then(|p| p.strip_prefix(&image.context).ok())
        .map(|p| p.to_string_lossy().into_owned());
    // Like the docker CLI, a Dockerfile from outside the context travels under a name of its
    // own, with a `.dockerignore` that makes the engine drop both from the context.
    let (dockerfile_name, dockerignore) = match inside_context {
        Some(rel) => (rel, None),
        None => {
            let hash = hex(&Sha256::digest(dockerfile.as_bytes()));
            let name = format!(".dockerfile.{}", &hash[..12]);
            let ignore = format!("{name}\n.dockerignore\n");
            (name, Some(ignore))
        }
    };
    let inputs = build_inputs(image, &dockerfile, &dockerfile_name);
    let digest = {
        let filter = filter.clone();
        tokio::task::spawn_blocking(move || context::digest(&filter, &inputs))
            .await
            .map_err(|e| BuildError::Internal(e.to_string()))?
            .map_err(|e| BuildError::Context {
                image: image.image_ref.clone(),
                message: e.to_string(),
            })?
    };
    let tag = content_tag(&image.image_ref, &digest);
    if !image.pull && image_exists(docker, &tag).await? {
        log.line(&format!("Image {tag} is up to date: inputs unchanged"));
        tag_extra(docker, image, &tag).await?;
        return Ok(BuiltImage {
            image_ref: image.image_ref.clone(),
            tag,
            cached: true,
        });
    }
    log.line(&format!(
        "Building Dockerfile for image {}",
        image.image_ref
    ));
    let options = BuildImageOptions {
        dockerfile: dockerfile_name.clone(),
        t: Some(tag.clone()),
        rm: true,
        forcerm: true,
        pull: image.pull.then(|| "1".to_string()),
        buildargs: Some(
            image
                .build_args
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        ),
        cachefrom: (!image.cache_from.is_empty()).then(|| image.cache_from.clone()),
        networkmode: (!image.network.is_empty()).then(|| image.network.clone()),
        extrahosts: (!image.extra_hosts.is_empty()).then(|| image.extra_hosts.join(",")),
        platform: image.platform.clone(),
        target: image.target.clone(),
        ..Default::default()
    };
    let mut generated = vec![(dockerfile_name, dockerfile.into_bytes())];
    if let Some(ignore) = dockerignore {
        generated.push((".dockerignore".to_string(), ignore.into_bytes()));
    }
    let (body, tar_error) = stream_context(filter, generated);
    let mut output = docker.build_image(options, None, Some(bollard::body_try_stream(body)));
    let mut last_step = String::new();
    loop {
        let item = tokio::select! {
            item = output.next() => item,
            _ = cancel.cancelled() => return Err(BuildError::Cancelled),
        };
        let Some(item) = item else { break };
        let info = item.map_err(|e| {
            // A context that could not be read explains the failure better than the engine.
            let tar_error = tar_error.lock().ok().and_then(|mut t| t.take());
            match tar_error {
                Some(message) => BuildError::Context {
                    image: image.image_ref.clone(),
                    message,
                },
                None => BuildError::Failed {
                    image: image.image_ref.clone(),
                    step: last_step.clone(),
                    message: e.to_string(),
                },
            }
        })?;
        if let Some(text) = &info.stream {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                if line.starts_with("Step ") {
                    last_step = line.to_string();
                }
                log.line(line);
            }
        }
        if let Some(status) = &info.status {
            log.line(status);
        }
        if let Some(message) = info.error_detail.and_then(|d| d.message) {
            log.line(&format!("ERROR: {message}"));
            return Err(BuildError::Failed {
                image: image.image_ref.clone(),
                step: last_step,
                message,
            });
        }
    }
    if !image_exists(docker, &tag).await? {
        return Err(BuildError::Failed {
            image: image.image_ref.clone(),
            step: last_step,
            message: format!("the engine reported no error, but {tag} does not exist"),
        });
    }
    tag_extra(docker, image, &tag).await?;
    log.line(&format!("Built image {tag}"));
    Ok(BuiltImage {
        image_ref: image.image_ref.clone(),
        tag,
        cached: false,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything besides the context files that decides the image.
fn build_inputs(image: &ImageTarget, dockerfile: &str, dockerfile_name: &str) -> Vec<u8> {
    let options = serde_json::json!({
        "dockerfile": dockerfile,
        "dockerfile_name": dockerfile_name,
        "build_args": image.build_args,
        "target": image.target,
        "network": image.network,
        "extra_hosts": image.extra_hosts,
        "platform": image.platform,
        "cache_from": image.cache_from,
    });
    options.to_string().into_bytes()
}

/// Gives the built image its `extra_tag`s.
async fn tag_extra(docker: &Docker, image: &ImageTarget, tag: &str) -> Result<(), BuildError> {
    for extra in &image.extra_tag {
        let (repo, t) = split_tag(extra);
        let options = TagImageOptions {
            repo: Some(repo.to_string()),
            tag: Some(t.unwrap_or("latest").to_string()),
        };
        docker
            .tag_image(tag, Some(options))
            .await
            .map_err(DockerError::api(format!("tagging {tag} as {extra}")))?;
    }
    Ok(())
}

type Chunk = std::io::Result<Bytes>;

/// The context as a stream of tar chunks, written on a blocking thread as the engine reads.
/// A failure to read the context ends the stream with an error and is kept in the returned
/// slot, so the build error can name it.
fn stream_context(
    filter: ContextFilter,
    generated: Vec<(String, Vec<u8>)>,
) -> (
    impl futures_util::Stream<Item = Chunk> + Send + 'static,
    Arc<std::sync::Mutex<Option<String>>>,
) {
    let (tx, rx) = mpsc::channel::<Chunk>(4);
    let error_slot = Arc::new(std::sync::Mutex::new(None));
    let slot = error_slot.clone();
    tokio::task::spawn_blocking(move || {
        let writer = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let files: Vec<(&str, &[u8])> = generated
            .iter()
            .map(|(name, contents)| (name.as_str(), contents.as_slice()))
            .collect();
        let result = context::write_tar(&filter, &files, writer).and_then(|mut w| {
            w.flush().map_err(|source| context::ContextError::Archive {
                path: filter.root().to_path_buf(),
                source,
            })
        });
        if let Err(e) = result {
            let message = e.to_string();
            if let Ok(mut s) = slot.lock() {
                *s = Some(message.clone());
            }
            let _ = tx.blocking_send(Err(std::io::Error::other(message)));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((chunk, rx))
    });
    (stream, error_slot)
}

/// A `Write` that hands fixed-size chunks to an async receiver.
struct ChunkWriter {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "build ended"))
    }
}

/// Rewrites `FROM` lines naming a declared image to the tag it was built as (Tilt injects
/// base images the same way).
pub fn rewrite_from_lines(dockerfile: &str, base_tags: &BTreeMap<String, String>) -> String {
    if base_tags.is_empty() {
        return dockerfile.to_string();
    }
    let mut out = String::with_capacity(dockerfile.len());
    for line in dockerfile.split_inclusive('\n') {
        out.push_str(&rewrite_from_line(line, base_tags).unwrap_or_else(|| line.to_string()));
    }
    out
}

fn rewrite_from_line(line: &str, base_tags: &BTreeMap<String, String>) -> Option<String> {
    let trimmed = line.trim_start();
    let keyword = trimmed.get(..4)?;
    if !keyword.eq_ignore_ascii_case("FROM") || !trimmed[4..].starts_with([' ', '\t']) {
        return None;
    }
    let indent = &line[..line.len() - trimmed.len()];
    let words: Vec<&str> = trimmed[4..].split_whitespace().collect();
    let image_index = words.iter().position(|w| !w.starts_with("--"))?;
    let image = words[image_index];
    let tag = base_tags.iter().find_map(|(r, tag)| {
        crate::tiltfile::assemble::images::ref_matches(r, image).then_some(tag)
    })?;
    let mut words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    words[image_index] = tag.clone();
    let newline = if line.ends_with('\n') { "\n" } else { "" };
    Some(format!("{indent}FROM {}{newline}", words.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lines_naming_declared_images_are_rewritten() {
        let tags = BTreeMap::from([("base".to_string(), "base:tilt-0123".to_string())]);
        let df = "FROM base AS b\nRUN x\nfrom --platform=linux/amd64 base:latest\nFROM other\n";
        assert_eq!(
            rewrite_from_lines(df, &tags),
            "FROM base:tilt-0123 AS b\nRUN x\nFROM --platform=linux/amd64 base:tilt-0123\nFROM other\n"
        );
    }
}
