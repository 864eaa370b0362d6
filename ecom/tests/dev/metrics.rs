//! Every metric that monitoring/ reads (dashboard queries, alert and recording rules)
//! is exported by the services: a renamed or removed metric fails here, not in an
//! empty panel or an alert that can never fire. And what the public can do to them:
//! nothing reaches `/metrics` through the gateway, and no request invents a series.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::settings::Env;
use serde_json::{Value, json};

/// Metrics a dev-mode run cannot show, each with why.
const NOT_IN_DEV_MODE: &[&str] = &[
    // notification-service reports the lag of its Kafka consumer; dev mode has the
    // in-process bus and so no consumer group and no lag.
    "kafka_consumer_lag",
];

/// Names in queries that are not metrics of the services.
const NOT_SERVICE_METRICS: &[&str] = &[
    // Prometheus's own series: scrape health and the alerts it fires.
    "up",
    "ALERTS",
    "ALERTS_FOR_STATE",
];

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring")
}

fn files_under(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path, extension));
        } else if path.extension().is_some_and(|e| e == extension) {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// The PromQL of the Prometheus queries of a dashboard: panel targets (the data source
/// of a target, else of its panel) and query variables.
fn dashboard_queries(node: &Value, datasource: Option<&str>, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            let datasource = map.get("datasource").and_then(|d| d["uid"].as_str()).or(datasource);
            let prometheus = datasource == Some("prometheus");
            if let (Some(expr), true) = (map.get("expr").and_then(Value::as_str), prometheus) {
                out.push(expr.to_owned());
            }
            if map.get("type").and_then(Value::as_str) == Some("query") && prometheus {
                let query = map.get("query").map(|q| q.get("query").unwrap_or(q));
                out.extend(query.and_then(Value::as_str).map(str::to_owned));
            }
            for value in map.values() {
                dashboard_queries(value, datasource, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| dashboard_queries(item, datasource, out)),
        _ => {}
    }
}

/// The `expr:` of every rule in a rule file: one line, or a `|`/`>` block below it.
fn rule_expressions(yaml: &str) -> Vec<String> {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let lines: Vec<&str> = yaml.lines().collect();
    let mut expressions = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        let key = trimmed.strip_prefix("- ").unwrap_or(trimmed);
        i += 1;
        let Some(value) = key.strip_prefix("expr:") else { continue };
        let value = value.trim();
        if value.starts_with('|') || value.starts_with('>') {
            let key_indent = indent(lines[i - 1]);
            let mut block = String::new();
            while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > key_indent) {
                block.push_str(lines[i]);
                block.push('\n');
                i += 1;
            }
            expressions.push(block);
        } else {
            let unquoted = value.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
            let unquoted = unquoted.or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')));
            expressions.push(unquoted.unwrap_or(value).to_owned());
        }
    }
    expressions
}

/// What an open parenthesis holds.
#[derive(Clone, Copy, PartialEq)]
enum Paren {
    Expression,
    /// `by (...)`, `on (...)`, ...: label names.
    Labels,
    /// `label_values(selector, label)` of a Grafana variable; true past the comma.
    LabelValues(bool),
}

