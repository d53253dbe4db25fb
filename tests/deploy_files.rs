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
