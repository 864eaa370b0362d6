"""Runs the pods of rendered overlays as a kubelet would, without a cluster: run by
scripts/check/k8s_pods.sh.

    k8s_pods.py run --bin-dir DIR --mailpit FILE [--self-test] [--walk NAME=SCRIPT]
                    NAME=RENDERED.yaml ...
    k8s_pods.py probe KIND PORT PATH TIMEOUT      one probe call (used inside a pod's
                                                  network namespace)
    k8s_pods.py rotate --bin-dir DIR STEP1.yaml STEP2.yaml STEP3.yaml
                                                  prod's auth-service at each step of the
                                                  signing-key rotation: the keys it publishes
                                                  and the one it signs with
    k8s_pods.py images COMMANDS DEV.yaml COMPOSE  the commands scripts/k8s-images.sh prints
                                                  (dry run) build every ecom image of the dev
                                                  overlay from the Dockerfile target of its
                                                  name, load each one, and compose builds the
                                                  same names

For every Deployment or StatefulSet whose program exists here (the six ecom services,
from the cargo build the Dockerfile copies into the images, and Mailpit from the native
stack) it starts one pod under bubblewrap with:
  - the container's command and args (else the image's entrypoint), with $(VAR) expanded;
  - the user and group of the securityContext (setpriv, a real uid, no capabilities);
  - a read-only root filesystem when the spec says so (else a writable throwaway one);
  - only the declared volumes: emptyDir as a tmpfs (sizeLimit kept), Secret and
    ConfigMap volumes as read-only files owned by root and the fsGroup, with their mode;
  - the environment from the rendered ConfigMaps and Secrets (Secrets created by hand
    get the test values of TEST_SECRETS; database credentials point at the native stack);
  - an /etc/hosts in which every cluster Service name (and every *.svc host the
    configuration names) resolves to its service pod's own loopback address
    (127.0.100.N, see POD_IPS), or to this machine's, where the native stack listens.
Then its startup, readiness and liveness probes are called at their declared ports and
paths, each within its budget (initialDelaySeconds + periodSeconds x failureThreshold,
each call within timeoutSeconds), and the port its prometheus.io annotations name must
serve the metrics and nothing else. Pods start one after another, each ready before the
next (dependencies first), and all get SIGTERM at the end of an overlay and must exit
within terminationGracePeriodSeconds.

The ecom services share this machine's network, each on its own loopback address (they
reach the native MariaDB, FerretDB, Kafka, Mailpit and Jaeger on 127.0.0.1); a
dependency such as Mailpit, whose ports the native stack already holds, gets a network
namespace of its own and is probed inside it.

--walk NAME=SCRIPT runs SCRIPT (bash) while every pod of overlay NAME is ready: the
operator's walk through a deployment, which must succeed.

--self-test first runs the dev Mailpit as it stood before it had a temp volume (its
volumes removed): that pod must fail, or the check could not see the fault it exists for.
"""

import argparse
import base64
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVICES = ["auth-service", "product-service", "inventory-service", "order-service", "notification-service", "api-gateway"]
IMAGE_USER = 65532  # the Dockerfile's USER, and the distroless nonroot user
# Each service pod's own address, as a cluster gives each pod an IP: a pod binding
# 0.0.0.0:8080 takes 8080 on its address only, so the check runs beside anything else
# on this machine's ports (`ecom dev` on 127.0.0.1:8080, say). All of 127.0.0.0/8 is
# loopback, so the native stack on 127.0.0.1 stays reachable from every pod.
POD_IPS = {name: f"127.0.100.{n}" for n, name in enumerate(SERVICES, 1)}
NATIVE_MYSQL = os.environ.get("ECOM_TEST_MYSQL_URL", "mysql://ecom:ecom@127.0.0.1:3306")

