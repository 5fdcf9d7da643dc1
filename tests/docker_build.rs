//! Image builds against a real Docker engine, driven through `tiltrs ci` with Compose services:
//! `docker_build` options (dockerfile, build_args, target, only, ignore, extra_tag),
//! `.dockerignore` with exceptions, content tags and cache hits,
//! base images rebuilding their dependants, a failing build, and `custom_build`.

mod docker_support;
mod engine_support;

use docker_support::*;
use engine_support::*;

struct Names {
    project: String,
    repo: String,
}

impl Names {
    fn new(kind: &str) -> Names {
        let project = format!("tiltrs-{kind}-{}", marker().replace('.', ""));
        let repo = format!("tiltrs-test/{project}");
        Names { project, repo }
    }

    fn fill(&self, text: &str) -> String {
        text.replace("{repo}", &self.repo)
            .replace("{project}", &self.project)
            .replace("{base}", BASE_IMAGE)
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        let repos: Vec<String> = ["", "-base", "-only", "-custom", "-extra"]
            .iter()
            .map(|s| format!("{}{s}", self.repo))
            .collect();
        let repos: Vec<&str> = repos.iter().map(String::as_str).collect();
        cleanup(&self.project, &repos);
    }
}

const SLEEPER: &str = r#"
services:
  app:
    image: {repo}
    command: ["sleep", "3600"]
  only:
    image: {repo}-only
    command: ["sleep", "3600"]
"#;

