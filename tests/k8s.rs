//! End to end against a real Kubernetes cluster (`../shared/k8s-cluster`): images built,
//! pushed to the registry the cluster advertises and deployed; pods followed to ready; logs
//! streamed; port-forwards served and re-established when the pod is replaced; live updates
//! into the running pod (sync and `run()`, same pod); crash reasons; CRDs applied before
//! their objects; a Service without `protocol`; `ci` verdicts both ways; `down`; and the
//! error paths (unreachable API server, refused context, rejected object, and recovery).

mod docker_support;
mod engine_support;
mod k8s_support;

use std::path::{Path, PathBuf};

use docker_support::*;
use engine_support::*;
use k8s_support::*;

/// busybox `httpd` serving /www on 8000, after printing a start line.
const DOCKERFILE: &str = "FROM tiltrs-test/busybox:latest
COPY www /www
CMD [\"sh\", \"-c\", \"echo started $(hostname); exec httpd -f -p 8000 -h /www\"]
";

fn app_yaml(ns: &str, image: &str) -> String {
    format!(
        "apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {image}
        ports: [{{containerPort: 8000}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8000}}]
"
    )
}

struct App {
    project: Project,
    ns: Namespace,
    repo: String,
    kubeconfig: PathBuf,
    port: u16,
}

impl Drop for App {
    fn drop(&mut self) {
        cleanup("", &[&self.repo]);
    }
}

fn app(kubeconfig: &Path, tiltfile_extra: &str) -> App {
    let ns = Namespace::new(kubeconfig);
    let repo = format!("tiltrs-test/{}", ns.name);
    let port = free_port();
    let tiltfile = format!(
        "allow_k8s_contexts(k8s_context())
docker_build('{repo}', '.', live_update=[
    sync('www', '/www'),
    run('cp /www/index.html /www/copy.html', trigger=['www/index.html']),
])
k8s_yaml('k8s.yaml')
k8s_resource('web', port_forwards='{port}:8000')
{tiltfile_extra}"
    );
    let project = project(&tiltfile, kubeconfig);
    project.write("Dockerfile", DOCKERFILE);
    project.write("www/index.html", "v1");
    project.write("k8s.yaml", &app_yaml(&ns.name, &repo));
    App {
        project,
        ns,
        repo,
        kubeconfig: kubeconfig.to_path_buf(),
        port,
    }
}

fn pod_names(a: &App) -> String {
    kubectl(
        &a.kubeconfig,
        &[
            "get",
            "pods",
            "-n",
            &a.ns.name,
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    )
    .unwrap_or_default()
}

#[test]
fn deploy_follow_forward_live_update_and_down() {
    let Some(kubeconfig) = cluster_or_skip("deploy_follow_forward_live_update_and_down") else {
        return;
    };
    let a = app(&kubeconfig, "");
    let mut up = Up::start(&a.project, &["--stream"]);
    // Pushed to the registry the cluster advertises, applied, followed to ready.
    up.wait_for("Pushing localhost:5000/");
    up.wait_for("is ready");
    wait_served(a.port, "/index.html", 200, "v1");
    // The container's own output reaches the resource's log.
    let lines = up.wait_for("started web-");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("web") && l.contains("started web-")),
        "{}",
        lines.join("\n")
    );
    // The applied image is the pushed one; the Service without `protocol` was applied.
    let image = kubectl(
        &a.kubeconfig,
        &[
            "get",
            "deploy",
            "web",
            "-n",
            &a.ns.name,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    )
    .expect("deployment");
    assert!(image.starts_with("localhost:5000/tiltrs-test_"), "{image}");
    kubectl(&a.kubeconfig, &["get", "service", "web", "-n", &a.ns.name]).expect("service");

    // A live update reaches the same pod: the sync, then the triggered run() step.
    let pod = pod_names(&a);
    a.project.write("www/index.html", "v2");
    wait_served(a.port, "/index.html", 200, "v2");
    wait_served(a.port, "/copy.html", 200, "v2");
    up.wait_for("Live update succeeded");
    assert_eq!(pod_names(&a), pod, "a live update must not replace the pod");

    // The pod is deleted under the port-forward and the log stream: both follow its
    // replacement.
    kubectl(
        &a.kubeconfig,
        &["delete", "pod", "-n", &a.ns.name, &pod, "--wait=false"],
    )
    .expect("delete pod");
    up.wait_for_count(2, |l| l.contains("started web-"));
    wait_until(|| {
        let now = pod_names(&a);
        (!now.is_empty() && !now.contains(&pod)).then_some(())
    })
    .expect("a replacement pod");
    // The replacement runs the image that was deployed, without the live-updated files.
    wait_served(a.port, "/index.html", 200, "v1");

    // Ctrl-C leaves everything running, as Tilt does.
    up.signal(libc::SIGINT);
    up.wait();
    kubectl(&a.kubeconfig, &["get", "deploy", "web", "-n", &a.ns.name]).expect("deployment kept");

    // `down` deletes what the Tiltfile applies and waits until it is gone; the Namespace stays.
    let out = output_of(&mut a.project.command("down"));
    assert!(out.0, "down failed:\n{}", out.1);
    assert!(out.1.contains("Deleted Deployment"), "{}", out.1);
    assert!(
        out.1.contains(&format!("Kept Namespace {}", a.ns.name)),
        "{}",
        out.1
    );
    assert!(
        kubectl(&a.kubeconfig, &["get", "deploy", "web", "-n", &a.ns.name]).is_err(),
        "the deployment is gone"
    );
    assert!(kubectl(&a.kubeconfig, &["get", "service", "web", "-n", &a.ns.name]).is_err());
    kubectl(&a.kubeconfig, &["get", "namespace", &a.ns.name]).expect("namespace kept");
}