# Secrets an operator creates by hand (docs/kubernetes.md, "Secrets"): the test values
# the pods get here. A value of None is filled in at run time.
TEST_SECRETS = {
    "auth-service": {
        "DATABASE_URL": "mysql://ecom_auth:pw@mysql.databases.svc:3306/ecom_auth",
        "ECOM_ADMIN_EMAIL": "admin@pods.ecom.test",
        "ECOM_ADMIN_PASSWORD": "pod-check-admin-password",
    },
    # key-2.pem: the key a rotation adds (docs/kubernetes.md, "Rotating the signing key").
    "auth-service-jwt-keys": {"jwt-signing-key.pem": None, "key-2.pem": None},
    "ecom-service-client": {"client-secret": None},
    "product-service": {"DATABASE_URL": "mongodb://mongodb.databases.svc:27017/ecom_products"},
    "order-service": {"DATABASE_URL": "mysql://ecom_orders:pw@mysql.databases.svc:3306/ecom_orders"},
    "inventory-service": {"DATABASE_URL": "mysql://ecom_inventory:pw@mysql.databases.svc:3306/ecom_inventory"},
    "notification-service": {
        "DATABASE_URL": "mysql://ecom_notifications:pw@mysql.databases.svc:3306/ecom_notifications",
        # The native Mailpit takes mail without credentials.
        "ECOM_SMTP_USERNAME": "",
        "ECOM_SMTP_PASSWORD": "",
    },
}

RUN_ID = f"{int(time.time())}_{os.getpid()}"
GENERATED = {}
problems = []
quiet = False


def problem(where, what):
    problems.append(f"{where}: {what}")
    if not quiet:
        print(f"k8s pods: FAIL {where}: {what}", flush=True)


def say(text):
    print(f"k8s pods: {text}", flush=True)


# ---------------------------------------------------------------- the rendered objects


class Build:
    def __init__(self, name, path):
        self.name = name
        self.docs = [d for d in yaml.safe_load_all(pathlib.Path(path).read_text(encoding="utf-8")) if d]
        self.objects = {(d["kind"], d["metadata"]["name"]): d for d in self.docs}
        self.namespace = next((d["metadata"]["name"] for d in self.docs if d["kind"] == "Namespace"), "default")

    def workloads(self):
        return [d for d in self.docs if d["kind"] in ("Deployment", "StatefulSet")]

    def config_map(self, ref):
        o = self.objects.get(("ConfigMap", ref))
        return None if o is None else dict(o.get("data", {}))

    def secret(self, ref):
        o = self.objects.get(("Secret", ref))
        if o is not None:
            data = {k: base64.b64decode(v).decode() for k, v in o.get("data", {}).items()}
            data.update(o.get("stringData", {}))
            return data
        if ref not in TEST_SECRETS:
            return None
        # Made once per run: every overlay and every step of a rotation sees the same.
        if ref not in GENERATED:
            GENERATED[ref] = {k: (test_value(ref, k) if v is None else v) for k, v in TEST_SECRETS[ref].items()}
        return GENERATED[ref]

    def hosts(self, extra):
        """Every Service name in all its forms, and the *.svc hosts named in `extra`, each
        with its address: a service's pod address, else this machine's (where the native
        stack listens)."""
        names = {}
        for d in self.docs:
            if d["kind"] == "Service":
                n = d["metadata"]["name"]
                ns = d["metadata"].get("namespace", self.namespace)
                for name in (n, f"{n}.{ns}", f"{n}.{ns}.svc", f"{n}.{ns}.svc.cluster.local"):
                    names[name] = POD_IPS.get(n, "127.0.0.1")
        for value in extra:
            for h in re.findall(r"[A-Za-z0-9.-]+\.svc(?:\.cluster\.local)?\b", value):
                names.setdefault(h, POD_IPS.get(h.split(".")[0], "127.0.0.1"))
        return sorted(names.items())


def test_value(secret, key):
    if key.endswith(".pem"):
        # The docs' own command (docs/kubernetes.md, "Secrets").
        out = subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519"], check=True, capture_output=True, text=True)
        return out.stdout
    out = subprocess.run(["openssl", "rand", "-hex", "32"], check=True, capture_output=True, text=True)
    return out.stdout.strip()


# ---------------------------------------------------------------- one pod


class Program:
    """What an image runs here: the file standing in for it and its entrypoint."""

    def __init__(self, source, path, entrypoint, kind):
        self.source, self.path, self.entrypoint, self.kind = source, path, entrypoint, kind


def program_of(image, bin_dir, mailpit):
    repo = image.rsplit("@", 1)[0]
    repo = repo.rsplit(":", 1)[0] if ":" in repo.split("/")[-1] else repo
    name = repo.split("/")[-1]
    if repo.startswith("ghcr.io/ecom/") and name in SERVICES:
        path = f"/usr/local/bin/{name}"
        return Program(pathlib.Path(bin_dir) / name, path, [path], "service")
    if repo in ("axllent/mailpit", "docker.io/axllent/mailpit"):
        return Program(pathlib.Path(mailpit), "/mailpit", ["/mailpit"], "dependency")
    return None


