//! Tiltfile evaluation speed: a one-line Tiltfile, and the 200-service project that
//! `shared/bench/gen_big_tiltfile.py` describes (generated here the same way: 200 docker_build
//! + Deployment/Service/ConfigMap YAML, plus 200 local_resources).
//!
//! Run with `cargo bench --bench tiltfile_load`. Whole-process numbers (startup included) come
//! from `scripts/measure_load.py`.

use std::fmt::Write;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use tiltrs::tiltfile::{EvalOptions, evaluate};

/// Writes the big project into `dir` (same shape as gen_big_tiltfile.py).
fn write_big_project(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("k8s")).expect("mkdir k8s");
    std::fs::create_dir_all(dir.join("svc")).expect("mkdir svc");
    std::fs::write(dir.join("svc/Dockerfile"), "FROM bb:latest\nCOPY . /app\n")
        .expect("Dockerfile");
    let mut tiltfile = format!("# generated: {n} services\n");
    for i in 0..n {
        let name = format!("svc-{i:03}");
        let peer = format!("svc-{:03}", (i + 1) % n);
        let yaml = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels: {{app: {name}, tier: backend}}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}, tier: backend}}\n    spec:\n      containers:\n      - name: main\n        image: example.com/{name}\n        ports: [{{containerPort: 8080}}]\n        env:\n        - {{name: SERVICE, value: {name}}}\n        - {{name: PEER, value: {peer}}}\n        readinessProbe:\n          httpGet: {{path: /healthz, port: 8080}}\n        resources:\n          limits: {{cpu: 100m, memory: 64Mi}}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{port: 80, targetPort: 8080}}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-config\ndata:\n  LOG_LEVEL: info\n  FEATURE_X: \"true\"\n"
        );
        std::fs::write(dir.join(format!("k8s/{name}.yaml")), yaml).expect("yaml");
        let deps = if i % 10 != 0 {
            format!(", resource_deps=['svc-{:03}']", i - 1)
        } else {
            String::new()
        };
        let _ = writeln!(
            tiltfile,
            "docker_build('example.com/{name}', 'svc', live_update=[sync('svc', '/app'), run('touch /app/.reload')])"
        );
        let _ = writeln!(tiltfile, "k8s_yaml('k8s/{name}.yaml')");
        let _ = writeln!(
            tiltfile,
            "k8s_resource('{name}', port_forwards=['{}:8080'], labels=['group-{}']{deps})",
            10000 + i,
            i % 7
        );
        let _ = writeln!(
            tiltfile,
            "local_resource('task-{i:03}', cmd='echo {i}', deps=['svc/Dockerfile'], labels=['tasks'])"
        );
    }
    std::fs::write(dir.join("Tiltfile"), tiltfile).expect("Tiltfile");
}

fn options(path: &Path) -> EvalOptions {
    EvalOptions {
        path: path.to_path_buf(),
        args: Vec::new(),
        subcommand: "alpha tiltfile-result".into(),
        k8s: Default::default(),
    }
}

fn bench_load(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let one_line = tmp.path().join("one/Tiltfile");
    std::fs::create_dir_all(tmp.path().join("one")).expect("mkdir");
    std::fs::write(&one_line, "local_resource('hello', cmd='echo hello')\n").expect("write");
    let big = tmp.path().join("big");
    write_big_project(&big, 200);
    let big_tiltfile = big.join("Tiltfile");
    // Fail loudly rather than measure an error path.
    let result = evaluate(&options(&big_tiltfile)).unwrap_or_else(|e| panic!("{}", e.message));
    assert_eq!(
        result.resources.len(),
        401,
        "200 workloads + uncategorized + 200 local resources"
    );

    c.bench_function("evaluate one-line Tiltfile", |b| {
        b.iter(|| evaluate(&options(&one_line)))
    });
    let mut group = c.benchmark_group("evaluate 200-service project");
    group.sample_size(20);
    group.bench_function("evaluate", |b| b.iter(|| evaluate(&options(&big_tiltfile))));
    group.finish();
}

criterion_group!(benches, bench_load);
criterion_main!(benches);
