#!/usr/bin/env python3
"""Checks of monitoring/ that promtool cannot make (run by scripts/check/monitoring.sh).

- every dashboard parses as JSON, has a uid no other dashboard has, schemaVersion,
  unique panel ids, and refers to data sources by a provisioned uid;
- every alert has a severity, summary, description and a runbook_url naming a section
  of docs/runbook.md that exists;
- every alert is unit-tested both firing and not firing (monitoring/prometheus/tests);
- the provisioning files name the expected data sources and the dashboard folder.

With --promql-rules FILE it also writes every PromQL expression of the dashboards,
Grafana variables replaced by sample values, into FILE as recording rules, so that
`promtool check rules FILE` parses them.

Exits 1 with one line per problem.
"""

import argparse
import glob
import json
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MON = os.path.join(ROOT, "monitoring")
RUNBOOK = "docs/runbook.md"
DATASOURCE_UIDS = {"prometheus": "prometheus", "loki": "loki", "jaeger": "jaeger"}
SEVERITIES = {"critical", "warning"}
# Grafana's variables, replaced by values PromQL accepts.
GRAFANA_VARS = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$job": "api-gateway",
    "$instance": ".*",
}

problems = []


def problem(where, what):
    problems.append(f"{os.path.relpath(where, ROOT)}: {what}")


def load_yaml(path):
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        problem(path, f"not valid YAML: {err}")
        return None


def runbook_anchors():
    """GitHub's anchors of the runbook's headings, and explicit <a id="..."> anchors."""
    path = os.path.join(ROOT, RUNBOOK)
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        problem(path, "missing")
        return set()
    anchors = set(re.findall(r'<a\s+(?:id|name)="([^"]+)"', text))
    seen = {}
    in_code = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        m = None if in_code else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def check_rules():
    """Returns the names of the alerts."""
    anchors = runbook_anchors()
    alerts = set()
    files = sorted(glob.glob(os.path.join(MON, "prometheus", "rules", "*.yml")))
    if not files:
        problem(os.path.join(MON, "prometheus", "rules"), "no rule files")
    for path in files:
        doc = load_yaml(path) or {}
        for group in doc.get("groups") or []:
            for rule in group.get("rules") or []:
                name = rule.get("alert")
                if not name:
                    continue
                alerts.add(name)
                where = f"alert {name}"
                labels = rule.get("labels") or {}
                annotations = rule.get("annotations") or {}
                if labels.get("severity") not in SEVERITIES:
                    problem(path, f"{where}: severity must be one of {sorted(SEVERITIES)}")
                for key in ("summary", "description", "runbook_url"):
                    if not str(annotations.get(key) or "").strip():
                        problem(path, f"{where}: no {key} annotation")
                url = str(annotations.get("runbook_url") or "")
                if url:
                    page, _, anchor = url.partition("#")
                    if page != RUNBOOK or not anchor:
                        problem(path, f"{where}: runbook_url must be {RUNBOOK}#<section>, not {url}")
                    elif anchor not in anchors:
                        problem(path, f"{where}: {RUNBOOK} has no section #{anchor}")
    return alerts


def check_tests(alerts):
    firing, quiet = set(), set()
    files = sorted(glob.glob(os.path.join(MON, "prometheus", "tests", "*.yml")))
    for path in files:
        doc = load_yaml(path) or {}
        for test in doc.get("tests") or []:
            for case in test.get("alert_rule_test") or []:
                name = case.get("alertname")
                (firing if case.get("exp_alerts") else quiet).add(name)
    for name in sorted(alerts):
        if name not in firing:
            problems.append(f"monitoring/prometheus/tests: no test sees {name} firing")
        if name not in quiet:
            problems.append(f"monitoring/prometheus/tests: no test sees {name} not firing")
    for name in sorted((firing | quiet) - alerts):
        problems.append(f"monitoring/prometheus/tests: tests alert {name}, which no rule defines")


def walk_panels(panels):
    for panel in panels or []:
        yield panel
        yield from walk_panels(panel.get("panels"))


def datasource_uid(ref):
    if isinstance(ref, dict):
        return ref.get("uid")
    return ref  # a name or uid string (old style), or None


def check_dashboards():
    """Returns the PromQL expressions of the dashboards."""
    promql = []
    uids = {}
    files = sorted(glob.glob(os.path.join(MON, "grafana", "dashboards", "**", "*.json"), recursive=True))
    if not files:
        problem(os.path.join(MON, "grafana", "dashboards"), "no dashboards")
    allowed = set(DATASOURCE_UIDS.values()) | {"-- Grafana --", "grafana"}
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                board = json.load(f)
        except (OSError, ValueError) as err:
            problem(path, f"not valid JSON: {err}")
            continue
        check_board(path, board, uids)
        promql += panel_queries(path, board, allowed)
        promql += variable_queries(path, board, allowed)
    return promql