def expand(value, env):
    """Kubernetes' $(VAR) expansion; $$ escapes, unknown names stay as written."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)


class Pod:
    def __init__(self, build, workload, program, container, where):
        self.build, self.workload, self.program, self.c, self.where = build, workload, program, container, where
        self.spec = workload["spec"]["template"]["spec"]
        self.work = pathlib.Path(tempfile.mkdtemp(prefix="pod-"))
        self.proc = None
        self.child = None
        self.log = self.work / "log"

    # -- configuration

    def environment(self):
        env = {}
        for e in self.c.get("envFrom", []):
            prefix = e.get("prefix", "")
            if "configMapRef" in e:
                ref, data = e["configMapRef"]["name"], self.build.config_map(e["configMapRef"]["name"])
                kind = "ConfigMap"
            else:
                ref, data = e["secretRef"]["name"], self.build.secret(e["secretRef"]["name"])
                kind = "Secret"
            if data is None:
                if (e.get("configMapRef") or e.get("secretRef")).get("optional"):
                    continue
                raise PodError(f"{kind} {ref} is neither in the build nor one with test values")
            env.update({prefix + k: v for k, v in data.items()})
        for e in self.c.get("env", []):
            if "value" in e:
                env[e["name"]] = expand(e["value"], env)
                continue
            ref = e.get("valueFrom", {})
            if "secretKeyRef" in ref or "configMapKeyRef" in ref:
                kind = "Secret" if "secretKeyRef" in ref else "ConfigMap"
                r = ref.get("secretKeyRef") or ref.get("configMapKeyRef")
                data = self.build.secret(r["name"]) if kind == "Secret" else self.build.config_map(r["name"])
                if data is None or r["key"] not in data:
                    if r.get("optional"):
                        continue
                    raise PodError(f"{e['name']}: {kind} {r['name']} has no key {r['key']}")
                env[e["name"]] = data[r["key"]]
            elif "fieldRef" in ref:
                field = ref["fieldRef"]["fieldPath"]
                env[e["name"]] = {"metadata.name": self.pod_name(), "metadata.namespace": self.build.namespace}.get(field, self.ip())
            else:
                env[e["name"]] = ""
        for key, value in list(env.items()):
            env[key] = native_database(value, self.build.name)
        if self.program.kind == "service":
            # 0.0.0.0 in a pod is the pod's own address; unset, the service binds 0.0.0.0.
            for key in ("ECOM_BIND_ADDR", "ECOM_METRICS_BIND_ADDR"):
                if env.get(key, "").startswith("0.0.0.0:"):
                    env[key] = self.ip() + env[key][len("0.0.0.0"):]
            if "ECOM_BIND_ADDR" not in env:
                http = next((p["containerPort"] for p in self.c.get("ports", []) if p.get("name") == "http"), None)
                if http is None:
                    raise PodError("no container port named http to bind")
                env["ECOM_BIND_ADDR"] = f"{self.ip()}:{http}"
        return env

    def secret_file_values(self):
        """The database URLs the pod reads from Secrets mounted as files (prod's
        DATABASE_URL_FILE), as the pod will see them."""
        mounted = {m["name"] for m in self.c.get("volumeMounts", [])}
        values = []
        for v in self.spec.get("volumes", []):
            if v["name"] in mounted and "secret" in v:
                data = self.build.secret(v["secret"]["secretName"]) or {}
                values += [native_database(data[k], self.build.name) for k in data if k == "DATABASE_URL"]
        return values

    def pod_name(self):
        return f"{self.workload['metadata']['name']}-podcheck"

    def ip(self):
        """Where the pod listens: its own address, or, for a dependency in a network
        namespace of its own, that namespace's loopback."""
        return POD_IPS.get(self.workload["metadata"]["name"], "127.0.0.1") if self.program.kind == "service" else "127.0.0.1"

    def security(self):
        psc = self.spec.get("securityContext", {})
        csc = self.c.get("securityContext", {})
        uid = csc.get("runAsUser", psc.get("runAsUser", IMAGE_USER if self.program.kind == "service" else 0))
        gid = csc.get("runAsGroup", psc.get("runAsGroup", uid))
        non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot", False))
        if non_root and uid == 0:
            raise PodError("runAsNonRoot with user 0: the kubelet refuses to start it")
        return uid, gid, psc.get("fsGroup"), csc.get("readOnlyRootFilesystem", False)

    def volume_args(self, fs_group):
        # A container runtime creates the parents of a mount point 0755, bubblewrap 0700.
        args = []
        made = set()

        def parents(target):
            for parent in reversed(pathlib.PurePosixPath(target).parents):
                if str(parent) != "/" and str(parent) not in made:
                    made.add(str(parent))
                    args.extend(["--perms", "0755", "--dir", str(parent)])
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        for m in self.c.get("volumeMounts", []):
            v = volumes.get(m["name"])
            if v is None:
                raise PodError(f"volumeMount {m['name']} names no volume")
            if m.get("subPath") or m.get("subPathExpr"):
                raise PodError(f"volumeMount {m['name']}: subPath is not supported by this check")
            target = m["mountPath"]
            parents(target)
            if "emptyDir" in v:
                size = v["emptyDir"].get("sizeLimit")
                args += ["--perms", "1777"]
                if size:
                    args += ["--size", str(bytes_of(size))]
                args += ["--tmpfs", target]
                if m.get("readOnly"):
                    args += ["--remount-ro", target]
            elif "secret" in v or "configMap" in v:
                kind = "secret" if "secret" in v else "configMap"
                src = v[kind]
                ref = src["secretName"] if kind == "secret" else src["name"]
                data = self.build.secret(ref) if kind == "secret" else self.build.config_map(ref)
                if data is None:
                    if src.get("optional"):
                        data = {}
                    else:
                        raise PodError(f"volume {v['name']}: {kind} {ref} is neither in the build nor one with test values")
                mode = src.get("defaultMode", 0o644)
                items = src.get("items") or [{"key": k, "path": k} for k in data]
                d = self.work / "volumes" / v["name"]
                d.mkdir(parents=True)
                os.chmod(d, 0o755)
                for item in items:
                    if item["key"] not in data:
                        raise PodError(f"volume {v['name']}: {kind} {ref} has no key {item['key']}")
                    f = d / item["path"]
                    f.parent.mkdir(parents=True, exist_ok=True)
                    text = data[item["key"]]
                    if kind == "secret" and item["key"] == "DATABASE_URL":
                        text = native_database(text, self.build.name)
                    f.write_text(text, encoding="utf-8")
                    os.chown(f, 0, fs_group if fs_group is not None else 0)
                    os.chmod(f, item.get("mode", mode))
                # Secret and ConfigMap volumes are read-only whatever the mount says.
                args += ["--ro-bind", str(d), target]
            else:
                raise PodError(f"volume {v['name']}: only emptyDir, secret and configMap volumes are run here")
        return args

    # -- running

    def start(self, hosts):
        env = self.environment()
        uid, gid, fs_group, read_only = self.security()
        command = [expand(a, env) for a in (self.c.get("command") or self.program.entrypoint)]
        command += [expand(a, env) for a in self.c.get("args", [])]
        etc = self.work / "etc"
        etc.mkdir()
        (etc / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n" + "".join(f"{ip} {h}\n" for h, ip in hosts))
        (etc / "nsswitch.conf").write_text("hosts: files dns\n")
        (etc / "passwd").write_text("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
        (etc / "group").write_text("root:x:0:\nnonroot:x:65532:\n")
        (etc / "resolv.conf").write_text("")
        if not self.program.source.is_file():
            raise PodError(f"{self.program.source} does not exist")
        if self.program.kind == "service":
            for port in (p["containerPort"] for p in self.c.get("ports", [])):
                if port_taken(self.ip(), port):
                    raise PodError(f"port {port} is taken on {self.ip()}; the pod needs it (stop what listens there)")

        groups = [str(gid)] + ([str(fs_group)] if fs_group is not None and fs_group != gid else [])
        # The program is PID 1 of its PID namespace, as in a container: SIGTERM reaches it.
        args = ["bwrap", "--die-with-parent", "--unshare-pid", "--as-pid-1", "--unshare-ipc", "--unshare-uts", "--hostname", self.pod_name()]
        if self.program.kind == "dependency":
            args.append("--unshare-net")
        for d in ("/usr", "/usr/local", "/usr/local/bin", "/etc", "/.pod", "/tmp", "/var", "/var/lib", "/var/lib/ecom", "/home", "/home/nonroot"):
            args += ["--perms", "0755", "--dir", d]
        for lib in ("/usr/lib", "/usr/lib64"):
            if os.path.isdir(lib):
                args += ["--ro-bind", lib, lib]
        args += ["--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64"]
        for f in ("hosts", "nsswitch.conf", "passwd", "group", "resolv.conf"):
            args += ["--ro-bind", str(etc / f), f"/etc/{f}"]
        # What the distroless base holds besides glibc: the CA bundle.
        for d in ("/etc/ssl", "/etc/ssl/certs"):
            args += ["--perms", "0755", "--dir", d]
        args += ["--ro-bind", "/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs/ca-certificates.crt"]
        args += ["--ro-bind", shutil.which("setpriv"), "/.pod/setpriv"]
        args += ["--ro-bind", str(self.program.source), self.program.path]
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += self.volume_args(fs_group)
        if read_only:
            args += ["--remount-ro", "/"]
        workdir = self.c.get("workingDir") or ("/var/lib/ecom" if self.program.kind == "service" else "/")
        args += ["--chdir", workdir, "--clearenv"]
        base_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOSTNAME": self.pod_name(), "HOME": "/home/nonroot" if uid else "/root"}
        for k, v in {**base_env, **env}.items():
            args += ["--setenv", k, v]
        info_r, info_w = os.pipe()
        args += ["--info-fd", str(info_w)]
        args += ["--", "/.pod/setpriv", f"--reuid={uid}", f"--regid={gid}", f"--groups={','.join(groups)}", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"] + command
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, pass_fds=(info_w,), start_new_session=True)
        os.close(info_w)
        with os.fdopen(info_r) as info:
            text = info.read()
        try:
            self.child = json.loads(text)["child-pid"]
        except (ValueError, KeyError):
            self.child = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines=12):
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line[:300] for line in text[-lines:])

    def probe_once(self, probe):
        timeout = probe.get("timeoutSeconds", 1)
        ports = {p.get("name"): p["containerPort"] for p in self.c.get("ports", [])}
        if "httpGet" in probe:
            kind, port, path = "http", probe["httpGet"]["port"], probe["httpGet"].get("path", "/")
        elif "tcpSocket" in probe:
            kind, port, path = "tcp", probe["tcpSocket"]["port"], ""
        else:
            raise PodError(f"probe {probe} is neither httpGet nor tcpSocket")
        port = ports.get(port, port)
        if not isinstance(port, int):
            raise PodError(f"probe port {port} is not a port of the container")
        if self.program.kind == "dependency":
            # Inside the pod's own network namespace.
            cmd = ["nsenter", f"--net=/proc/{self.child}/ns/net", "--", sys.executable, __file__, "probe", kind, str(port), path or "-", str(timeout)]
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 5)
            except subprocess.TimeoutExpired:
                return False, "no answer"
            return out.returncode == 0, out.stdout.strip()
        return probe_call(kind, port, path, timeout, self.ip())

    def await_probe(self, name, probe, deadline_from):
        """Calls `probe` every periodSeconds until it succeeds; False past its budget."""
        period = probe.get("periodSeconds", 10)
        budget = probe.get("initialDelaySeconds", 0) + period * probe.get("failureThreshold", 3)
        deadline = deadline_from + budget
        time.sleep(max(0.0, deadline_from + probe.get("initialDelaySeconds", 0) - time.monotonic()))
        last = ""
        # Polled at least once a second (a kubelet calls at periodSeconds; the budget
        # is the same), so a quick start is not slowed down to the period.
        while True:
            if not self.running():
                problem(self.where, f"exited with {self.proc.returncode} before its {name} succeeded:\n{self.tail()}")
                return False
            started = time.monotonic()
            ok, last = self.probe_once(probe)
            if ok:
                return time.monotonic()
            if time.monotonic() >= deadline:
                problem(self.where, f"{name} failed for {budget} s (its budget): {last}\n{self.tail()}")
                return False
            time.sleep(max(0.0, min(1.0, period) - (time.monotonic() - started)))

    def check_probes(self):
        started = time.monotonic()
        startup = self.c.get("startupProbe")
        t = started
        if startup:
            t = self.await_probe("startupProbe", startup, started)
            if not t:
                return False
        ready = self.c.get("readinessProbe")
        if ready:
            r = self.await_probe("readinessProbe", ready, t)
            if not r:
                return False
        live = self.c.get("livenessProbe")
        if live:
            ok, last = self.probe_once(live)
            if not ok:
                problem(self.where, f"livenessProbe failed after the pod was ready: {last}\n{self.tail()}")
                return False
        if not self.check_scrape():
            return False
        if not self.running():
            problem(self.where, f"exited with {self.proc.returncode} after its probes:\n{self.tail()}")
            return False
        say(f"{self.where}: ready in {time.monotonic() - started:.1f} s ({', '.join(p for p in ('startup', 'readiness', 'liveness') if self.c.get(p + 'Probe'))} probes passed)")
        return True

    def check_scrape(self):
        """Where the prometheus.io annotations point: the metrics answer there, and
        nothing else does (the port Prometheus may reach serves no API)."""
        notes = self.workload["spec"]["template"]["metadata"].get("annotations", {})
        if notes.get("prometheus.io/scrape") != "true":
            return True
        port = int(notes.get("prometheus.io/port", 0))
        path = notes.get("prometheus.io/path", "/metrics")
        ok, detail = probe_call("http", port, path, 3, self.ip())
        if not ok:
            problem(self.where, f"no metrics at {path} on port {port} (prometheus.io annotations): {detail}")
            return False
        for other in ("/internal/openapi.json", "/api/products", "/"):
            ok, detail = probe_call("http", port, other, 3, self.ip())
            if ok or not detail.startswith("404"):
                problem(self.where, f"the scrape port {port} answers {other} ({detail}): it must serve only /metrics and /health/*")
                return False
        return True

    def stop(self, check_grace=True):
        if self.proc is None:
            return
        grace = self.spec.get("terminationGracePeriodSeconds", 30)
        if self.running():
            if self.child:
                try:
                    os.kill(self.child, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                if check_grace:
                    problem(self.where, f"still running {grace} s (terminationGracePeriodSeconds) after SIGTERM")
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.work, ignore_errors=True)


