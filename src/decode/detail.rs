//! What an evidence shows of its event: the fields naming the caller, the call, where it came
//! from, the host and process, and the resources it acted on, per source profile. The worker
//! takes them once per matched event ([`EventView::details`](super::EventView::details)), so
//! the alert can show them without the raw log; the shard only ever holds the packed result.

use super::profile::ProfileKind;
pub use crate::vocab::{DetailKind, EventDetails};

/// A field showing one fact of an event, optionally only when another field has a given
/// value (an SSM parameter `name` is a secret, another service's `name` is not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetailField {
    pub kind: DetailKind,
    pub field: String,
    pub when: Option<(String, String)>,
}

impl DetailField {
    fn new(kind: DetailKind, field: &str) -> DetailField {
        DetailField {
            kind,
            field: field.into(),
            when: None,
        }
    }

    fn when(kind: DetailKind, field: &str, other: &str, value: &str) -> DetailField {
        DetailField {
            kind,
            field: field.into(),
            when: Some((other.into(), value.into())),
        }
    }
}

/// The evidence fields of each built-in profile, in the order they are shown.
pub(super) fn detail_fields(kind: ProfileKind) -> Vec<DetailField> {
    use DetailKind::*;
    let d = DetailField::new;
    match kind {
        ProfileKind::CloudTrail => vec![
            d(User, "userIdentity.arn"),
            d(Credential, "userIdentity.accessKeyId"),
            d(Operation, "eventName"),
            d(Service, "eventSource"),
            d(Error, "errorCode"),
            d(SrcIp, "sourceIPAddress"),
            d(UserAgent, "userAgent"),
            d(Secret, "requestParameters.secretId"),
            DetailField::when(
                Secret,
                "requestParameters.name",
                "eventSource",
                "ssm.amazonaws.com",
            ),
            d(Bucket, "requestParameters.bucketName"),
            d(Image, "requestParameters.imageId"),
            d(Snapshot, "requestParameters.snapshotId"),
            d(
                SharedWith,
                "requestParameters.launchPermission.add.items.userId",
            ),
            d(
                SharedWith,
                "requestParameters.createVolumePermission.add.items.userId",
            ),
            d(SharedWith, "requestParameters.attributes.valuesToAdd"),
            d(Resource, "requestParameters.instanceId"),
            d(Resource, "requestParameters.roleName"),
            d(Resource, "requestParameters.userName"),
            d(Resource, "requestParameters.functionName"),
        ],
        ProfileKind::Windows => vec![
            d(User, "User"),
            d(User, "SubjectUserName"),
            d(Hostname, "Computer"),
            d(Process, "Image"),
            d(CmdLine, "CommandLine"),
            d(ParentProcess, "ParentImage"),
            d(ParentCmdLine, "ParentCommandLine"),
            d(SrcIp, "IpAddress"),
            d(SrcIp, "SourceIp"),
            d(File, "TargetFilename"),
            d(Object, "ObjectName"),
            d(Resource, "TaskName"),
            d(Resource, "TargetImage"),
        ],
        ProfileKind::Linux => vec![
            d(User, "User"),
            d(Hostname, "Hostname"),
            d(Process, "Image"),
            d(CmdLine, "CommandLine"),
            d(ParentProcess, "ParentImage"),
            d(ParentCmdLine, "ParentCommandLine"),
            d(File, "TargetFilename"),
            d(Resource, "DestinationHostname"),
        ],
        ProfileKind::K8sAudit => vec![
            d(User, "user.username"),
            d(Operation, "verb"),
            d(SrcIp, "sourceIPs"),
            d(UserAgent, "userAgent"),
            d(ObjectKind, "objectRef.resource"),
            d(Object, "objectRef.name"),
            d(Namespace, "objectRef.namespace"),
        ],
        ProfileKind::Ocsf => vec![
            d(User, "actor.user.name"),
            d(Credential, "actor.user.credential_uid"),
            d(Operation, "api.operation"),
            d(Service, "api.service.name"),
            d(SrcIp, "src_endpoint.ip"),
            d(SrcCountry, "src_endpoint.location.country"),
            d(UserAgent, "http_request.user_agent"),
            d(Hostname, "device.hostname"),
            d(CmdLine, "process.cmd_line"),
            d(ParentCmdLine, "process.parent_process.cmd_line"),
            d(Resource, "resources.uid"),
        ],
        ProfileKind::Ecs => vec![
            d(User, "user.name"),
            d(Operation, "event.action"),
            d(SrcIp, "source.ip"),
            d(SrcCountry, "source.geo.country_iso_code"),
            d(UserAgent, "user_agent.original"),
            d(Hostname, "host.name"),
            d(Process, "process.executable"),
            d(CmdLine, "process.command_line"),
            d(ParentCmdLine, "process.parent.command_line"),
            d(File, "file.path"),
        ],
        ProfileKind::Agent => vec![
            d(User, "agent.id"),
            d(Operation, "tool.name"),
            d(Resource, "target.resource"),
            d(Resource, "target.destination"),
        ],
        ProfileKind::Generic => Vec::new(),
    }
}
