#!/usr/bin/env python3
"""Issue 7's numbers, measured on the test cluster (../shared/k8s-cluster) with the release
binary. Usage: benches/k8s.py [sync|ci|idle|crash|all] [--kubeconfig PATH] [--n N]

  sync   live_update into a pod: file save -> new content served through the port-forward
         (../shared/bench/sync_latency.py), p50/p90 over N edits
  ci     `tiltrs ci` for three built services in a dependency chain (images cached, objects
         not yet applied): wall, CPU and peak RSS of tiltrs, beside the cluster's own floor
         for the same objects (`kubectl apply` + `kubectl rollout status` of each service in the chain's order)
  idle   `tiltrs up` with 40 Kubernetes resources, settled: RSS and CPU ticks over 30 s
  crash  `tiltrs ci` with a crash-looping container: time to the failing verdict

Needs dockerd, the cluster (its kubeconfig in --kubeconfig or TILTRS_TEST_KUBECONFIG) and
`cargo build --release`. Each run uses fresh namespaces and deletes them afterwards."""
import os, shutil, socket, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout.split("host: ")[1].split()[0]
BIN = os.path.join(ROOT, "target", HOST, "release", "tiltrs")
SYNC_PY = os.environ.get("SYNC_LATENCY_PY", os.path.join(ROOT, "..", "shared", "bench", "sync_latency.py"))
BASE = "tiltrs-test/busybox:latest"
DOCKERFILE = ("FROM %s\nCOPY www /www\n"
              "CMD [\"sh\", \"-c\", \"echo started; exec httpd -f -p 8000 -h /www\"]\n" % BASE)


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


KUBECONFIG = arg("--kubeconfig", os.environ.get("TILTRS_TEST_KUBECONFIG", ""))
ENV = dict(os.environ, KUBECONFIG=KUBECONFIG, NO_COLOR="1", TILT_PORT="0")


def kubectl(*args, check=True):
    return subprocess.run(["kubectl", "--kubeconfig", KUBECONFIG, *args], check=check,
                          capture_output=True, text=True).stdout


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ensure_base_image():
    if subprocess.run(["docker", "image", "inspect", BASE], capture_output=True).returncode == 0:
        return
    root = tempfile.mkdtemp()
    for d in ("bin", "www", "tmp"):
        os.makedirs(os.path.join(root, d))
    shutil.copy("/bin/busybox", os.path.join(root, "bin", "busybox"))
    for applet in subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True).stdout.split():
        link = os.path.join(root, "bin", applet)
        if not os.path.exists(link):
            os.symlink("busybox", link)
    tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(["docker", "import", "-c", "ENV PATH=/bin", "-", BASE], stdin=tar.stdout, check=True,
                   capture_output=True)
    tar.wait()
    shutil.rmtree(root)


def deployment(name, ns, image, extra=""):
    return f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {image}
        ports: [{{containerPort: 8000}}]
        readinessProbe: {{tcpSocket: {{port: 8000}}, periodSeconds: 1}}
{extra}"""


def namespace(ns):
    return f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"


def project(tiltfile, yaml):
    d = tempfile.mkdtemp(prefix="tiltrs-k8s-bench-")
    proj = os.path.join(d, "project")
    os.makedirs(os.path.join(proj, "www"))
    with open(os.path.join(proj, "Tiltfile"), "w") as f:
        f.write(tiltfile)
    with open(os.path.join(proj, "k8s.yaml"), "w") as f:
        f.write(yaml)
    with open(os.path.join(proj, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)
    with open(os.path.join(proj, "www", "index.html"), "w") as f:
        f.write("start\n")
    return d, proj


def drop_namespaces(*names):
    for ns in names:
        kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)


def wait_http(url, needle="", limit=120):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            if needle in urllib.request.urlopen(url, timeout=2).read().decode():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit("not served: " + url)


def bench_sync(n):
    ns = "tiltrs-bench-sync-%d" % os.getpid()
    port = free_port()
    tiltfile = f"""allow_k8s_contexts(k8s_context())
