//! Docker Compose services against a real engine, through `tiltrs ci`: container logs in the
//! resource's log, health from the engine gating `resource_deps`, `dc_resource` renames and
//! labels, a crashing container failing `ci` with its exit code, and `down`.

mod docker_support;
mod engine_support;

use docker_support::*;
use engine_support::*;

struct Compose {
    project: Project,
    name: String,
}

impl Drop for Compose {
    fn drop(&mut self) {
        cleanup(&self.name, &[]);
    }
}

fn compose(tiltfile: &str, compose_file: &str) -> Compose {
    let name = format!("tiltrs-dc-{}", marker().replace('.', ""));
    let fill = |t: &str| t.replace("{project}", &name).replace("{base}", BASE_IMAGE);
    let project = Project::new(&fill(tiltfile));
    project.write("docker-compose.yml", &fill(compose_file));
    Compose { project, name }
}

#[test]
fn health_gates_dependants_and_logs_are_streamed() {
    if !docker_or_skip("health_gates_dependants_and_logs_are_streamed") {
        return;
    }
    let c = compose(
        r#"
docker_compose('docker-compose.yml', project_name='{project}')
dc_resource('healthy', new_name='db', labels=['backend'])
dc_resource('app', resource_deps=['db'])
"#,
        r#"
services:
  healthy:
    image: {base}
    command: ["sh", "-c", "echo db-says-hello; sleep 2; touch /tmp/ready; exec sleep 3600"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      retries: 30
  app:
    image: {base}
    command: ["sh", "-c", "echo app-started; exec sleep 3600"]
  oneshot:
    image: {base}
    command: ["sh", "-c", "echo oneshot-done"]
"#,
    );
    let out = c.project.ci(&[]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    // Container output reaches each resource's log, under the resource's (new) name.
    for (resource, line) in [
        ("db", "db-says-hello"),
        ("app", "app-started"),
        ("oneshot", "oneshot-done"),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(line)
                    && l.split('│').next().is_some_and(|p| p.trim() == resource)),
            "{resource} should log {line}:\n{log}"
        );
    }
    // app waited for db to become healthy before its first update.
    let lines: Vec<&str> = log.lines().collect();
    let db_ready = lines
        .iter()
        .position(|l| l.trim_start().starts_with("db ") && l.contains("Update succeeded"))
        .expect("db updated");
    let app_start = lines
        .iter()
        .position(|l| l.trim_start().starts_with("app") && l.contains("Initial Build"))
        .expect("app started");
    assert!(app_start > db_ready, "{log}");
    let health = docker(&[
        "inspect",
        "--format",
        "{{.State.Health.Status}}",
        &format!("{}_healthy_1", c.name),
    ])
    .or_else(|_| {
        docker(&[
            "inspect",
            "--format",
            "{{.State.Health.Status}}",
            &format!("{}-healthy-1", c.name),
        ])
    })
    .expect("inspect");
    assert_eq!(health, "healthy", "ci must wait for the healthcheck");

    let down = c.project.command("down").output().expect("down");
    assert!(down.status.success(), "{}", text(&down));
    assert!(project_containers(&c.name).is_empty());
    assert!(project_networks(&c.name).is_empty());
}

#[test]
fn a_crashing_container_fails_ci_with_its_exit_code() {
    if !docker_or_skip("a_crashing_container_fails_ci_with_its_exit_code") {
        return;
    }
    let c = compose(
        "docker_compose('docker-compose.yml', project_name='{project}')\n",
        r#"
services:
  crasher:
    image: {base}
    command: ["sh", "-c", "echo about-to-crash; exit 3"]
"#,
    );
    let out = c.project.ci(&[]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("about-to-crash"), "{log}");
    assert!(log.contains("exited with code 3"), "{log}");
}
