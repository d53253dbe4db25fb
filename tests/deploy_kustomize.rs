//! The kustomize base (`deploy/kustomize/`) agrees with the service: its config validates and
//! sets only documented keys, its ports, labels and selectors line up, its alerting rules name
//! only metrics the service exports, and its topic Job creates what `topics.env` says. When
//! `kubectl` is on the machine, the base and the example overlay are rendered with
//! `kubectl kustomize` and the rendered objects are checked too; without it that one test says
//! so and the parse checks below still run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The topics Job's script, run against a stand-in `kafka-topics.sh`.
#[path = "deploy_kustomize/topics_job.rs"]
mod topics_job;

/// The PrometheusRule's expressions, checked against the metrics the service exports.
#[path = "deploy_kustomize/alert_rules.rs"]
mod alert_rules;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn kustomize(rel: &str) -> PathBuf {
    root().join("deploy/kustomize").join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(kustomize(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(docs.len(), 1, "{rel}: one object per file");
    docs.into_iter().next().unwrap()
}

/// `KEY=VALUE` lines, `#` comments, as kustomize reads an `envs:` file.
fn env_file(rel: &str) -> BTreeMap<String, String> {
    read(rel)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{rel}: `{l}` is not KEY=VALUE"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// An overlay's `literals` for the generator `name` (behavior: merge) over the base's file.
fn merged_env(base_file: &str, overlay: &Value, name: &str) -> BTreeMap<String, String> {
    let mut env = env_file(base_file);
    for g in overlay["configMapGenerator"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if g["name"] == name {
            assert_eq!(g["behavior"], "merge", "{name}: overlays merge");
            for l in g["literals"].as_array().unwrap() {
                let (k, v) = l.as_str().unwrap().split_once('=').unwrap();
                env.insert(k.to_string(), v.to_string());
            }
        }
    }
    env
}

/// Every `section.key` that `deploy/credtrail.toml` documents, set or commented out.
fn documented_keys() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("deploy/credtrail.toml")).unwrap();
    let mut section = String::new();
    let mut keys = BTreeSet::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(s) = t.strip_prefix('[') {
            section = s.trim_matches(['[', ']']).to_string();
            continue;
        }
        let t = t.trim_start_matches('#').trim_start();
        if let Some((k, _)) = t.split_once('=') {
            let k = k.trim();
            if !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                keys.insert(format!("{section}.{k}"));
            }
        }
    }
    keys
}

/// The setting a `CREDTRAIL_*` variable sets: a documented key, or a librdkafka property.
fn env_setting(name: &str, documented: &BTreeSet<String>) -> Option<String> {
    let as_var = |p: &str| format!("CREDTRAIL_{}", p.replace('.', "_").to_ascii_uppercase());
    for candidate in [Some(name), name.strip_suffix("_FILE")]
        .into_iter()
        .flatten()
    {
        if let Some(p) = documented.iter().find(|p| as_var(p) == candidate) {
            return Some(p.clone());
        }
        for side in ["CONSUMER", "PRODUCER"] {
            if let Some(prop) = candidate.strip_prefix(&format!("CREDTRAIL_KAFKA_{side}_")) {
                return Some(format!("kafka.{}.{}", side.to_ascii_lowercase(), prop));
            }
        }
    }
    None
}

fn base_deployment() -> Value {
    yaml("base/deployment.yaml")
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

/// Kubernetes quantities as bytes (`4Gi`, `512Mi`, `1G`).
fn k8s_bytes(q: &str) -> u64 {
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (n, unit) = q.split_at(split);
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("quantity {q}"));
    let mult = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => panic!("quantity {q}: unit {unit}"),
    };
    n * mult
}