docker_build('tiltrs-bench/k8s-sync', '.', live_update=[sync('www', '/www')])
k8s_yaml('k8s.yaml')
k8s_resource('web', port_forwards='{port}:8000')
"""
    work, proj = project(tiltfile, namespace(ns) + deployment("web", ns, "tiltrs-bench/k8s-sync"))
    log = open(os.path.join(work, "up.log"), "w")
    up = subprocess.Popen([BIN, "up", "--stream"], cwd=proj, env=ENV, stdout=log, stderr=log)
    try:
        wait_http(f"http://127.0.0.1:{port}/index.html", "start")
        time.sleep(1)
        out = subprocess.run([sys.executable, SYNC_PY, os.path.join(proj, "www", "index.html"),
                              f"http://127.0.0.1:{port}/index.html", str(n), "--gap", "0.3"],
                             capture_output=True, text=True).stdout
        print("== live_update into a pod, save -> served through the port-forward")
        print(out.strip().splitlines()[-1])
        pods = kubectl("get", "pods", "-n", ns, "-o", "jsonpath={.items[*].metadata.name}")
        print("pods after the edits (one means no pod was replaced):", pods)
    finally:
        up.send_signal(2)
        up.wait()
        subprocess.run([BIN, "down"], cwd=proj, env=ENV, capture_output=True)
        drop_namespaces(ns)
        shutil.rmtree(work)


def measured(argv, cwd):
    """Runs argv to completion: (wall s, CPU s, peak RSS MiB, exit code, output) of that
    process (wait4 gives its own rusage, not that of other children of this script)."""
    out = tempfile.TemporaryFile(mode="w+")
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=cwd, env=ENV, stdout=out, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    return (wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, p.returncode,
            out.read())


def chain_yaml(ns, image):
    y = namespace(ns)
    for svc in ("db", "api", "front"):
        y += deployment(svc, ns, image)
    return y


def bench_ci(runs):
    image = "tiltrs-bench/k8s-ci"
    tiltfile = f"""allow_k8s_contexts(k8s_context())
