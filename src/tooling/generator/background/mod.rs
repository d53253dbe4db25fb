//! Benign background: what the real data shows ordinary identities doing, per source.
//!
//! An identity is a Zipf rank within its source's population; its role follows from the rank,
//! so an identity always behaves the same way and nothing is stored per identity. The heaviest
//! ranks are applications and service accounts (in real logs the busiest principals are
//! machines, not people). The roles share the attack chains' vocabulary without ever completing
//! a chain of the shipped pack (see `chains` for the near misses that come closest):
//!
//! - CloudTrail: applications on instances (object reads, KMS, queues); developers (describe,
//!   who-am-I, CLI reads); administrators listing users and roles and issuing access keys, who
//!   never read secrets; CI roles reading their deploy secret and describing instances; Terraform
//!   runs reading secrets and SSM parameters and describing everything (the invictus data's
//!   dual-use trap), never creating credentials.
//! - Windows: office users (browser, mail, `whoami`, `net use`); administrators running
//!   discovery and creating maintenance tasks, never touching LSASS; backup service accounts;
//!   machine accounts updating their own scheduled tasks (Security 4698, nested layout).
//! - Linux: cron maintenance as root, developers at a shell, deploy bots pulling images.
//! - Kubernetes: controllers watching and updating, workloads reading their own secrets and
//!   config maps, developers reading pods and logs, a GitOps controller patching deployments.
//! - AI agents: assistants searching docs, reading files, querying, filing tickets; a deploy
//!   agent reading its deploy token and calling an internal endpoint.

use xxhash_rust::xxh3::xxh3_64;

mod cloud;
mod hosts;
mod platforms;

use super::sources::{Factory, Generated};
use crate::time::EventTime;

/// The sources the generator writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    CloudTrail,
    WindowsFlat,
    WindowsNested,
    Linux,
    K8sAudit,
    Agent,
}

impl Source {
    pub const ALL: [Source; 6] = [
        Source::CloudTrail,
        Source::WindowsFlat,
        Source::WindowsNested,
        Source::Linux,
        Source::K8sAudit,
        Source::Agent,
    ];

    /// The label's `source`.
    pub fn name(self) -> &'static str {
        match self {
            Source::CloudTrail => "cloudtrail",
            Source::WindowsFlat | Source::WindowsNested => "windows",
            Source::Linux => "linux",
            Source::K8sAudit => "k8s_audit",
            Source::Agent => "agent",
        }
    }

    /// The Sigma `logsource.product` of rules for the source.
    pub fn product(self) -> &'static str {
        match self {
            Source::CloudTrail => "aws",
            Source::WindowsFlat | Source::WindowsNested => "windows",
            Source::Linux => "linux",
            Source::K8sAudit => "kubernetes",
            Source::Agent => crate::decode::profile::AGENT_PRODUCT,
        }
    }
}

/// The role of a rank: the heaviest 1 % (at least 3 ranks) are machines, the rest spread by
/// a hash of the rank into `0..100`.
fn role_bucket(source: Source, rank: u64, population: u64) -> u64 {
    let heavy = (population / 100).max(3);
    if rank <= heavy {
        return 0;
    }
    xxh3_64(&[rank.to_le_bytes(), (source as u64).to_le_bytes()].concat()) % 100
}

/// One benign event of `source` by the identity of Zipf rank `rank` (1-based) in a population
/// of `population`, at `t`.
pub fn event(
    f: &mut Factory,
    source: Source,
    rank: u64,
    population: u64,
    t: EventTime,
) -> Generated {
    let role = role_bucket(source, rank, population);
    match source {
        Source::CloudTrail => cloud::cloudtrail(f, rank, role, t),
        Source::WindowsFlat => hosts::windows_flat(f, rank, role, t),
        Source::WindowsNested => hosts::windows_nested(f, rank, role, t),
        Source::Linux => hosts::linux(f, rank, role, t),
        Source::K8sAudit => platforms::kube(f, rank, role, t),
        Source::Agent => platforms::agent(f, rank, role, t),
    }
}

pub(super) fn ip(f: &mut Factory, internal: bool) -> String {
    if internal {
        format!(
            "10.{}.{}.{}",
            f.rng.below(4),
            f.rng.below(64),
            2 + f.rng.below(250)
        )
    } else {
        format!("203.0.113.{}", 10 + f.rng.below(200))
    }
}