#[test]
fn every_kustomization_names_files_that_exist_and_parse() {
    for dir in [
        "base",
        "components/prometheus-operator",
        "components/signing",
        "overlays/example",
    ] {
        let k = yaml(&format!("{dir}/kustomization.yaml"));
        for r in k["resources"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap();
            let path = kustomize(dir).join(r);
            assert!(path.exists(), "{dir}: resource {r}");
            if r.ends_with(".yaml") {
                yaml(&format!("{dir}/{r}"));
            }
        }
        for c in k["components"].as_array().into_iter().flatten() {
            let c = c.as_str().unwrap();
            assert!(
                kustomize(dir).join(c).join("kustomization.yaml").exists(),
                "{dir}: component {c}"
            );
        }
        for g in k["configMapGenerator"].as_array().into_iter().flatten() {
            for key in ["files", "envs"] {
                for f in g[key].as_array().into_iter().flatten() {
                    let f = f.as_str().unwrap();
                    assert!(kustomize(dir).join(f).exists(), "{dir}: generator file {f}");
                }
            }
        }
    }
}

#[test]
fn the_config_validates_and_sets_only_documented_keys() {
    let documented = documented_keys();
    assert!(
        documented.contains("engine.memory_budget"),
        "{documented:?}"
    );
    let overlay = yaml("overlays/example/kustomization.yaml");
    let text = read("base/credtrail.toml");
    let table: toml::Table = toml::from_str(&text).unwrap();
    for (section, v) in &table {
        let tables: Vec<&toml::Table> = match v {
            toml::Value::Table(t) => vec![t],
            toml::Value::Array(a) => a.iter().filter_map(|t| t.as_table()).collect(),
            other => panic!("top-level {section} = {other}"),
        };
        for t in tables {
            for (key, value) in t {
                if section == "kafka" && (key == "consumer" || key == "producer") {
                    continue; // librdkafka properties: `config::load_str` below checks them
                }
                let path = format!("{section}.{key}");
                assert!(
                    documented.contains(&path),
                    "credtrail.toml sets {path} = {value}, which deploy/credtrail.toml does not document"
                );
            }
        }
    }
    let dep = base_deployment();
    let mut names: Vec<String> = env_file("base/credtrail.env").into_keys().collect();
    for e in container(&dep)["env"].as_array().unwrap() {
        names.push(e["name"].as_str().unwrap().to_string());
    }
    let signing = yaml("components/signing/kustomization.yaml");
    let signing_env = "CREDTRAIL_SIGNING_KEYS_FILE";
    assert!(
        signing["patches"][0]["patch"]
            .as_str()
            .unwrap()
            .contains(signing_env)
    );
    names.push(signing_env.to_string());
    names.push("CREDTRAIL_ENGINE_MEMORY_BUDGET".to_string()); // named in credtrail.env's comment
    for name in &names {
        assert!(
            env_setting(name, &documented).is_some(),
            "{name} sets nothing deploy/credtrail.toml documents"
        );
    }
    // The config the pods get: the file, the overlay's merged variables, the secret files.
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "hunter2\n").unwrap();
    let mut env: Vec<(String, String)> =
        merged_env("base/credtrail.env", &overlay, "credtrail-env")
            .into_iter()
            .collect();
    for e in container(&dep)["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        assert!(name.ends_with("_FILE"), "{name}: secrets come as files");
        env.push((name.to_string(), password.display().to_string()));
    }
    let (c, notes) = credtrail::config::load_str(
        &text,
        Path::new("/etc/credtrail/credtrail.toml"),
        env.clone(),
    )
    .unwrap_or_else(|e| panic!("the kustomize config: {e}"));
    assert!(notes.unknown_env.is_empty(), "{:?}", notes.unknown_env);
    assert!(
        c.kafka.brokers.contains("kafka-0.kafka.svc"),
        "overlay brokers"
    );
    // The metrics and probes listeners are the container's named ports.
    let ports: BTreeMap<&str, i64> = container(&dep)["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        c.metrics.listen.map(|a| i64::from(a.port())),
        Some(ports["metrics"])
    );
    assert_eq!(
        c.metrics.probes_listen.map(|a| i64::from(a.port())),
        Some(ports["probes"])
    );
    // The topics Job creates the inputs the service reads.
    let inputs: BTreeSet<String> = c.inputs.iter().map(|i| i.topic.clone()).collect();
    let job_inputs: BTreeSet<String> = env_file("base/topics.env")["INPUT_TOPICS"]
        .split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(inputs, job_inputs, "[[input]] topics vs INPUT_TOPICS");
    // The replicas form one cluster over the topics the Job creates for it.
    let env = env_file("base/topics.env");
    assert!(
        c.cluster.enabled,
        "the Deployment's replicas repartition by identity"
    );
    assert_eq!(c.cluster.hits_topic, env["HITS_TOPIC"]);
    assert_eq!(c.cluster.lineage_topic, env["LINEAGE_TOPIC"]);
    assert_eq!(
        c.cluster.changelog_topic.as_deref(),
        Some(env["CHANGELOG_TOPIC"].as_str())
    );
}