class PodError(Exception):
    pass


def bytes_of(quantity):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
    text = str(quantity)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def native_database(value, overlay):
    """A mysql:// URL with the native MariaDB's credentials (the host and database stay);
    a mongodb:// URL with a database of this run and overlay (FerretDB 1.24 fails createIndexes on
    indexes that exist, which MongoDB answers as a no-op)."""
    if value.startswith("mongodb://"):
        url = urllib.parse.urlsplit(value)
        db = url.path.strip("/") or "ecom_products"
        return urllib.parse.urlunsplit((url.scheme, url.netloc, f"/{db}_pods_{overlay}_{RUN_ID}", url.query, ""))
    if not value.startswith("mysql://"):
        return value
    native = urllib.parse.urlsplit(NATIVE_MYSQL)
    url = urllib.parse.urlsplit(value)
    host = url.hostname + (f":{url.port}" if url.port else "")
    return urllib.parse.urlunsplit((url.scheme, f"{native.username}:{native.password}@{host}", url.path, url.query, ""))


def fresh_databases(env_values):
    """Empty MySQL databases for every database a pod will use (the operator creates
    them; the services only migrate)."""
    names = sorted({urllib.parse.urlsplit(v).path.strip("/") for v in env_values if v.startswith("mysql://")})
    native = urllib.parse.urlsplit(NATIVE_MYSQL)
    sql = "".join(f"DROP DATABASE IF EXISTS `{n}`; CREATE DATABASE `{n}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;" for n in names if n)
    if sql:
        subprocess.run(
            ["mysql", "-h", native.hostname, "-P", str(native.port or 3306), "-u", native.username, f"-p{native.password}", "-e", sql],
            check=True,
        )