#[test]
fn docker_build_options_dockerignore_cache_and_base_images() {
    if !docker_or_skip("docker_build_options_dockerignore_cache_and_base_images") {
        return;
    }
    let n = Names::new("build");
    let p = Project::new(&n.fill(
        r#"
docker_build('{repo}-base', 'base')
docker_build('{repo}', 'ctx', dockerfile='docker/app.Dockerfile',
  build_args={'GREETING': 'hello-arg'}, target='final', ignore=['ctx-ignored'],
  extra_tag='{repo}-extra:v1')
docker_build('{repo}-only', 'ctx', dockerfile='docker/app.Dockerfile', target='final',
  only=['src', 'keep.txt'])
docker_compose('docker-compose.yml', project_name='{project}')
"#,
    ));
    p.write("docker-compose.yml", &n.fill(SLEEPER));
    p.write(
        "base/Dockerfile",
        &n.fill("FROM {base}\nCOPY base.txt /base.txt\n"),
    );
    p.write("base/base.txt", "base v1");
    p.write(
        "docker/app.Dockerfile",
        &n.fill(
            "FROM {repo}-base AS deps\nARG GREETING\nRUN echo \"$GREETING\" > /greeting\n\
             FROM deps AS final\nCOPY . /ctx\n\
             FROM final AS never\nRUN exit 9\n",
        ),
    );
    p.write(
        "ctx/.dockerignore",
        "# comment\nsecret.txt\nlogs\n!logs/keep.log\n**/*.tmp\n",
    );
    for f in [
        "keep.txt",
        "secret.txt",
        "logs/a.log",
        "logs/keep.log",
        "src/main.c",
        "src/deep/x.tmp",
        "ctx-ignored",
        "other.txt",
    ] {
        p.write(&format!("ctx/{f}"), f);
    }

    let out = p.ci(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let app = tilt_tag(&n.repo);
    // The Dockerfile lives outside the context: like the docker CLI, tiltrs sends it under a
    // name the engine drops from the context, with the .dockerignore.
    let listing = run_in(&app, "cd /ctx && find . -type f | sort");
    assert_eq!(
        listing.lines().collect::<Vec<_>>(),
        [
            "./keep.txt",
            "./logs/keep.log",
            "./other.txt",
            "./src/main.c",
        ],
        "context of {app}"
    );
    assert_eq!(run_in(&app, "cat /greeting"), "hello-arg");
    assert_eq!(run_in(&app, "cat /base.txt"), "base v1");
    assert!(image_tags(&format!("{}-extra", n.repo)).contains(&format!("{}-extra:v1", n.repo)));
    let only = tilt_tag(&format!("{}-only", n.repo));
    let listing = run_in(&only, "cd /ctx && find . -type f | sort");
    assert_eq!(
        listing.lines().collect::<Vec<_>>(),
        ["./keep.txt", "./src/main.c"],
        "only= of {only}"
    );
    // The containers run the built tags.
    let images: Vec<String> = project_containers(&n.project)
        .iter()
        .map(|c| docker(&["inspect", "--format", "{{.Config.Image}}", c]).expect("inspect"))
        .collect();
    assert!(images.contains(&app), "{images:?}");
    assert!(images.contains(&only), "{images:?}");

    // Unchanged inputs: nothing is rebuilt, the same tag is used.
    let again = p.ci(&[]);
    assert!(again.status.success(), "{}", text(&again));
    let log = text(&again);
    assert!(log.contains(&format!("Image {app} is up to date")), "{log}");
    assert!(!log.contains("Step 1/"), "nothing may be built:\n{log}");

    // An excluded file changes nothing; an included one gives a new tag.
    p.write("ctx/secret.txt", "changed");
    p.write("ctx/logs/a.log", "changed");
    let out = p.ci(&[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(tilt_tag(&n.repo), app);
    // A base image change rebuilds its dependant on the new base.
    p.write("base/base.txt", "base v2");
    let out = p.ci(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let tags: Vec<String> = image_tags(&n.repo)
        .into_iter()
        .filter(|t| t.contains(":tilt-") && *t != app)
        .collect();
    assert_eq!(tags.len(), 1, "{tags:?}");
    assert_eq!(run_in(&tags[0], "cat /base.txt"), "base v2");
}

#[test]
fn failing_build_names_the_step_and_fails_ci() {
    if !docker_or_skip("failing_build_names_the_step_and_fails_ci") {
        return;
    }
    let n = Names::new("fail");
    let p = Project::new(&n.fill(
        "docker_build('{repo}', '.')\ndocker_compose('docker-compose.yml', project_name='{project}')\n",
    ));
    p.write(
        "docker-compose.yml",
        &n.fill("services:\n  app:\n    image: {repo}\n"),
    );
    p.write(
        "Dockerfile",
        &n.fill("FROM {base}\nRUN echo building && exit 3\n"),
    );
    let out = p.ci(&[]);
    assert!(!out.status.success(), "{}", text(&out));
    let log = text(&out);
    assert!(log.contains("RUN echo building && exit 3"), "{log}");
    assert!(log.contains("returned a non-zero code: 3"), "{log}");
    assert!(project_containers(&n.project).is_empty());
}

#[test]
fn custom_build_sets_expected_ref_and_checks_the_image() {
    if !docker_or_skip("custom_build_sets_expected_ref_and_checks_the_image") {
        return;
    }
    let n = Names::new("custom");
    let p = Project::new(&n.fill(
        r#"
custom_build('{repo}', 'docker tag {base} $EXPECTED_REF && echo "built $EXPECTED_REF" > {out}/expected', deps=['src'])
custom_build('{repo}-custom', 'docker tag {base} {repo}-custom:mine && echo {repo}-custom:mine > {out}/ref',
  deps=['src'], outputs_image_ref_to='{out}/ref')
docker_compose('docker-compose.yml', project_name='{project}')
"#,
    ));
    p.write(
        "docker-compose.yml",
        &n.fill(
            "services:\n  a:\n    image: {repo}\n    command: [\"sleep\", \"3600\"]\n  b:\n    image: {repo}-custom\n    command: [\"sleep\", \"3600\"]\n",
        ),
    );
    p.write("src/x", "x");
    let out = p.ci(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let expected = p.out_lines("expected");
    assert!(
        expected
            .first()
            .is_some_and(|l| l.starts_with(&format!("built {}:tilt-build-", n.repo))),
        "{expected:?}"
    );
    let images: Vec<String> = project_containers(&n.project)
        .iter()
        .map(|c| docker(&["inspect", "--format", "{{.Config.Image}}", c]).expect("inspect"))
        .collect();
    assert!(
        images.contains(&format!("{}-custom:mine", n.repo)),
        "{images:?}"
    );

    // A command that does not produce the image is an error naming it.
    p.write_tiltfile(&n.fill(
        "custom_build('{repo}', 'true', deps=['src'], tag='missing')\ndocker_compose('docker-compose.yml', project_name='{project}')\n",
    ));
    p.write(
        "docker-compose.yml",
        &n.fill("services:\n  a:\n    image: {repo}\n    command: [\"sleep\", \"3600\"]\n"),
    );
    let out = p.ci(&[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("image {}:missing does not exist", n.repo)),
        "{}",
        text(&out)
    );
}

#[test]
fn engine_options_reach_the_build() {
    if !docker_or_skip("engine_options_reach_the_build") {
        return;
    }
    let n = Names::new("opts");
    // The RUN step only succeeds without a network interface and with the extra host: a build
    // that ignored network= or extra_hosts= fails.
    let p = Project::new(&n.fill(
        r#"
docker_build('{repo}', 'ctx', dockerfile_contents='FROM {base}\nRUN grep -q "10.9.8.7[[:space:]]*tiltrs-host" /etc/hosts && ! ip link show eth0\nCOPY hello.txt /hello.txt\n',
  network='none', extra_hosts=['tiltrs-host:10.9.8.7'], cache_from=['{base}'], platform='linux/amd64')
docker_compose('docker-compose.yml', project_name='{project}')
"#,
    ));
    p.write(
        "docker-compose.yml",
        &n.fill("services:\n  app:\n    image: {repo}\n    command: [\"sleep\", \"3600\"]\n"),
    );
    p.write("ctx/hello.txt", "inline dockerfile");
    let out = p.ci(&[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        run_in(&tilt_tag(&n.repo), "cat /hello.txt"),
        "inline dockerfile"
    );

    // pull=True asks the engine to pull the base image, even with the result cached; no
    // registry is reachable here, so the build fails on that pull.
    p.write_tiltfile(&n.fill(
        r#"
docker_build('{repo}', 'ctx', dockerfile_contents='FROM {base}\nCOPY hello.txt /hello.txt\n', pull=True)
docker_compose('docker-compose.yml', project_name='{project}')
"#,
    ));
    let out = p.ci(&[]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(!log.contains("is up to date"), "{log}");
    assert!(log.contains("tiltrs-test/busybox"), "{log}");
}

#[test]
fn custom_build_deps_are_watched_under_up() {
    if !docker_or_skip("custom_build_deps_are_watched_under_up") {
        return;
    }
    let n = Names::new("cwatch");
    let p = Project::new(&n.fill(
        r#"
custom_build('{repo}', 'printf "FROM {base}\\nCOPY x /x\\n" | docker build -q -t $EXPECTED_REF -f - src', deps=['src'])
docker_compose('docker-compose.yml', project_name='{project}')
"#,
    ));
    p.write(
        "docker-compose.yml",
        &n.fill("services:\n  app:\n    image: {repo}\n    command: [\"sleep\", \"3600\"]\n"),
    );
    p.write("src/x", "one");
    let up = Up::start(&p, &["--stream"]);
    up.wait_for("Update succeeded");
    let first = container_image(&n.project);
    assert_eq!(run_in(&first, "cat /x"), "one");
    // Let the next build get a different EXPECTED_REF (it has one-second resolution).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    p.write("src/x", "two");
    up.wait_for_count(2, |l| l.contains("Update succeeded"));
    let second = container_image(&n.project);
    assert_ne!(first, second);
    assert_eq!(run_in(&second, "cat /x"), "two");
}

/// The image of the project's one container.
fn container_image(project: &str) -> String {
    let containers = project_containers(project);
    assert_eq!(containers.len(), 1, "{containers:?}");
    docker(&["inspect", "--format", "{{.Config.Image}}", &containers[0]]).expect("inspect")
}

/// Runs everywhere: no engine is needed to see the error for a missing one.
#[test]
fn an_unreachable_engine_is_a_clear_error_on_the_resource() {
    let p = Project::new(
        "docker_build('tiltrs-test/unreachable', '.')\ndocker_compose('docker-compose.yml', project_name='tiltrs-unreachable')\n",
    );
    p.write(
        "docker-compose.yml",
        "services:\n  app:\n    image: tiltrs-test/unreachable\n",
    );
    p.write("Dockerfile", "FROM scratch\n");
    let socket = p.out.join("no-docker.sock");
    let out = p
        .command("ci")
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .output()
        .expect("ci");
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("cannot connect to the Docker engine at DOCKER_HOST=unix://"),
        "{log}"
    );
    assert!(log.contains("app"), "the error names the resource:\n{log}");
}