/// The metric names an expression reads: identifiers that are not functions,
/// keywords, label names (in matchers, grouping lists, strings), recording rules
/// (they contain `:`), numbers, durations or Grafana variables. The `_bucket`, `_sum`
/// and `_count` series of a histogram count as the histogram.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const GROUPING: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
    const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "inf", "nan", "start", "end"];
    const AGGREGATIONS: &str =
        "sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio";
    let chars: Vec<char> = expr.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    // Skips from an opening delimiter to its closing one, over quoted strings.
    let skip_to = |mut i: usize, close: char| {
        let mut quote = None;
        while i < chars.len() {
            match (quote, chars[i]) {
                (Some(_), '\\') => i += 1,
                (Some(q), c) if c == q => quote = None,
                (None, c) if c == close => return i + 1,
                (None, c @ ('"' | '\'' | '`')) => quote = Some(c),
                _ => {}
            }
            i += 1;
        }
        i
    };
    let mut names = BTreeSet::new();
    let mut parens: Vec<Paren> = Vec::new();
    let mut next_paren = Paren::Expression;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let pending = std::mem::replace(&mut next_paren, Paren::Expression);
        match c {
            '#' => i = chars[i..].iter().position(|&c| c == '\n').map_or(chars.len(), |n| i + n),
            '"' | '\'' | '`' => i = skip_to(i + 1, c),
            '{' => i = skip_to(i + 1, '}'),
            '[' => i = skip_to(i + 1, ']'),
            '$' if chars.get(i + 1) == Some(&'{') => i = skip_to(i + 2, '}'),
            '$' => {
                i += 1;
                while i < chars.len() && ident(chars[i]) {
                    i += 1;
                }
            }
            '(' => {
                parens.push(pending);
                i += 1;
            }
            ')' => {
                parens.pop();
                i += 1;
            }
            ',' => {
                if let Some(Paren::LabelValues(past)) = parens.last_mut() {
                    *past = true;
                }
                i += 1;
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len() && ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let call = chars[i..].iter().find(|c| !c.is_whitespace()) == Some(&'(');
                let lower = word.to_ascii_lowercase();
                if matches!(parens.last(), Some(Paren::Labels | Paren::LabelValues(true))) {
                    // a label name
                } else if GROUPING.contains(&lower.as_str()) {
                    next_paren = Paren::Labels;
                } else if word == "label_values" {
                    next_paren = Paren::LabelValues(false);
                } else if call || KEYWORDS.contains(&lower.as_str()) || AGGREGATIONS.split(' ').any(|a| a == lower) {
                    // a function, a keyword or an aggregation with its grouping first
                } else if !word.contains(':') {
                    let name = ["_bucket", "_sum", "_count"].iter().find_map(|s| word.strip_suffix(s));
                    names.insert(name.unwrap_or(&word).to_owned());
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Every metric name monitoring/ reads, with the files that read it.
fn metrics_used_by_monitoring() -> Vec<(String, String)> {
    let mut used = Vec::new();
    let root = monitoring_dir();
    let mut add = |file: &Path, expressions: Vec<String>| {
        let file = file.strip_prefix(&root).unwrap_or(file).display().to_string();
        for expression in expressions {
            for name in metric_names(&expression) {
                used.push((name, file.clone()));
            }
        }
    };
    let dashboards = files_under(&root.join("grafana/dashboards"), "json");
    assert!(!dashboards.is_empty(), "no dashboards under monitoring/grafana/dashboards");
    for file in dashboards {
        let board: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut queries = Vec::new();
        dashboard_queries(&board, None, &mut queries);
        assert!(!queries.is_empty(), "{}: no Prometheus query found", file.display());
        add(&file, queries);
    }
    let rule_files = files_under(&root.join("prometheus/rules"), "yml");
    assert!(!rule_files.is_empty(), "no rule files under monitoring/prometheus/rules");
    for file in rule_files {
        let yaml = std::fs::read_to_string(&file).unwrap();
        let expressions = rule_expressions(&yaml);
        let rules =
            yaml.lines().filter(|l| ["- alert:", "- record:"].iter().any(|k| l.trim_start().starts_with(k))).count();
        assert_eq!(expressions.len(), rules, "{}: not every rule's expr was read", file.display());
        add(&file, expressions);
    }
    used.retain(|(name, _)| !NOT_SERVICE_METRICS.contains(&name.as_str()));
    used.sort();
    used.dedup();
    used
}

/// Metric names in a Prometheus text exposition: every `# TYPE` and every sample's
/// name, histogram series also under the histogram's own name.
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let name = match line.strip_prefix("# TYPE ") {
            Some(rest) => rest.split_whitespace().next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        };
        let Some(name) = name.filter(|n| !n.is_empty()) else { continue };
        names.insert(name.to_owned());
        if let Some(base) = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)) {
            names.insert(base.to_owned());
        }
    }
    names
}

