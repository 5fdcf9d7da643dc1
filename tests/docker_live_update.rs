//! End to end against a real Docker engine: a Compose service running busybox `httpd`, built by
//! `docker_build` with `live_update`, under `tiltrs up`. Syncs, deletes, `run()` with triggers,
//! `restart_container()`, `initial_sync()`, an escaping symlink left out, every fallback to a
//! full rebuild (fall_back_on, a file outside the syncs, a failing run step, a stopped
//! container), Ctrl-C leaving the containers, and `tiltrs down`
//! removing containers and networks.

mod docker_support;
mod engine_support;

use docker_support::*;
use engine_support::*;

const TILTFILE: &str = r#"
docker_build('{repo}', '.', dockerfile='Dockerfile', ignore=['ignored', 'restart'],
  live_update=[
    fall_back_on('fallback.txt'),
    sync('www', '/www'),
    run('cp /www/index.html /www/copy.html', trigger=['www/index.html']),
    run('cat /www/fail-me.html && exit 7', trigger=['www/fail-me.html']),
  ])
docker_build('{repo}-restart', 'restart', live_update=[
    initial_sync(),
    sync('restart/www', '/www'),
    restart_container(),
  ])
docker_compose('docker-compose.yml', project_name='{project}')
"#;

const COMPOSE: &str = r#"
services:
  web:
    image: {repo}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    init: true
    ports: ["127.0.0.1:{port}:80"]
  restarter:
    image: {repo}-restart
    command: ["sh", "-c", "date +%s%N > /www/started.txt; exec httpd -f -p 80 -h /www"]
    ports: ["127.0.0.1:{port2}:80"]
"#;

struct Setup {
    project: Project,
    name: String,
    repo: String,
    port: u16,
    port2: u16,
}

impl Drop for Setup {
    fn drop(&mut self) {
        cleanup(&self.name, &[&self.repo, &format!("{}-restart", self.repo)]);
    }
}

fn setup() -> Setup {
    let name = format!("tiltrs-lu-{}", marker().replace('.', ""));
    let repo = format!("tiltrs-test/{name}");
    let (port, port2) = (free_port(), free_port());
    let fill = |t: &str| {
        t.replace("{repo}", &repo)
            .replace("{project}", &name)
            .replace("{port}", &port.to_string())
            .replace("{port2}", &port2.to_string())
    };
    let project = Project::new(&fill(TILTFILE));
    project.write("docker-compose.yml", &fill(COMPOSE));
    project.write(
        "Dockerfile",
        &format!("FROM {BASE_IMAGE}\nCOPY www /www\nCOPY other.txt /other.txt\n"),
    );
    project.write("www/index.html", "v1");
    project.write("www/keep.html", "keep");
    project.write("other.txt", "other v1");
    project.write("fallback.txt", "f1");
    project.write("restart/Dockerfile", &format!("FROM {BASE_IMAGE}\n"));
    project.write("restart/www/hello.html", "hello from initial sync");
    Setup {
        project,
        name,
        repo,
        port,
        port2,
    }
}