def port_taken(ip, port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
        except OSError:
            return True
    return False


def probe_call(kind, port, path, timeout, ip="127.0.0.1"):
    if kind == "tcp":
        try:
            with socket.create_connection((ip, port), timeout=timeout):
                return True, "connected"
        except OSError as err:
            return False, str(err)
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=timeout) as r:
            return 200 <= r.status < 400, f"{r.status}"
    except urllib.error.HTTPError as err:
        return False, f"{err.code} {err.read()[:300].decode(errors='replace')}"
    except (OSError, ValueError) as err:
        return False, str(err)


# ---------------------------------------------------------------- an overlay


def order_key(workload):
    name = workload["metadata"]["name"]
    return (name in SERVICES, SERVICES.index(name) if name in SERVICES else 0, name)


def pods_of(build, bin_dir, mailpit):
    pods, skipped = [], []
    for w in sorted(build.workloads(), key=order_key):
        where = f"{build.name}: {w['kind']} {w['metadata']['name']}"
        containers = w["spec"]["template"]["spec"].get("containers", [])
        if w["spec"]["template"]["spec"].get("initContainers"):
            problem(where, "init containers are not run by this check")
            continue
        if len(containers) != 1:
            problem(where, "one container per pod is all this check runs")
            continue
        program = program_of(containers[0]["image"], bin_dir, mailpit)
        if program is None:
            skipped.append(f"{w['metadata']['name']} ({containers[0]['image']})")
            continue
        pods.append(Pod(build, w, program, containers[0], where))
    return pods, skipped