#[test]
fn metric_names_are_read_from_promql_without_functions_labels_or_recording_rules() {
    let names = |expr: &str| metric_names(expr).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (job, le) (rate(http_server_request_duration_seconds_bucket{route!~"/health/.*|/metrics",job="$job"}[$__rate_interval])))"#
        ),
        ["http_server_request_duration_seconds"]
    );
    assert_eq!(
        names(
            "sum by (job) (rate(orders_rejected_total{reason=\"unavailable\"}[5m]))\n/ ignoring (reason)\n(sum(rate(orders_placed_total[5m])) + 1e3 * slo:x:ratio_rate5m) > bool 0.05 # orders_not_a_metric"
        ),
        ["orders_placed_total", "orders_rejected_total"]
    );
    assert_eq!(
        names("db_pool_connections{state=\"in_use\"} / on (job, pool) group_left max_connections offset 5m"),
        ["db_pool_connections", "max_connections"]
    );
    assert_eq!(names("label_values(http_server_requests_total, job)"), ["http_server_requests_total"]);
    assert_eq!(
        names(r#"label_replace(up, "target", "$1", "instance", "(.*)") and absent(ALERTS{alertstate="firing"})"#),
        ["ALERTS", "up"]
    );
    assert_eq!(
        rule_expressions(
            "groups:\n  - name: g\n    rules:\n      - record: a:b:c\n        expr: sum(x_total)\n      - alert: A\n        expr: |\n          y\n          > 1\n        for: 5m\n      - alert: B\n        expr: \"z == 0\"\n"
        ),
        ["sum(x_total)", "          y\n          > 1\n", "z == 0"]
    );
}