#[test]
fn the_memory_budget_follows_the_pod_limit() {
    let dep = base_deployment();
    let c = container(&dep);
    let limit = c["resources"]["limits"]["memory"]
        .as_str()
        .expect("a memory limit: without one the budget is half of the node's memory");
    let request = c["resources"]["requests"]["memory"].as_str().unwrap();
    assert_eq!(
        k8s_bytes(limit),
        k8s_bytes(request),
        "request what the limit allows"
    );
    let env = env_file("base/credtrail.env");
    match env.get("CREDTRAIL_ENGINE_MEMORY_BUDGET") {
        // Detection: half of the cgroup limit, which is this container's limit.
        None => {}
        Some(b) => {
            let budget = credtrail::pipeline::budget::parse_size(b).unwrap();
            assert!(
                budget < k8s_bytes(limit),
                "budget {b} not below the limit {limit}"
            );
        }
    }
    // An overlay changes the limit, and with it the detected budget.
    let overlay = yaml("overlays/example/kustomization.yaml");
    let patch = overlay["patches"][0]["patch"].as_str().unwrap();
    assert!(patch.contains("limits: {memory: 8Gi}"), "{patch}");
}

#[test]
fn labels_selectors_ports_and_the_service_account_line_up() {
    let dep = base_deployment();
    let pod = &dep["spec"]["template"];
    let pod_labels = pod["metadata"]["labels"].as_object().unwrap();
    let selects = |selector: &Value, what: &str| {
        let m = selector.as_object().unwrap();
        assert!(!m.is_empty(), "{what}: empty selector");
        for (k, v) in m {
            assert_eq!(pod_labels.get(k), Some(v), "{what} selects {k}={v}");
        }
    };
    selects(&dep["spec"]["selector"]["matchLabels"], "Deployment");
    let svc = yaml("base/service.yaml");
    selects(&svc["spec"]["selector"], "Service");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
    let pdb = yaml("base/poddisruptionbudget.yaml");
    selects(
        &pdb["spec"]["selector"]["matchLabels"],
        "PodDisruptionBudget",
    );
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    let np = yaml("base/networkpolicy.yaml");
    selects(&np["spec"]["podSelector"]["matchLabels"], "NetworkPolicy");
    let sm = yaml("components/prometheus-operator/servicemonitor.yaml");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            svc["metadata"]["labels"].get(k).or(pod_labels.get(k)),
            Some(v)
        );
    }
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    // The topics Job's pod is not a detector: no Service, PDB or policy of theirs takes it.
    let job = yaml("base/topics-job.yaml");
    assert_ne!(
        job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"],
        pod_labels["app.kubernetes.io/component"]
    );
    // No API token anywhere.
    let sa = yaml("base/serviceaccount.yaml");
    assert_eq!(sa["automountServiceAccountToken"], false);
    for p in [&pod["spec"], &job["spec"]["template"]["spec"]] {
        assert_eq!(p["serviceAccountName"], sa["metadata"]["name"]);
        assert_eq!(p["automountServiceAccountToken"], false);
    }
    // Probes on the probes port, at the endpoints the service serves.
    let c = container(&dep);
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], "probes", "{probe}");
    }
    let m = credtrail::metrics::Metrics::default();
    assert_eq!(credtrail::metrics::respond(&m, "/livez").0, 200);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
}