def run_overlay(build, bin_dir, mailpit, walk=None):
    pods, skipped = pods_of(build, bin_dir, mailpit)
    if skipped:
        say(f"{build.name}: not runnable here (upstream images): {', '.join(skipped)}")
    values = []
    for p in pods:
        try:
            values += list(p.environment().values()) + p.secret_file_values()
        except PodError:
            pass
    hosts = build.hosts(values)
    fresh_databases(values)
    started = []
    try:
        for p in pods:
            try:
                p.start(hosts)
            except PodError as err:
                problem(p.where, str(err))
                continue
            started.append(p)
            p.check_probes()
        if walk and not problems:
            # What the operator's port-forward to the gateway would give: its pod's address.
            walk_env = {**os.environ, "ECOM_WALK_GATEWAY": f"{POD_IPS['api-gateway']}:8080"}
            walked = subprocess.run(["bash", walk], cwd=ROOT, env=walk_env, capture_output=True, text=True, timeout=300)
            if walked.returncode != 0:
                tail = "\n".join("    " + line for line in (walked.stdout + walked.stderr).splitlines()[-25:])
                problem(build.name, f"the walk {walk} failed:\n{tail}")
            else:
                say(f"{build.name}: walk {walk}: {walked.stdout.strip().splitlines()[-1]}")
    finally:
        for p in reversed(started):
            p.stop()
    return len(started)


