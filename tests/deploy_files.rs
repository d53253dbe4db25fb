//! The deployment files parse and agree with the service: YAML is YAML, the Kubernetes
//! ConfigMap's config passes the same validation as `credtrail config check`, probes point at
//! the endpoints the service serves.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_docs(rel: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(root().join(rel)).unwrap();
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn compose_defines_kafka_topics_and_credtrail() {
    let docs = yaml_docs("deploy/compose.yaml");
    let services = &docs[0]["services"];
    for s in ["kafka", "topics", "credtrail"] {
        assert!(services.get(s).is_some(), "compose service {s}");
    }
    assert_eq!(
        services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"],
        "broker,controller"
    );
    let create = services["topics"]["command"][0].as_str().unwrap();
    for t in [
        "credtrail-alerts",
        "credtrail-dead-letters",
        "credtrail-checkpoints",
        "cleanup.policy=compact",
    ] {
        assert!(create.contains(t), "topic creation mentions {t}");
    }
}

#[test]
fn the_kubernetes_config_map_holds_a_valid_config_and_probes_hit_the_endpoints() {
    let cm = yaml_docs("deploy/k8s/configmap.yaml");
    let toml_text = cm[0]["data"]["credtrail.toml"].as_str().unwrap();
    let (c, _) = credtrail::config::load_str(
        toml_text,
        Path::new("/etc/credtrail/credtrail.toml"),
        Vec::new(),
    )
    .unwrap_or_else(|e| panic!("configmap config: {e}"));
    assert_eq!(c.metrics.listen.map(|a| a.port()), Some(9464));
    assert_eq!(c.metrics.probes_listen.map(|a| a.port()), Some(9465));
    let dep = yaml_docs("deploy/k8s/deployment.yaml");
    let container = &dep[0]["spec"]["template"]["spec"]["containers"][0];
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], "probes", "{probe}");
    }
    assert_eq!(container["ports"][1]["name"], "probes");
    assert_eq!(container["ports"][1]["containerPort"], 9465);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let m = credtrail::metrics::Metrics::default();
    assert_eq!(credtrail::metrics::respond(&m, "/livez").0, 200);
    let secret = yaml_docs("deploy/k8s/secret.yaml");
    assert_eq!(secret[0]["kind"], "Secret");
}

/// Issue 15: `/metrics` (every rule's title and match count) was bound on 0.0.0.0 with nothing
/// in front of it. In Kubernetes a NetworkPolicy admits only Prometheus to the metrics port;
/// compose publishes it on the host's loopback only.
#[test]
fn the_metrics_port_is_fenced_in_kubernetes_and_compose() {
    let np = yaml_docs("deploy/k8s/networkpolicy.yaml");
    assert_eq!(np[0]["kind"], "NetworkPolicy");
    assert_eq!(
        np[0]["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "credtrail"
    );
    let ingress = np[0]["spec"]["ingress"].as_array().unwrap();
    let metrics_rule = ingress
        .iter()
        .find(|r| r["ports"][0]["port"] == 9464)
        .expect("a rule for the metrics port");
    assert!(
        !metrics_rule["from"].as_array().unwrap().is_empty(),
        "the metrics port is open to everyone"
    );
    for r in ingress {
        let port = &r["ports"][0]["port"];
        assert!(port == 9464 || port == 9465, "unexpected port {port}");
    }
    let compose = yaml_docs("deploy/compose.yaml");
    let ports = compose[0]["services"]["credtrail"]["ports"]
        .as_array()
        .unwrap();
    for p in ports {
        assert!(
            p.as_str().unwrap().starts_with("127.0.0.1:"),
            "{p} is published on every interface"
        );
    }
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                cur.push_str(part);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    out
}

/// Whether `.dockerignore` lets `path` into the build context: the last pattern that matches
/// decides (`*` everything at the top, `!name` re-includes `name` and what is under it).
fn in_build_context(path: &str) -> bool {
    let text = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    let mut included = true;
    for p in text.lines().map(str::trim) {
        if p.is_empty() || p.starts_with('#') {
            continue;
        }
        let (keep, p) = match p.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, p),
        };
        let p = p.trim_end_matches('/');
        assert!(
            p == "*" || !p.contains(['*', '?', '[']),
            "this check reads only `*` and plain names, not {p}"
        );
        if p == "*" || path == p || path.starts_with(&format!("{p}/")) {
            included = keep;
        }
    }
    included
}

#[test]
fn the_build_context_holds_what_the_dockerfile_copies_and_nothing_heavy() {
    for instruction in dockerfile() {
        let Some(args) = instruction.strip_prefix("COPY ") else {
            continue;
        };
        if args.starts_with("--from") {
            continue;
        }
        let parts: Vec<&str> = args.split_whitespace().collect();
        for src in &parts[..parts.len() - 1] {
            assert!(root().join(src).exists(), "COPY {src}: no such file");
            assert!(
                in_build_context(src),
                "COPY {src}, but .dockerignore leaves it out"
            );
        }
    }
    for heavy in [
        "target",
        "target/debug/credtrail",
        "fuzz/target",
        ".git",
        "datasets/public",
        "tests",
        "benches",
        "rules-sigmahq",
    ] {
        assert!(!in_build_context(heavy), "{heavy} is in the build context");
    }
}

#[test]
fn the_dockerfile_builds_dependencies_before_copying_the_sources() {
    let steps = dockerfile();
    let at = |pred: &dyn Fn(&str) -> bool| steps.iter().position(|s| pred(s));
    let manifest = at(&|s| s.starts_with("COPY Cargo.toml Cargo.lock")).expect("manifest copy");
    let deps = at(&|s| s.starts_with("RUN ") && s.contains("cargo build")).expect("deps build");
    let sources = at(&|s| s.starts_with("COPY src")).expect("sources copy");
    assert!(manifest < deps && deps < sources, "{steps:#?}");
    assert!(steps[sources + 1].contains("cargo build --release --locked"));
    // The stub step, run here: it must lay out every target Cargo.toml declares.
    let stub = steps[deps]
        .strip_prefix("RUN ")
        .unwrap()
        .split("&& cargo build")
        .next()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root().join("Cargo.toml"), dir.path().join("Cargo.toml")).unwrap();
    let status = std::process::Command::new("sh")
        .args(["-c", stub])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "{stub}");
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    let mut wanted = vec!["src/main.rs".to_string(), "src/lib.rs".to_string()];
    for b in manifest["bench"].as_array().unwrap() {
        wanted.push(format!("benches/{}.rs", b["name"].as_str().unwrap()));
    }
    for f in &wanted {
        assert!(dir.path().join(f).exists(), "the stub step leaves out {f}");
    }
    assert!(steps[deps].contains("--locked"));
}

#[test]
fn the_healthcheck_asks_credtrail_health_on_the_example_configs_listener() {
    let steps = dockerfile();
    let hc = steps
        .iter()
        .find(|s| s.starts_with("HEALTHCHECK "))
        .expect("a HEALTHCHECK");
    let cmd = &hc[hc.find("CMD ").expect("exec form") + 4..];
    let argv: Vec<String> = serde_json::from_str(cmd).unwrap();
    assert_eq!(argv[..2], ["/usr/local/bin/credtrail", "health"]);
    let url = &argv[argv.iter().position(|a| a == "--url").unwrap() + 1];
    let (c, _) = credtrail::config::load(&root().join("deploy/credtrail.toml"), Vec::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let listen = c.metrics.listen.unwrap();
    assert_eq!(url, &format!("http://127.0.0.1:{}/livez", listen.port()));
}
