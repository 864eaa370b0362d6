"""What the Kubernetes schemas cannot see in k8s/: run by scripts/check/k8s.sh.

    k8s_lint.py vars                      every ECOM_* name under k8s/ and in
                                          docs/kubernetes.md is read by the Rust code
                                          (in the doc: or by a script it runs)
    k8s_lint.py build NAME FILE [--pinned] [--external-secrets] [--external-secret=NAME]
                                          [--no-placeholders]
                                          one `kustomize build` output: the ecom
                                          Deployments and everything they refer to;
                                          Secrets created by hand (every one, or the
                                          one named) must be in docs/kubernetes.md;
                                          no example.com value left in (prod)

Prints one line per problem and exits 1 if there is any.
"""

import math
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "kubernetes.md"
PART_OF = ("app.kubernetes.io/part-of", "ecom")
# Read by glibc, not by our code: docs/benchmarks/footprint.md (auth-service).
NOT_OURS = {"GLIBC_TUNABLES"}
DEFAULT_GRACE_MS = 20000  # common/src/settings.rs, ECOM_SHUTDOWN_GRACE_MS

problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def code_variables():
    """Environment variable names the services read: quoted names in */src, test code left out."""
    names = set()
    pattern = re.compile(r'"((?:ECOM|OTEL)_[A-Z0-9_]+|RUST_LOG|DATABASE_URL(?:_FILE)?)"')
    for path in ROOT.glob("*/src/**/*.rs"):
        if path.name == "test_util.rs":
            continue
        text = path.read_text(encoding="utf-8")
        # The test module at the end of a file; a test-only item inside an impl stays in.
        text = re.split(r"^#\[cfg\(test\)\]", text, maxsplit=1, flags=re.MULTILINE)[0]
        names.update(n for n in pattern.findall(text) if not n.startswith("ECOM_TEST_"))
    if not names:
        problem("Rust sources", "no configuration variables found; is this the repository root?")
    return names


def script_variables():
    """ECOM_* names the repository's scripts read (the doc's commands set them too)."""
    names = set()
    for path in list(ROOT.glob("scripts/**/*.sh")) + list(ROOT.glob("scripts/**/*.bash")):
        names.update(re.findall(r"\$\{?(ECOM_[A-Z0-9_]*[A-Z0-9])\b", path.read_text(encoding="utf-8")))
    return names


def check_vars():
    known = code_variables()
    scripts = script_variables()
    files = [p for p in (ROOT / "k8s").rglob("*") if p.is_file()] + [DOC]
    for path in files:
        if not path.exists():
            problem(path.relative_to(ROOT), "missing")
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in re.findall(r"\bECOM_[A-Z0-9_]*[A-Z0-9]\b", line):
                if name not in known and not (path == DOC and name in scripts):
                    problem(f"{path.relative_to(ROOT)}:{n}", f"{name} is not read by any service")


def quantity(value, cpu):
    """A CPU quantity in millicores or a memory quantity in bytes."""
    text = str(value)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
    if cpu:
        return float(text[:-1]) if text.endswith("m") else float(text) * 1000
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_build(name, path, pinned, external_secrets, external_names=(), no_placeholders=False):
    build = Build(name, path, external_secrets, external_names, no_placeholders)
    build.check_references()
    for d in build.ecom:
        build.check_deployment(d, pinned)
    for d in build.docs:
        build.check_routing(d)
    build.check_network_policies()