def self_test(build, bin_dir, mailpit):
    """The dev Mailpit without its volumes (a read-only root and nowhere to write its
    database) must fail here."""
    broken = next((w for w in build.workloads() if w["metadata"]["name"] == "mailpit"), None)
    if broken is None:
        problem(build.name, "no Mailpit Deployment for the self-test")
        return
    broken = json.loads(json.dumps(broken))
    spec = broken["spec"]["template"]["spec"]
    spec.pop("volumes", None)
    for c in spec["containers"]:
        c.pop("volumeMounts", None)
    program = program_of(spec["containers"][0]["image"], bin_dir, mailpit)
    pod = Pod(build, broken, program, spec["containers"][0], f"{build.name}: self-test Mailpit without a temp volume")
    global problems, quiet
    before = list(problems)
    quiet = True
    pod.start(build.hosts([]))
    ok = pod.check_probes()
    pod.stop(check_grace=False)
    seen = problems[len(before):]
    problems, quiet = before, False
    if ok:
        problem(build.name, "the self-test's Mailpit without a temp volume got ready: the check does not enforce the read-only root")
    elif not any("read-only file system" in s or "permission denied" in s for s in seen):
        problem(build.name, f"the self-test's Mailpit failed, but not for want of a writable directory: {seen}")
    else:
        say(f"{build.name}: self-test: Mailpit without a temp volume fails as it would in a cluster (read-only root)")


def rotate(paths, bin_dir):
    """The prod auth-service through the three rollouts of a key rotation, each step's
    pod started from that step's build: it must get ready, publish the keys the step
    says and sign with the one it says."""
    builds = [Build(f"rotation step {n}", path) for n, path in enumerate(paths, 1)]
    kids = {}
    for n, build in enumerate(builds, 1):
        pods, _ = pods_of(build, bin_dir, "")
        pod = next((p for p in pods if p.workload["metadata"]["name"] == "auth-service"), None)
        if pod is None:
            problem(build.name, "no auth-service Deployment")
            return
        env = pod.environment()
        if n == 1:
            fresh_databases(list(env.values()) + pod.secret_file_values())
        try:
            pod.start(build.hosts(list(env.values()) + pod.secret_file_values()))
            if not pod.check_probes():
                return
            with urllib.request.urlopen(f"http://{pod.ip()}:8081/.well-known/jwks.json", timeout=3) as r:
                published = [k["kid"] for k in json.load(r)["keys"]]
            # The admin's credentials reach the pod as mounted files: log in with the
            # test values the Secret was made from.
            admin = TEST_SECRETS["auth-service"]
            login = json.dumps({"email": admin["ECOM_ADMIN_EMAIL"], "password": admin["ECOM_ADMIN_PASSWORD"]}).encode()
            request = urllib.request.Request(f"http://{pod.ip()}:8081/api/auth/login", login, {"content-type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as r:
                token = json.load(r)["access_token"]
            header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "==="))
            signing = header["kid"]
        except PodError as err:
            problem(pod.where, str(err))
            return
        except (OSError, ValueError, KeyError) as err:
            problem(build.name, f"auth-service's keys: {err}")
            return
        finally:
            pod.stop()
        if n == 1:
            kids["old"], kids["new"] = signing, next((k for k in published if k != signing), None)
        expected = {1: ("old", ["old", "new"]), 2: ("new", ["new", "old"]), 3: ("new", ["new"])}[n]
        want_signing, want_published = kids[expected[0]], [kids[k] for k in expected[1]]
        if signing != want_signing or sorted(published) != sorted(want_published):
            problem(build.name, f"signs with {signing} and publishes {published}; expected {want_signing} and {want_published}")
            return
        say(f"{build.name}: auth-service signs with the {expected[0]} key and publishes {' and '.join(expected[1])}")


