//! Benign platform activity: the Kubernetes API and AI agents' tool calls.

use crate::time::EventTime;
use crate::tooling::generator::sources::{Factory, Generated, KubeRequest, ToolCall};

/// (verb, resource, object name)
type KubeCall = (&'static str, &'static str, Option<&'static str>);

pub(super) fn kube(f: &mut Factory, rank: u64, role: u64, t: EventTime) -> Generated {
    const SA: &[&str] = &["system:serviceaccounts", "system:authenticated"];
    const USERS: &[&str] = &["developers", "system:authenticated"];
    let controllers = [
        "replicaset-controller",
        "endpoint-controller",
        "node-controller",
        "job-controller",
    ];
    let ns = format!("app-{}", rank % 30);
    let (user, groups, agent, reqs): (String, &[&str], &str, &[KubeCall]) = match role {
        0..=29 => (
            format!(
                "system:serviceaccount:kube-system:{}",
                controllers[(rank % 4) as usize]
            ),
            SA,
            "kube-controller-manager/v1.30.2",
            &[
                ("watch", "pods", None),
                ("list", "endpoints", None),
                ("update", "leases", None),
                ("get", "nodes", None),
            ],
        ),
        30..=59 => (
            format!("system:serviceaccount:{ns}:default"),
            SA,
            "app/v2.3.1",
            &[
                ("get", "configmaps", Some("app-config")),
                ("get", "secrets", Some("app-db")),
                ("watch", "configmaps", None),
            ],
        ),
        60..=89 => (
            format!("dev{rank}@example.com"),
            USERS,
            "kubectl/v1.30.2 (linux/amd64) kubernetes/39683505",
            &[
                ("get", "pods", None),
                ("list", "deployments", None),
                ("get", "pods", Some("web-0")),
                ("list", "services", None),
            ],
        ),
        _ => (
            "system:serviceaccount:argocd:argocd-application-controller".into(),
            SA,
            "argocd-application-controller/v2.11.0",
            &[
                ("patch", "deployments", Some("web")),
                ("get", "deployments", Some("web")),
                ("list", "replicasets", None),
            ],
        ),
    };
    let (verb, resource, name) = *f.rng.pick(reqs);
    let subresource = (resource == "pods" && name.is_some() && f.rng.chance(0.5)).then_some("log");
    f.kube_audit(
        t,
        &KubeRequest {
            user: &user,
            groups,
            verb,
            resource,
            subresource,
            namespace: (role >= 30).then_some(ns.as_str()).or(Some("kube-system")),
            name,
            code: 200,
            agent,
        },
    )
}

pub(super) fn agent(f: &mut Factory, rank: u64, role: u64, t: EventTime) -> Generated {
    let id = format!("agent-{rank}");
    let session = format!("s-{}", t.as_millis() / 1_800_000 + rank as i64);
    if role >= 90 {
        // The deploy agent reads its own deploy token and calls the internal deploy endpoint.
        let secret = f.rng.chance(0.5);
        return f.tool_call(
            t,
            &ToolCall {
                agent_id: &id,
                agent_name: "deploy-bot",
                session: &session,
                on_behalf_of: "ci@example.com",
                tool: if secret {
                    "aws_secretsmanager_get_secret_value"
                } else {
                    "http_post"
                },
                arguments: if secret {
                    &[("secret_id", "ci/deploy-token")]
                } else {
                    &[("url", "https://deploy.internal/hooks/release")]
                },
                resource: secret.then_some("ci/deploy-token"),
                destination: (!secret).then_some("https://deploy.internal/hooks/release"),
                outcome: "success",
            },
        );
    }
    let user = format!("user{}@example.com", rank % 2000);
    let (name, tools): (&str, &[(&str, &str, &str)]) = if role < 50 {
        (
            "support-bot",
            &[
                ("search_docs", "query", "refund policy"),
                ("create_ticket", "summary", "customer asks about invoice"),
                ("read_file", "path", "kb/faq.md"),
            ],
        )
    } else {
        (
            "ops-copilot",
            &[
                (
                    "run_query",
                    "sql",
                    "SELECT count(*) FROM orders WHERE day = today()",
                ),
                ("read_file", "path", "runbooks/oncall.md"),
                ("http_get", "url", "https://wiki.internal/oncall"),
                ("list_pods", "namespace", "app-3"),
            ],
        )
    };
    let (tool, arg, value) = *f.rng.pick(tools);
    let outcome = if f.rng.chance(0.02) {
        "error"
    } else {
        "success"
    };
    f.tool_call(
        t,
        &ToolCall {
            agent_id: &id,
            agent_name: name,
            session: &session,
            on_behalf_of: &user,
            tool,
            arguments: &[(arg, value)],
            resource: (tool == "read_file").then_some(value),
            destination: (tool == "http_get").then_some(value),
            outcome,
        },
    )
}