class Build:
    """One `kustomize build` output: its objects by (kind, name), and the checks."""

    def __init__(self, name, path, external_secrets, external_names, no_placeholders):
        self.name = name
        self.external_secrets, self.external_names = external_secrets, external_names
        text = pathlib.Path(path).read_text(encoding="utf-8")
        self.docs = [d for d in yaml.safe_load_all(text) if d]
        if no_placeholders:
            for n, line in enumerate(text.splitlines(), 1):
                if re.search(r"\bexample\.(com|org|net)\b", line):
                    problem(name, f"line {n} of the build holds a placeholder: {line.strip()}")
        self.objects = {}
        for d in self.docs:
            key = (d["kind"], d["metadata"]["name"])
            if key in self.objects:
                problem(name, f"{key[0]} {key[1]} appears twice")
            self.objects[key] = d
        self.doc_text = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        self.known = code_variables()

        namespaces = [d["metadata"]["name"] for d in self.docs if d["kind"] == "Namespace"]
        if len(namespaces) != 1:
            problem(name, f"expected one Namespace, found {namespaces}")
        for d in self.docs:
            if d["kind"] != "Namespace" and d["metadata"].get("namespace") not in namespaces:
                problem(name, f"{d['kind']} {d['metadata']['name']} is outside the namespace {namespaces}")

        self.workloads = [d for d in self.docs if d["kind"] in ("Deployment", "StatefulSet")]
        self.ecom = [d for d in self.docs if d["kind"] == "Deployment" and d["metadata"].get("labels", {}).get(PART_OF[0]) == PART_OF[1]]
        if len(self.ecom) != 6:
            problem(name, f"expected the six ecom Deployments, found {[d['metadata']['name'] for d in self.ecom]}")

    def where(self, d):
        return f"{self.name}: {d['kind']} {d['metadata']['name']}"

    def of_kind(self, kind):
        return [o for o in self.docs if o["kind"] == kind]

    def resolve(self, kind, ref, d):
        if (kind, ref) in self.objects:
            return self.objects[(kind, ref)]
        if kind == "Secret" and (self.external_secrets or ref in self.external_names):
            if not re.search(rf"create secret (generic|tls) {re.escape(ref)}\b", self.doc_text):
                problem(self.where(d), f"Secret {ref} is neither generated nor documented in docs/kubernetes.md")
        else:
            problem(self.where(d), f"{kind} {ref} does not exist in the build")
        return None

    def check_references(self):
        """From every workload: ConfigMaps and Secrets exist (or are documented)."""
        for d in self.workloads:
            spec = d["spec"]["template"]["spec"]
            # (the key naming it, its kind, the field holding its name) in a volume and in envFrom.
            for v in spec.get("volumes", []):
                for key, kind, field in (("secret", "Secret", "secretName"), ("configMap", "ConfigMap", "name")):
                    if key in v:
                        self.resolve(kind, v[key][field], d)
            for c in spec.get("containers", []):
                for e in c.get("envFrom", []):
                    for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                        if key in e:
                            self.resolve(kind, e[key]["name"], d)
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {})
                    if "secretKeyRef" in ref:
                        s = self.resolve("Secret", ref["secretKeyRef"]["name"], d)
                        if s and ref["secretKeyRef"]["key"] not in {**s.get("data", {}), **s.get("stringData", {})}:
                            problem(self.where(d), f"Secret {s['metadata']['name']} has no key {ref['secretKeyRef']['key']}")
                    if "configMapKeyRef" in ref:
                        self.resolve("ConfigMap", ref["configMapKeyRef"]["name"], d)

    def check_deployment(self, d, pinned):
        w = self.where(d)
        pod = d["spec"]["template"]
        spec = pod["spec"]
        if not labels_match(d["spec"]["selector"].get("matchLabels"), pod["metadata"].get("labels", {})):
            problem(w, "the selector does not match the pod labels")
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True:
            problem(w, "runAsNonRoot is not true")
        if spec.get("automountServiceAccountToken") is not False:
            problem(w, "automountServiceAccountToken is not false")
        containers = spec.get("containers", [])
        if len(containers) != 1:
            problem(w, "expected one container")
            return
        c = containers[0]
        check_container_security(w, c, psc)
        check_image_and_resources(w, c, pinned)
        check_probes(w, c)
        self.check_configuration(w, spec, c)
        self.check_companions(w, d)

    def check_configuration(self, w, spec, c):
        """Every variable is one the service reads, and the shutdown timing holds."""
        env = {}
        for e in c.get("envFrom", []):
            ref = e.get("configMapRef") or e.get("secretRef")
            kind = "ConfigMap" if "configMapRef" in e else "Secret"
            o = self.objects.get((kind, ref["name"]), {})
            env.update({**o.get("data", {}), **o.get("stringData", {})})
        for e in c.get("env", []):
            env[e["name"]] = e.get("value", "")
        for var in env:
            if var not in self.known and var not in NOT_OURS:
                problem(w, f"{var} is not read by any service")
        grace_ms = int(env.get("ECOM_SHUTDOWN_GRACE_MS") or DEFAULT_GRACE_MS)
        sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
        if sleep is None:
            problem(w, "no preStop sleep")
            sleep = 0
        period = spec.get("terminationGracePeriodSeconds", 30)
        needed = sleep + math.ceil(grace_ms / 1000) + 1
        if period < needed:
            problem(w, f"terminationGracePeriodSeconds {period} < preStop {sleep} s + ECOM_SHUTDOWN_GRACE_MS {grace_ms} ms + 1 s")

    def check_companions(self, w, d):
        """A Service, a PodDisruptionBudget, a NetworkPolicy and one way to scale."""
        dep = d["metadata"]["name"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        if not any(labels_match(o["spec"].get("selector"), labels) for o in self.of_kind("Service")):
            problem(w, "no Service selects it")
        if not any(labels_match(o["spec"]["selector"].get("matchLabels"), labels) for o in self.of_kind("PodDisruptionBudget")):
            problem(w, "no PodDisruptionBudget selects it")
        hpas = [o for o in self.of_kind("HorizontalPodAutoscaler") if o["spec"]["scaleTargetRef"]["name"] == dep]
        if not hpas and "replicas" not in d["spec"]:
            problem(w, "neither an HPA nor spec.replicas")
        if hpas and "replicas" in d["spec"]:
            problem(w, "spec.replicas fights the HPA on every apply")
        policies = [o for o in self.of_kind("NetworkPolicy") if labels_match(o["spec"]["podSelector"].get("matchLabels", {}), labels)]
        if not any("Ingress" in o["spec"].get("policyTypes", []) for o in policies):
            problem(w, "no NetworkPolicy of its own")

    def check_routing(self, d):
        """HPAs, Services and Ingresses point at what exists."""
        if d["kind"] == "HorizontalPodAutoscaler":
            ref = d["spec"]["scaleTargetRef"]
            if (ref["kind"], ref["name"]) not in self.objects:
                problem(self.where(d), f"targets a missing {ref['kind']} {ref['name']}")
            if d["spec"].get("minReplicas", 1) > d["spec"]["maxReplicas"]:
                problem(self.where(d), "minReplicas above maxReplicas")
        if d["kind"] == "Service":
            self.check_service(d)
        if d["kind"] == "Ingress":
            self.check_ingress(d)

    def check_service(self, d):
        targets = [x for x in self.workloads if labels_match(d["spec"].get("selector"), x["spec"]["template"]["metadata"].get("labels", {}))]
        if not targets:
            problem(self.where(d), "selects no workload")
        for port in d["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for x in targets:
                names = {p.get("name") for c in x["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
                numbers = {p["containerPort"] for c in x["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
                if target not in names and target not in numbers:
                    problem(self.where(d), f"targetPort {target} is not a port of {x['metadata']['name']}")

    def check_ingress(self, d):
        for rule in d["spec"].get("rules", []):
            for p in rule.get("http", {}).get("paths", []):
                svc = p["backend"]["service"]
                s = self.objects.get(("Service", svc["name"]))
                if not s:
                    problem(self.where(d), f"backend Service {svc['name']} does not exist")
                elif svc["port"].get("name") not in {q.get("name") for q in s["spec"]["ports"]} and svc["port"].get("number") not in {q["port"] for q in s["spec"]["ports"]}:
                    problem(self.where(d), f"backend port {svc['port']} is not a port of Service {svc['name']}")
        for tls in d["spec"].get("tls", []):
            self.resolve("Secret", tls["secretName"], d)

    def check_network_policies(self):
        # Prometheus is let in only on listeners without an API (metrics, ops): a policy
        # admitting the monitoring namespace to an API port opens /internal/* to it.
        api_ports = {"http"} | {p["containerPort"] for d in self.ecom for c in d["spec"]["template"]["spec"]["containers"] for p in c.get("ports", []) if p.get("name") == "http"}
        for d in self.of_kind("NetworkPolicy"):
            for rule in d["spec"].get("ingress", []):
                monitoring = any(f.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == "monitoring" for f in rule.get("from", []))
                opened = {p.get("port") for p in rule.get("ports", [])}
                if monitoring and (not rule.get("ports") or opened & api_ports):
                    problem(self.where(d), f"admits the monitoring namespace to an API port ({sorted(map(str, opened & api_ports)) or 'every port'}); scrape the metrics port")

        deny = [d for d in self.of_kind("NetworkPolicy") if d["spec"]["podSelector"] == {} and set(d["spec"].get("policyTypes", [])) == {"Ingress", "Egress"} and not d["spec"].get("ingress") and not d["spec"].get("egress")]
        if not deny:
            problem(self.name, "no default-deny NetworkPolicy")


def check_container_security(w, c, psc):
    csc = c.get("securityContext", {})
    seccomp = csc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
    if seccomp != "RuntimeDefault":
        problem(w, "seccompProfile is not RuntimeDefault")
    if csc.get("allowPrivilegeEscalation") is not False:
        problem(w, "allowPrivilegeEscalation is not false")
    if csc.get("readOnlyRootFilesystem") is not True:
        problem(w, "readOnlyRootFilesystem is not true")
    if "ALL" not in csc.get("capabilities", {}).get("drop", []):
        problem(w, "capabilities do not drop ALL")


def check_image_and_resources(w, c, pinned):
    image = c.get("image", "")
    tag = image.rsplit("@", 1)[0].rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
    if pinned and ("@sha256:" not in image and tag in ("", "latest")):
        problem(w, f"image {image} is not pinned to a tag or digest")
    res = c.get("resources", {})
    for kind in ("cpu", "memory"):
        req = res.get("requests", {}).get(kind)
        lim = res.get("limits", {}).get(kind)
        if req is None or lim is None:
            problem(w, f"{kind} request and limit are both required")
        elif quantity(req, kind == "cpu") > quantity(lim, kind == "cpu"):
            problem(w, f"{kind} request {req} is above the limit {lim}")


def check_probes(w, c):
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    if "http" not in ports:
        problem(w, "no container port named http")
    for probe, path in (("startupProbe", "/health/live"), ("readinessProbe", "/health/ready"), ("livenessProbe", "/health/live")):
        get = c.get(probe, {}).get("httpGet")
        if not get or get.get("path") != path or get.get("port") not in ("http", ports.get("http")):
            problem(w, f"{probe} must GET {path} on the http port")


def main(argv):
    if argv[:1] == ["vars"]:
        check_vars()
    elif argv[:1] == ["build"] and len(argv) >= 3:
        options = argv[3:]
        external_names = [o.split("=", 1)[1] for o in options if o.startswith("--external-secret=")]
        check_build(argv[1], argv[2], "--pinned" in options, "--external-secrets" in options, external_names, "--no-placeholders" in options)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for p in problems:
        print(f"k8s: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