/// Issue 15 again, for the kustomize base: only Prometheus reaches the metrics port.
#[test]
fn the_network_policy_fences_metrics_and_opens_only_the_probes() {
    let np = yaml("base/networkpolicy.yaml");
    let ingress = np["spec"]["ingress"].as_array().unwrap();
    for rule in ingress {
        let ports: Vec<i64> = rule["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["port"].as_i64().unwrap())
            .collect();
        match ports.as_slice() {
            [9464] => {
                let from = rule["from"].as_array().expect("metrics: a `from`");
                assert_eq!(
                    from[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
                    "monitoring"
                );
                assert!(from[0]["podSelector"]["matchLabels"].is_object());
            }
            [9465] => {}
            other => panic!("ingress to {other:?}"),
        }
    }
    assert_eq!(ingress.len(), 2);
}

#[test]
fn no_secret_value_is_kept_in_the_kustomize_tree() {
    let mut stack = vec![kustomize("")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.contains("kind: Secret"), "{}", path.display());
            assert!(!text.contains("secretGenerator"), "{}", path.display());
            assert!(!text.contains("stringData"), "{}", path.display());
        }
    }
}

/// `kubectl kustomize` renders the base and the example overlay; the rendered objects refer to
/// the ConfigMaps by their hashed names (a config change rolls the pods).
#[test]
fn kubectl_kustomize_renders_the_base_and_the_example_overlay() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("kubectl not found: the render check is skipped, the parse checks still run");
        return;
    }
    let render = |rel: &str| -> Vec<Value> {
        let out = Command::new("kubectl")
            .args(["kustomize"])
            .arg(kustomize(rel))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl kustomize {rel}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap())
            .unwrap_or_else(|e| panic!("{rel} rendered: {e}"))
    };
    let base = render("base");
    let kinds: BTreeSet<&str> = base.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    for k in [
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Job",
    ] {
        assert!(kinds.contains(k), "base renders a {k}");
    }
    assert!(
        !kinds.contains("ServiceMonitor"),
        "the operator's objects are a component"
    );
    let example = render("overlays/example");
    let find = |kind: &str, name: &str| {
        example
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name}"))
    };
    let config_maps: BTreeSet<&str> = example
        .iter()
        .filter(|o| o["kind"] == "ConfigMap")
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    for name in &config_maps {
        assert!(
            name.rsplit_once('-').is_some_and(|(_, h)| h.len() == 10),
            "{name}: a content hash in the name"
        );
    }
    for (kind, name) in [("Deployment", "credtrail"), ("Job", "credtrail-topics")] {
        let spec = &find(kind, name)["spec"]["template"]["spec"];
        let c = &spec["containers"][0];
        let mut refs: Vec<&str> = Vec::new();
        for e in c["envFrom"].as_array().unwrap() {
            refs.push(e["configMapRef"]["name"].as_str().unwrap());
        }
        for v in spec["volumes"].as_array().unwrap() {
            if let Some(n) = v["configMap"]["name"].as_str() {
                refs.push(n);
            }
        }
        for r in refs {
            assert!(
                config_maps.contains(r),
                "{kind} {name} refers to ConfigMap {r}"
            );
        }
    }
    for o in &example {
        assert_eq!(o["metadata"]["namespace"], "credtrail", "{}", o["kind"]);
    }
    let dep = find("Deployment", "credtrail");
    assert_eq!(dep["spec"]["replicas"], 6);
    let c = container(dep);
    assert_eq!(c["image"], "registry.example.com/credtrail:0.1.0");
    assert_eq!(c["resources"]["limits"]["memory"], "8Gi");
    assert!(
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "CREDTRAIL_SIGNING_KEYS_FILE"),
        "the signing component"
    );
    let env = config_maps
        .iter()
        .find(|n| n.starts_with("credtrail-env-"))
        .unwrap();
    let env = find("ConfigMap", env);
    assert!(
        env["data"]["CREDTRAIL_KAFKA_BROKERS"]
            .as_str()
            .unwrap()
            .starts_with("kafka-0.kafka.svc:9093"),
        "the overlay's merge"
    );
    assert_eq!(
        env["data"]["CREDTRAIL_KAFKA_GROUP"], "credtrail",
        "the base's values stay"
    );
    find("ServiceMonitor", "credtrail");
    find("PrometheusRule", "credtrail");
}