def check_images(commands_file, dev_file, compose_file):
    """What scripts/k8s-images.sh does against what the dev overlay and compose expect."""
    targets = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", (ROOT / "Dockerfile").read_text(encoding="utf-8"), re.MULTILINE | re.IGNORECASE))
    built, loaded = {}, set()
    for line in pathlib.Path(commands_file).read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words[:2] == ["docker", "build"]:
            target, tag = words[words.index("--target") + 1], words[words.index("-t") + 1]
            if target not in targets:
                problem("scripts/k8s-images.sh", f"builds the Dockerfile target {target}, which does not exist")
            built[tag] = target
        elif words[:3] == ["kind", "load", "docker-image"] or words[:3] == ["minikube", "image", "load"]:
            loaded.add(words[-1])
    dev = Build("dev", dev_file)
    expected = {}
    for w in dev.workloads():
        for c in w["spec"]["template"]["spec"]["containers"]:
            if c["image"].startswith("ghcr.io/ecom/"):
                expected[c["image"]] = w["metadata"]["name"]
    for image, name in sorted(expected.items()):
        if built.get(image) != name:
            problem("scripts/k8s-images.sh", f"the dev overlay runs {image} ({name}); the script builds {built.get(image, 'no such tag')}")
        if image not in loaded:
            problem("scripts/k8s-images.sh", f"does not load {image} into the cluster")
    compose = yaml.safe_load(pathlib.Path(compose_file).read_text(encoding="utf-8"))
    for name, service in compose.get("services", {}).items():
        if name in SERVICES:
            image = re.sub(r"\$\{IMAGE_TAG:-([^}]*)\}", r"\1", service.get("image", ""))
            if expected.get(image) != name:
                problem(compose_file, f"{name} builds the image {image}, the dev overlay runs {[i for i, n in expected.items() if n == name]}")
    if len(expected) != len(SERVICES):
        problem("dev", f"expected the six ecom images, found {sorted(expected)}")
    if not problems:
        say(f"the dev image path builds and loads the {len(expected)} images the dev overlay and compose name")


def main(argv):
    if argv[:1] == ["images"] and len(argv) == 4:
        check_images(*argv[1:])
        return 1 if problems else 0
    if argv[:1] == ["rotate"] and len(argv) == 6 and argv[1] == "--bin-dir":
        rotate(argv[3:], argv[2])
        return 1 if problems else 0
    if argv[:1] == ["probe"] and len(argv) == 5:
        ok, detail = probe_call(argv[1], int(argv[2]), "" if argv[3] == "-" else argv[3], float(argv[4]))
        print(detail)
        return 0 if ok else 1
    parser = argparse.ArgumentParser(usage=__doc__)
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--mailpit", required=True)
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("--walk", action="append", default=[])
    parser.add_argument("builds", nargs="+")
    args = parser.parse_args(argv)
    builds = []
    for spec in args.builds:
        name, path = spec.split("=", 1)
        builds.append(Build(name, path))
    if args.self_test:
        dev = next((b for b in builds if any(w["metadata"]["name"] == "mailpit" for w in b.workloads())), None)
        if dev is None:
            problem("self-test", "no build has a Mailpit Deployment")
        else:
            self_test(dev, args.bin_dir, args.mailpit)
    ran = 0
    walks = dict(w.split("=", 1) for w in args.walk)
    for b in builds:
        ran += run_overlay(b, args.bin_dir, args.mailpit, walks.get(b.name))
    if problems:
        return 1
    say(f"{ran} pods of {len(builds)} overlays started, ready and live, and stopped in their grace period")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
