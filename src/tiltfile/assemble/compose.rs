//! Docker Compose assembly: each service `docker_compose` read becomes a resource, in project
//! order then service order. Here a service is matched to a `docker_build`/`custom_build` by
//! its image (or the deprecated `dc_resource(image=)`), `dc_resource` options are applied,
//! links are inferred from published ports, and Tilt's compose-only checks run
//! (`default_registry`, build entrypoints).

use crate::model::{ComposeSpec, Link, Resource, ResourceType};
use crate::tiltfile::assemble::images::{match_image, with_base_images};
use crate::tiltfile::state::{DcResourceOptions, State};

/// Compose services as resources, in the compose files' service order.
#[derive(Debug, Default)]
pub struct ComposeAssembly {
    pub resources: Vec<Resource>,
}

pub fn assemble(state: &mut State) -> Result<ComposeAssembly, String> {
    let has_services = state
        .compose_projects
        .iter()
        .any(|p| !p.services.is_empty());
    if has_services && state.settings.default_registry.is_some() {
        return Err("default_registry is not supported with docker compose".to_owned());
    }
    let mut resources = Vec::new();
    let mut watched = Vec::new();
    let default_options = DcResourceOptions::default();
    for project in &state.compose_projects {
        for svc in &project.services {
            let options = project.options.get(&svc.name).unwrap_or(&default_options);
            let image = options.image.as_deref().unwrap_or(&svc.image);
            let image_refs = match match_image(&state.images, image) {
                Some(target) => {
                    with_base_images(std::slice::from_ref(&target.image_ref), &state.images)
                }
                None => {
                    // A compose-managed build: compose builds it; Tilt watches its context.
                    watched.extend(svc.build_dockerignore.iter().cloned());
                    Vec::new()
                }
            };
            let overrides_entrypoint = image_refs.iter().any(|r| {
                state
                    .images
                    .iter()
                    .any(|i| &i.image_ref == r && !i.entrypoint.is_empty())
            });
            if overrides_entrypoint {
                return Err(
                    "docker_build/custom_build.entrypoint not supported for Docker Compose resources"
                        .to_owned(),
                );
            }

            let mut links = Vec::new();
            if options.infer_links != Some(false) {
                let mut seen = Vec::new();
                for port in &svc.published_ports {
                    if !seen.contains(port) {
                        seen.push(*port);
                        links.push(Link {
                            url: format!("http://localhost:{port}/"),
                            name: String::new(),
                        });
                    }
                }
            }
            links.extend(options.links.iter().cloned());

            let mut r = Resource::new(&svc.name, ResourceType::DockerCompose);
            r.trigger_mode = options
                .trigger_mode
                .unwrap_or(state.settings.default_trigger_mode);
            r.auto_init = options.auto_init.unwrap_or(true);
            r.resource_deps = options.resource_deps.clone();
            r.labels = options.labels.clone();
            r.image_refs = image_refs;
            r.links = links;
            r.docker_compose = Some(ComposeSpec {
                service: svc.service.clone(),
                project: project.name.clone(),
                config_files: project.config_files.clone(),
                project_dir: project.project_dir.clone(),
                service_config: svc.config.clone(),
                env_file: project.env_file.clone(),
                profiles: project.profiles.clone(),
                wait: project.wait,
            });
            resources.push(r);
        }
    }
    for path in watched {
        state.record_file(&path);
    }
    Ok(ComposeAssembly { resources })
}