#[tokio::test]
async fn every_metric_the_dashboards_and_alerts_use_is_exported() {
    let used = metrics_used_by_monitoring();
    let required: BTreeSet<&str> =
        used.iter().map(|(name, _)| name.as_str()).filter(|name| !NOT_IN_DEV_MODE.contains(name)).collect();
    for name in ["http_server_requests_total", "http_server_request_duration_seconds", "outbox_oldest_age_seconds"] {
        assert!(required.contains(name), "{name} should be read by monitoring/; is the extraction broken?");
    }
    for name in NOT_IN_DEV_MODE {
        assert!(
            used.iter().any(|(n, _)| n == name),
            "{name} is allowed to be missing but monitoring/ no longer uses it"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let env = Env::from_pairs([("ECOM_ADMIN_EMAIL", "boss@example.com"), ("ECOM_ADMIN_PASSWORD", "dev-password-123")]);
    let (platform, shutdown) = crate::start(dir.path(), &env).await;
    let http = reqwest::Client::new();
    let api = |path: &str| format!("http://{}{path}", platform.gateway);
    let send = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap_or(Value::Null))
    };
    let login = |email: &'static str, password: &'static str| {
        let request = http.post(api("/api/auth/login")).json(&json!({"email": email, "password": password}));
        async move {
            let (status, tokens) = send(request).await;
            assert_eq!(status, 200, "{tokens}");
            tokens["access_token"].as_str().unwrap().to_owned()
        }
    };

    // A customer orders the whole stock, is refused a second order, and cancels the first.
    let admin = login("boss@example.com", "dev-password-123").await;
    let product =
        json!({"sku": "LAMP-1", "name": "Lamp", "category": "home", "price": {"amount": 2500, "currency": "EUR"}});
    let (status, body) = send(http.post(api("/api/products")).bearer_auth(&admin).json(&product)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        send(http.put(api("/api/inventory/LAMP-1")).bearer_auth(&admin).json(&json!({"available": 1}))).await;
    assert_eq!(status, 200, "{body}");
    let customer = json!({"email": "grace@example.com", "password": "grace password 1", "name": "Grace"});
    let (status, body) = send(http.post(api("/api/auth/register")).json(&customer)).await;
    assert_eq!(status, 201, "{body}");
    let grace = login("grace@example.com", "grace password 1").await;
    let order = json!({"lines": [{"sku": "LAMP-1", "quantity": 1}]});
    let (status, placed) = send(http.post(api("/api/orders")).bearer_auth(&grace).json(&order)).await;
    assert_eq!(status, 201, "{placed}");
    let (status, body) = send(http.post(api("/api/orders")).bearer_auth(&grace).json(&order)).await;
    assert_eq!(status, 409, "{body}");
    let cancel = api(&format!("/api/orders/{}/cancel", placed["id"].as_str().unwrap()));
    let (status, body) = send(http.post(cancel).bearer_auth(&grace)).await;
    assert_eq!(status, 200, "{body}");

    // Events reach the outbox relay and the email consumer asynchronously: scrape until
    // every required name is there, or the deadline passes.
    let scrape_all = || {
        // The gateway serves /metrics on its operations listener only.
        let mut listeners = platform.listeners.clone();
        for (service, addr) in &mut listeners {
            if *service == "api-gateway" {
                *addr = platform.gateway_metrics;
            }
        }
        let http = http.clone();
        async move {
            let mut exported = BTreeSet::new();
            for (service, addr) in listeners {
                let response = http.get(format!("http://{addr}/metrics")).send().await.unwrap();
                assert_eq!(response.status(), 200, "{service} /metrics");
                exported.extend(exported_names(&response.text().await.unwrap()));
            }
            exported
        }
    };
    let missing = |exported: &BTreeSet<String>| -> Vec<&str> {
        required.iter().copied().filter(|name| !exported.contains(*name)).collect()
    };
    let complete = common::test_util::eventually(Duration::from_secs(10), || {
        let (scrape_all, missing) = (&scrape_all, &missing);
        async move { missing(&scrape_all().await).is_empty().then_some(()) }
    })
    .await;
    if complete.is_none() {
        let exported = scrape_all().await;
        let report: Vec<String> = missing(&exported)
            .iter()
            .map(|name| {
                let files: Vec<&str> = used.iter().filter(|(n, _)| n == name).map(|(_, file)| file.as_str()).collect();
                format!("{name} (used in {})", files.join(", "))
            })
            .collect();
        panic!("monitoring/ reads metrics no service exports:\n  {}", report.join("\n  "));
    }
    shutdown.cancel();
    platform.wait().await.unwrap();
}

#[tokio::test]
async fn the_dev_gateway_keeps_metrics_off_its_public_listener_and_made_up_methods_out_of_every_label() {
    let dir = tempfile::tempdir().unwrap();
    let (platform, shutdown) = crate::start(dir.path(), &Env::default()).await;
    let http = reqwest::Client::new();
    let public = http.get(format!("http://{}/metrics", platform.gateway)).send().await.unwrap();
    assert_eq!(public.status(), 404);

    // Through the gateway and straight at every service's own listener.
    for i in 0..60 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{i}").as_bytes()).unwrap();
        let (_, addr) = platform.listeners[i % platform.listeners.len()];
        let response = http.request(method, format!("http://{addr}/api/products/x{i}")).send().await.unwrap();
        assert!(!response.status().is_success(), "{}", response.status());
    }
    let text =
        http.get(format!("http://{}/metrics", platform.gateway_metrics)).send().await.unwrap().text().await.unwrap();
    assert!(!text.contains("INVENTED"), "a made-up method became a label value");
    assert!(!text.contains("/api/products/x"), "a raw path became a label value");
    let other =
        text.lines().filter(|l| l.starts_with("http_server_requests_total{") && l.contains("method=\"_OTHER\""));
    let services: BTreeSet<&str> = other.filter_map(|l| l.split("service=\"").nth(1)?.split('"').next()).collect();
    assert_eq!(services.len(), 6, "every service counts them as _OTHER: {services:?}");
    shutdown.cancel();
    platform.wait().await.unwrap();
}

#[tokio::test]
async fn every_listener_of_the_dev_platform_closes_a_connection_that_never_finishes_its_headers() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let (platform, shutdown) =
        crate::start(dir.path(), &Env::from_pairs([("ECOM_HEADER_READ_TIMEOUT_MS", "500")])).await;
    let mut addrs: Vec<_> = platform.listeners.iter().map(|(_, addr)| *addr).collect();
    addrs.push(platform.gateway_metrics);
    let started = std::time::Instant::now();
    let mut sockets = Vec::new();
    for addr in &addrs {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket.write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\n").await.unwrap();
        sockets.push(socket);
    }
    for (addr, socket) in addrs.iter().zip(&mut sockets) {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "{addr} still holds a connection without headers after 10 s");
    }
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    shutdown.cancel();
    platform.wait().await.unwrap();
}