docker_build('{image}', '.')
k8s_yaml('k8s.yaml')
k8s_resource('api', resource_deps=['db'])
k8s_resource('front', resource_deps=['api'])
"""
    work, proj = project(tiltfile, chain_yaml("tiltrs-bench-ci-warm", image))
    used = ["tiltrs-bench-ci-warm"]
    try:
        # Warm: the image is built and pushed once, so the measured runs find it cached.
        w = measured([BIN, "ci"], proj)
        if w[3] != 0:
            raise SystemExit("warm-up ci failed:\n" + w[4])
        rows = []
        for i in range(runs):
            ns = "tiltrs-bench-ci-%d-%d" % (os.getpid(), i)
            used.append(ns)
            with open(os.path.join(proj, "k8s.yaml"), "w") as f:
                f.write(chain_yaml(ns, image))
            wall, cpu, rss, rc, out = measured([BIN, "ci"], proj)
            if rc != 0:
                raise SystemExit("ci failed:\n" + out)
            # The floor: the same objects (with the pushed image) applied by kubectl, then
            # waited for in the same order.
            fns = ns + "-floor"
            used.append(fns)
            pushed = kubectl("get", "deploy", "db", "-n", ns, "-o",
                             "jsonpath={.spec.template.spec.containers[0].image}")
            floor_dir = os.path.join(work, "floor")
            os.makedirs(floor_dir, exist_ok=True)
            with open(os.path.join(floor_dir, "0-namespace.yaml"), "w") as f:
                f.write(namespace(fns))
            for svc in ("db", "api", "front"):
                with open(os.path.join(floor_dir, svc + ".yaml"), "w") as f:
                    f.write(deployment(svc, fns, pushed))
            # In the chain's order, as resource_deps make tiltrs do it: each service is applied
            # once the one before it is ready.
            t0 = time.monotonic()
            kubectl("apply", "-f", os.path.join(floor_dir, "0-namespace.yaml"))
            for svc in ("db", "api", "front"):
                kubectl("apply", "-f", os.path.join(floor_dir, svc + ".yaml"))
                kubectl("rollout", "status", "-n", fns, "deployment/" + svc, "--timeout=120s")
            floor = time.monotonic() - t0
            # Each run starts on a quiet node: what it created is gone before the next.
            for gone in (ns, fns):
                kubectl("delete", "deployment", "--all", "-n", gone, "--cascade=foreground",
                        "--wait=true", "--timeout=120s", check=False)
            rows.append((wall, cpu, rss, floor))
            print("run %d: tiltrs ci wall %.2f s, CPU %.3f s, peak RSS %.1f MiB; kubectl floor %.2f s"
                  % (i + 1, wall, cpu, rss, floor))
        med = lambda k: sorted(r[k] for r in rows)[len(rows) // 2]
        print("== tiltrs ci, three built services in a chain (median of %d)" % runs)
        print("wall %.2f s, CPU %.3f s, peak RSS %.1f MiB; kubectl apply + rollout status floor %.2f s; difference %.2f s"
              % (med(0), med(1), med(2), med(3), med(0) - med(3)))
    finally:
        drop_namespaces(*used)
        shutil.rmtree(work)


def proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def proc_rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def bench_idle(n=40, settle=20, window=30):
    ns = "tiltrs-bench-idle-%d" % os.getpid()
    yaml = namespace(ns)
    for i in range(n):
        yaml += f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: svc{i}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: svc{i}}}}}
  template:
    metadata: {{labels: {{app: svc{i}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {{name: main, image: {BASE.replace(':latest', '')}-k8s-idle, command: [sleep, "100000"]}}
"""
    tiltfile = f"allow_k8s_contexts(k8s_context())\ndocker_build('{BASE.replace(':latest', '')}-k8s-idle', '.')\nk8s_yaml('k8s.yaml')\n"
    work, proj = project(tiltfile, yaml)
    log = open(os.path.join(work, "up.log"), "w")
    up = subprocess.Popen([BIN, "up", "--stream"], cwd=proj, env=ENV, stdout=log, stderr=log)
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 300:
            ready = kubectl("get", "pods", "-n", ns, "-o",
                            "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{' '}{end}",
                            check=False).split().count("True")
            if ready >= n:
                break
            time.sleep(2)
        time.sleep(settle)
        ticks0 = proc_stat(up.pid)
        time.sleep(window)
        ticks = proc_stat(up.pid) - ticks0
        print("== tiltrs up idle with %d Kubernetes resources, settled" % (n + 1))
        print("RSS %.1f MiB; CPU ticks in %d s: %d (%.3f%% of a core)"
              % (proc_rss_mib(up.pid), window, ticks, 100.0 * ticks / os.sysconf("SC_CLK_TCK") / window))
        log.flush()
        with open(os.path.join(work, "up.log")) as f:
            lines = f.read().splitlines()
        errors = [l for l in lines if "│ Error" in l or "failed" in l or "applying" in l]
        print("updates succeeded: %d; error lines: %d%s" % (
            sum("Update succeeded" in l for l in lines), len(errors),
            "".join("\n  " + l for l in errors[:5])))
    finally:
        up.send_signal(2)
        up.wait()
        subprocess.run([BIN, "down"], cwd=proj, env=ENV, capture_output=True)
        drop_namespaces(ns)
        shutil.rmtree(work)


def bench_crash():
    ns = "tiltrs-bench-crash-%d" % os.getpid()
    yaml = namespace(ns) + f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: crasher, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: crasher}}}}
  template:
    metadata: {{labels: {{app: crasher}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {{name: main, image: {BASE.replace(':latest', '')}-k8s-crash, command: [sh, -c, "echo boom; exit 2"]}}
"""
    tiltfile = f"allow_k8s_contexts(k8s_context())\ndocker_build('{BASE.replace(':latest', '')}-k8s-crash', '.')\nk8s_yaml('k8s.yaml')\n"
    work, proj = project(tiltfile, yaml)
    try:
        wall, cpu, rss, rc, out = measured([BIN, "ci"], proj)
        verdict = [l for l in out.splitlines() if l.startswith("Error:")]
        print("== tiltrs ci with a crash-looping container (default --max-restarts 3)")
        print("exit code %d after %.1f s: %s" % (rc, wall, verdict[-1] if verdict else out[-300:]))
    finally:
        drop_namespaces(ns)
        shutil.rmtree(work)


def main():
    if not KUBECONFIG:
        raise SystemExit("set TILTRS_TEST_KUBECONFIG or pass --kubeconfig (../shared/k8s-cluster/up)")
    if not os.path.exists(BIN):
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    ensure_base_image()
    what = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "all"
    n = int(arg("--n", "40"))
    if what in ("sync", "all"):
        bench_sync(n)
    if what in ("ci", "all"):
        bench_ci(int(arg("--runs", "5")))
    if what in ("idle", "all"):
        bench_idle()
    if what in ("crash", "all"):
        bench_crash()


if __name__ == "__main__":
    main()