def check_board(path, board, uids):
    """A stable uid of its own, a title, a current schema and no id."""
    uid = board.get("uid")
    if not uid or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", str(uid)):
        problem(path, f"uid {uid!r} missing or not a stable short id")
    elif uid in uids:
        problem(path, f"uid {uid} is also the uid of {os.path.relpath(uids[uid], ROOT)}")
    else:
        uids[uid] = path
    if not board.get("title"):
        problem(path, "no title")
    if not isinstance(board.get("schemaVersion"), int) or board["schemaVersion"] < 36:
        problem(path, "schemaVersion missing or older than 36")
    if board.get("id") is not None:
        problem(path, "id must be null (Grafana assigns it; the uid identifies the dashboard)")


def panel_queries(path, board, allowed):
    """Checks each panel; the PromQL of their queries."""
    promql = []
    ids = set()
    for panel in walk_panels(board.get("panels")):
        title = panel.get("title", "?")
        pid = panel.get("id")
        if pid in ids:
            problem(path, f"panel id {pid} used twice")
        ids.add(pid)
        if "gridPos" not in panel:
            problem(path, f"panel {title!r} has no gridPos")
        if panel.get("type") == "row":
            continue
        panel_ds = datasource_uid(panel.get("datasource"))
        if panel_ds not in allowed:
            problem(path, f"panel {title!r}: data source {panel_ds!r} is not a provisioned uid")
        if not panel.get("targets"):
            problem(path, f"panel {title!r} has no query")
        for target in panel.get("targets") or []:
            ds = datasource_uid(target.get("datasource")) or panel_ds
            if ds not in allowed:
                problem(path, f"panel {title!r}: query data source {ds!r} is not a provisioned uid")
            expr = target.get("expr")
            if not expr:
                problem(path, f"panel {title!r}: a query without expr")
            elif ds == DATASOURCE_UIDS["prometheus"]:
                promql.append((path, title, expr))
    return promql


def variable_queries(path, board, allowed):
    """Checks each query variable; the PromQL inside their label_values()."""
    promql = []
    for var in (board.get("templating") or {}).get("list") or []:
        if var.get("type") != "query":
            continue
        ds = datasource_uid(var.get("datasource"))
        if ds not in allowed:
            problem(path, f"variable {var.get('name')}: data source {ds!r} is not a provisioned uid")
        query = var.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query or "")
        if ds == DATASOURCE_UIDS["prometheus"] and m:
            promql.append((path, f"variable {var.get('name')}", m.group(1)))
    return promql


def check_provisioning():
    path = os.path.join(MON, "grafana", "provisioning", "datasources")
    found = {}
    for file in sorted(glob.glob(os.path.join(path, "*.yml")) + glob.glob(os.path.join(path, "*.yaml"))):
        doc = load_yaml(file) or {}
        for ds in doc.get("datasources") or []:
            found[ds.get("uid")] = (file, ds)
    for kind, uid in DATASOURCE_UIDS.items():
        if uid not in found:
            problem(path, f"no data source with uid {uid}")
        elif found[uid][1].get("type") != kind:
            problem(found[uid][0], f"data source {uid} is of type {found[uid][1].get('type')}, not {kind}")
    path = os.path.join(MON, "grafana", "provisioning", "dashboards")
    paths = []
    for file in sorted(glob.glob(os.path.join(path, "*.yml")) + glob.glob(os.path.join(path, "*.yaml"))):
        doc = load_yaml(file) or {}
        paths += [(p.get("options") or {}).get("path") for p in doc.get("providers") or []]
    if "/var/lib/grafana/dashboards" not in paths:
        problem(path, "no dashboard provider reads /var/lib/grafana/dashboards")


def write_promql_rules(promql, out):
    """Each expression as a recording rule, for promtool to parse."""
    rules = []
    for i, (path, title, expr) in enumerate(promql):
        for var, value in GRAFANA_VARS.items():
            expr = expr.replace("${" + var[1:] + "}", value).replace(var, value)
        if "$" in expr:
            problem(path, f"{title}: unknown Grafana variable in {expr!r}")
            continue
        # The rule's name says where the query is, for promtool's parse errors.
        where = re.sub(r"\W+", "_", f"{os.path.splitext(os.path.basename(path))[0]}__{title}").strip("_")
        rules.append({"record": f"dashboard:{where}:query_{i}", "expr": expr,
                      "labels": {"source": f"{os.path.relpath(path, ROOT)}: {title}"}})
    with open(out, "w", encoding="utf-8") as f:
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, f, sort_keys=False)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--promql-rules", help="write the dashboards' PromQL here as recording rules")
    args = parser.parse_args()
    alerts = check_rules()
    check_tests(alerts)
    promql = check_dashboards()
    check_provisioning()
    if args.promql_rules:
        write_promql_rules(promql, args.promql_rules)
    for line in problems:
        print(f"monitoring: {line}", file=sys.stderr)
    if problems:
        return 1
    print(f"monitoring: {len(alerts)} alerts with runbook sections and tests, {len(promql)} dashboard queries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