#[test]
fn live_update_syncs_runs_restarts_and_falls_back() {
    if !docker_or_skip("live_update_syncs_runs_restarts_and_falls_back") {
        return;
    }
    let s = setup();
    let p = &s.project;
    let mut up = Up::start(p, &["--stream"]);
    wait_served(s.port, "/index.html", 200, "v1");
    // initial_sync put a file the image does not have.
    wait_served(s.port2, "/hello.html", 200, "hello from initial sync");
    let started = http_get(s.port2, "/started.txt").expect("started").1;
    let web_container = service_container(&s.name, "web");
    assert!(!web_container.is_empty());

    // A synced edit is served by the same container; the triggered run step copies it.
    p.write("www/index.html", "v2");
    wait_served(s.port, "/index.html", 200, "v2");
    wait_served(s.port, "/copy.html", 200, "v2");
    up.wait_for("Live update succeeded");
    // A new file, then its deletion.
    p.write("www/new.html", "brand new");
    wait_served(s.port, "/new.html", 200, "brand new");
    std::fs::remove_file(p.dir.join("www/new.html")).expect("rm");
    wait_served(s.port, "/new.html", 404, "");
    assert_eq!(
        http_get(s.port, "/keep.html").map(|r| r.1),
        Some("keep".into())
    );
    assert_eq!(
        service_container(&s.name, "web"),
        web_container,
        "live updates must not replace the container"
    );
    // An ignored file starts nothing.
    let before = up.count(|l| l.contains("File Changed") || l.contains("Files Changed"));
    p.write("ignored", "x");

    // restart_container(): the synced file is served by a restarted container.
    p.write("restart/www/hello.html", "hello again");
    wait_served(s.port2, "/hello.html", 200, "hello again");
    let restarted = super_wait(|| {
        http_get(s.port2, "/started.txt")
            .map(|r| r.1)
            .filter(|t| *t != started)
    });
    assert_ne!(restarted, started, "restart_container() must restart");
    assert_eq!(
        up.count(|l| l.contains("File Changed") || l.contains("Files Changed")),
        before + 1,
        "only the restart edit changed something:\n{}",
        up.output()
    );

    // A failing run step falls back to a full build and deploy.
    p.write("www/fail-me.html", "boom");
    up.wait_for("Live update failed");
    up.wait_for_count(1, |l| l.contains("exit code 7"));
    // A file outside every sync: full rebuild, and the new image has it.
    p.write("other.txt", "other v2");
    up.wait_for_count(1, |l| l.contains("other.txt") && l.contains("not"));
    wait_until(|| {
        let tags = image_tags(&s.repo);
        tags.iter()
            .any(|t| run_in(t, "cat /other.txt").contains("other v2"))
            .then_some(())
    })
    .expect("rebuilt image has the new other.txt");
    // fall_back_on: a full rebuild, and the log says why.
    p.write("fallback.txt", "f2");
    up.wait_for_count(1, |l| {
        l.contains("fallback.txt") && l.contains("fall_back_on")
    });
    // Four full deploys of web so far: the first, and the three fallbacks.
    up.wait_for_count(4, |l| {
        l.trim_start().starts_with("web") && l.contains("Update succeeded")
    });
    wait_served(s.port, "/index.html", 200, "v2");

    // A symlink leaving its sync is not synced.
    std::os::unix::fs::symlink("/etc", p.dir.join("www/evil")).expect("symlink");
    up.wait_for("Not synced");
    let web = service_container(&s.name, "web");
    assert!(
        docker(&["exec", &web, "test", "-e", "/www/evil"]).is_err(),
        "an escaping symlink reached the container"
    );
    let live_updates = up.count(|l| l.contains("Live update succeeded"));
    std::fs::remove_file(p.dir.join("www/evil")).expect("rm symlink");
    up.wait_for_count(live_updates + 1, |l| l.contains("Live update succeeded"));
    // A stopped container: the next change falls back to a full deploy.
    docker(&["stop", "-t", "0", &web]).expect("stop");
    wait_until(|| service_container(&s.name, "web").is_empty().then_some(()))
        .expect("container stopped");
    up.wait_for("exited with code");
    p.write("www/index.html", "v3");
    up.wait_for("no running container");
    wait_served(s.port, "/index.html", 200, "v3");

    // Ctrl-C leaves the containers running, as Tilt does.
    up.signal(libc::SIGINT);
    let status = up.wait();
    assert!(status.success(), "{status:?}\n{}", up.output());
    assert_eq!(project_containers(&s.name).len(), 2);
    wait_served(s.port, "/index.html", 200, "v3");

    // `down` removes every container and network of the project.
    let down = p.command("down").output().expect("down");
    assert!(down.status.success(), "{}", text(&down));
    assert!(project_containers(&s.name).is_empty());
    assert!(project_networks(&s.name).is_empty());
}

/// The running container of `service`.
fn service_container(project: &str, service: &str) -> String {
    docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        &format!("label=com.docker.compose.service={service}"),
    ])
    .expect("docker ps")
}

fn super_wait<T>(f: impl FnMut() -> Option<T>) -> T {
    wait_until(f).expect("condition never held")
}