/// `(success, stdout + stderr)` of a command run to completion.
fn output_of(c: &mut std::process::Command) -> (bool, String) {
    let o = c.output().expect("run tiltrs");
    (o.status.success(), text(&o))
}

#[test]
fn ci_passes_for_a_ready_chain_and_fails_on_crash_and_pull_errors() {
    let Some(kubeconfig) =
        cluster_or_skip("ci_passes_for_a_ready_chain_and_fails_on_crash_and_pull_errors")
    else {
        return;
    };
    // Three services in a dependency chain, each on its own Deployment.
    let ns = Namespace::new(&kubeconfig);
    let repo = format!("tiltrs-test/{}", ns.name);
    let mut yaml = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {}}}\n",
        ns.name
    );
    for svc in ["db", "api", "front"] {
        yaml.push_str(&format!(
            "---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {svc}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: {svc}}}}}
  template:
    metadata: {{labels: {{app: {svc}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {repo}
        readinessProbe: {{tcpSocket: {{port: 8000}}, periodSeconds: 1}}
",
            ns = ns.name
        ));
    }
    let tiltfile = format!(
        "allow_k8s_contexts(k8s_context())
docker_build('{repo}', '.')
k8s_yaml('k8s.yaml')
k8s_resource('api', resource_deps=['db'])
k8s_resource('front', resource_deps=['api'])
"
    );
    let p = project(&tiltfile, &kubeconfig);
    p.write("Dockerfile", DOCKERFILE);
    p.write("www/index.html", "ok");
    p.write("k8s.yaml", &yaml);
    let out = p.ci(&[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("SUCCESS. All workloads are healthy."), "{t}");
    // The chain was respected: db was ready before api started, api before front.
    let pos = |needle: &str| {
        t.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{t}"))
    };
    assert!(pos("db │ Pod db-") < pos("api │ Initial Build"), "{t}");

    // A crash-looping container fails the run, naming the resource and the reason.
    p.write(
        "k8s.yaml",
        &yaml.replace(
            "readinessProbe: {tcpSocket: {port: 8000}, periodSeconds: 1}",
            "command: [\"sh\", \"-c\", \"echo crashing; exit 3\"]",
        ),
    );
    let out = p.ci(&["--max-restarts", "1"]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("CrashLoopBackOff"), "{t}");
    assert!(t.contains("exit code 3"), "{t}");

    // An image that cannot be pulled fails it too.
    p.write_tiltfile("allow_k8s_contexts(k8s_context())\nk8s_yaml('k8s.yaml')\n");
    p.write(
        "k8s.yaml",
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---
apiVersion: v1
kind: Pod
metadata: {{name: nopull, namespace: {ns}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: main, image: 'localhost:5000/tiltrs-test/never-pushed:v1'}}
",
            ns = ns.name
        ),
    );
    let out = p.ci(&[]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("nopull") && (t.contains("ErrImagePull") || t.contains("ImagePullBackOff")),
        "{t}"
    );
    cleanup("", &[&repo]);
}

/// This cluster's v1.20 API server crashes when it decodes any custom object (its
/// json-iterator/reflect2 build faults in map iteration), so the CRD is applied and waited for
/// until established, but no object of its kind is created; the order of kinds is checked by
/// `k8s::manifest`'s unit tests.
#[test]
fn crds_and_namespaces_apply_first_and_down_removes_them() {
    let Some(kubeconfig) = cluster_or_skip("crds_and_namespaces_apply_first_and_down_removes_them")
    else {
        return;
    };
    let ns = Namespace::new(&kubeconfig);
    let group = format!("{}.tiltrs.dev", ns.name);
    // The ConfigMap and CRD come before the Namespace in the YAML: the CRD and Namespace
    // must still be applied first.
    let yaml = format!(
        "apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {ns}}}
data: {{mode: dev}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: widgets.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
---
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
",
        ns = ns.name
    );
    // An object whose image k8s_image_json_path() locates gets the built image there.
    let repo = format!("tiltrs-test/{}", ns.name);
    let yaml = format!(
        "{yaml}---
apiVersion: v1
kind: ConfigMap
metadata: {{name: imageref, namespace: {ns}}}
data: {{image: {repo}}}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: kept
  namespace: {ns}
  annotations: {{tilt.dev/down-policy: keep}}
",
        ns = ns.name
    );
    let p = project(
        &format!(
            "allow_k8s_contexts(k8s_context())
docker_build('{repo}', '.')
k8s_image_json_path('{{.data.image}}', kind='ConfigMap', name='imageref')
k8s_yaml('k8s.yaml')
k8s_resource('imageref', pod_readiness='ignore')
"
        ),
        &kubeconfig,
    );
    p.write("Dockerfile", DOCKERFILE);
    p.write("www/index.html", "ok");
    p.write("k8s.yaml", &yaml);
    let out = p.ci(&[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let pos = |needle: &str| {
        t.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{t}"))
    };
    assert!(
        pos("Applying CustomResourceDefinition") < pos("Applying Namespace"),
        "{t}"
    );
    assert!(
        pos("Applying Namespace") < pos("Applying ConfigMap settings"),
        "{t}"
    );
    let image = kubectl(
        &kubeconfig,
        &[
            "get",
            "configmap",
            "imageref",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.data.image}",
        ],
    )
    .expect("imageref");
    assert!(
        image.starts_with(&format!("localhost:5000/tiltrs-test_{}:tilt-", ns.name)),
        "{image}"
    );
    let established = kubectl(
        &kubeconfig,
        &[
            "get",
            "crd",
            &format!("widgets.{group}"),
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Established')].status}",
        ],
    );
    assert_eq!(established.as_deref(), Ok("True"));
    let out = output_of(&mut p.command("down"));
    assert!(out.0, "{}", out.1);
    assert!(
        out.1.contains("Deleted CustomResourceDefinition"),
        "{}",
        out.1
    );
    assert!(out.1.contains("Deleted ConfigMap"), "{}", out.1);
    assert!(
        out.1.contains(&format!(
            "Kept ConfigMap {}/kept (tilt.dev/down-policy: keep)",
            ns.name
        )),
        "{}",
        out.1
    );
    kubectl(&kubeconfig, &["get", "configmap", "kept", "-n", &ns.name]).expect("kept");
    cleanup("", &[&repo]);
    assert!(kubectl(&kubeconfig, &["get", "crd", &format!("widgets.{group}")]).is_err());
    // Namespaces go only with --delete-namespaces.
    kubectl(&kubeconfig, &["get", "namespace", &ns.name]).expect("namespace kept");
    let out = output_of(p.command("down").arg("--delete-namespaces"));
    assert!(out.0, "{}", out.1);
    assert!(
        out.1.contains(&format!("Deleted Namespace {}", ns.name)),
        "{}",
        out.1
    );
    assert!(kubectl(&kubeconfig, &["get", "namespace", &ns.name]).is_err());
}

#[test]
fn cluster_errors_are_clear_and_up_recovers() {
    let Some(kubeconfig) = cluster_or_skip("cluster_errors_are_clear_and_up_recovers") else {
        return;
    };
    let ns = Namespace::new(&kubeconfig);
    let good = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {ns}}}
data: {{mode: dev}}
",
        ns = ns.name
    );
    let bad = good.replace("name: settings", "name: Bad_Name");

    // A context that is not a known dev cluster and not allowed: Tilt's stop.
    let p = project("k8s_yaml('k8s.yaml')\n", &kubeconfig);
    p.write("k8s.yaml", &good);
    let out = p.ci(&[]);
    let t = text(&out);
    assert!(!out.status.success());
    assert!(t.contains("Stop! tiltrs-test might be production."), "{t}");
    assert!(t.contains("allow_k8s_contexts('tiltrs-test')"), "{t}");

    // An API server that cannot be reached.
    let unreachable = p.root.path().join("unreachable-kubeconfig");
    let config = std::fs::read_to_string(&kubeconfig).expect("kubeconfig");
    std::fs::write(
        &unreachable,
        config.replace("https://127.0.0.1:6443", "https://127.0.0.1:1"),
    )
    .expect("write");
    let mut q = project(
        "allow_k8s_contexts(k8s_context())\nk8s_yaml('k8s.yaml')\n",
        &unreachable,
    );
    q.write("k8s.yaml", &good);
    let out = q.ci(&[]);
    let t = text(&out);
    assert!(!out.status.success());
    assert!(
        t.contains("cannot reach the Kubernetes API server of context \"tiltrs-test\""),
        "{t}"
    );
    q.env.clear();

    // An object the API server rejects names its kind and name; `up` keeps running and
    // recovers when the file is fixed.
    p.write_tiltfile("allow_k8s_contexts(k8s_context())\nk8s_yaml('k8s.yaml')\n");
    p.write("k8s.yaml", &bad);
    let up = Up::start(&p, &["--stream"]);
    let lines = up.wait_for("applying ConfigMap");
    let joined = lines.join("\n");
    assert!(
        joined.contains(&format!("applying ConfigMap {}/Bad_Name", ns.name)),
        "{joined}"
    );
    p.write("k8s.yaml", &good);
    up.wait_for("Update succeeded");
    wait_kubectl(
        &kubeconfig,
        &[
            "get",
            "configmap",
            "settings",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.data.mode}",
        ],
        "dev",
    );
}

/// `k8s_custom_deploy`: the apply command gets the built image, its printed objects' pods are
/// followed to ready, and `down` runs the delete command.
#[test]
fn custom_deploy_applies_follows_and_deletes() {
    let Some(kubeconfig) = cluster_or_skip("custom_deploy_applies_follows_and_deletes") else {
        return;
    };
    let ns = Namespace::new(&kubeconfig);
    let repo = format!("tiltrs-test/{}", ns.name);
    kubectl(&kubeconfig, &["create", "namespace", &ns.name]).expect("namespace");
    let tiltfile = format!(
        "allow_k8s_contexts(k8s_context())
docker_build('{repo}', '.')
k8s_custom_deploy('custom',
  apply_cmd='sed \"s|IMAGE|$TILT_IMAGE_0|\" dep.yaml | kubectl apply -f - -o yaml',
  delete_cmd='kubectl delete -f dep.yaml',
  deps=['dep.yaml'], image_deps=['{repo}'])
"
    );
    let p = project(&tiltfile, &kubeconfig);
    p.write("Dockerfile", DOCKERFILE);
    p.write("www/index.html", "ok");
    p.write(
        "dep.yaml",
        &format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: custom, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: custom}}}}
  template:
    metadata: {{labels: {{app: custom}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: IMAGE
        readinessProbe: {{tcpSocket: {{port: 8000}}, periodSeconds: 1}}
",
            ns = ns.name
        ),
    );
    let out = p.ci(&[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("custom │ Pod custom-"), "{t}");
    let image = kubectl(
        &kubeconfig,
        &[
            "get",
            "deploy",
            "custom",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    )
    .expect("deployment");
    assert!(image.starts_with("localhost:5000/tiltrs-test_"), "{image}");
    let out = output_of(&mut p.command("down"));
    assert!(out.0, "{}", out.1);
    assert!(kubectl(&kubeconfig, &["get", "deploy", "custom", "-n", &ns.name]).is_err());
    cleanup("", &[&repo]);
}
