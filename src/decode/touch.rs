//! What an event touched: the fields naming the secrets, resources, hosts, regions and services
//! an event acted on, per source profile. The shard counts them per group for the blast radius.

use super::profile::ProfileKind;
// A hit carries what its event touched, so the kind is shared vocabulary.
pub use crate::vocab::TouchKind;

/// A field naming something touched, optionally only when another field has a given value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TouchField {
    pub kind: TouchKind,
    pub field: String,
    pub when: Option<(String, String)>,
}

impl TouchField {
    pub fn new(kind: TouchKind, field: &str) -> TouchField {
        TouchField {
            kind,
            field: field.into(),
            when: None,
        }
    }

    pub fn when(kind: TouchKind, field: &str, other: &str, value: &str) -> TouchField {
        TouchField {
            kind,
            field: field.into(),
            when: Some((other.into(), value.into())),
        }
    }
}

/// What each built-in profile says an event touched.
pub(super) fn touch_fields(kind: ProfileKind) -> Vec<TouchField> {
    use TouchKind::*;
    let t = TouchField::new;
    match kind {
        ProfileKind::CloudTrail => vec![
            t(Service, "eventSource"),
            t(Region, "awsRegion"),
            t(Secret, "requestParameters.secretId"),
            TouchField::when(
                Secret,
                "requestParameters.name",
                "eventSource",
                "ssm.amazonaws.com",
            ),
            TouchField::when(
                Secret,
                "requestParameters.names",
                "eventSource",
                "ssm.amazonaws.com",
            ),
            t(Resource, "requestParameters.bucketName"),
            t(Resource, "requestParameters.instanceId"),
            t(Resource, "requestParameters.snapshotId"),
            t(Resource, "requestParameters.imageId"),
            t(Resource, "requestParameters.dBSnapshotIdentifier"),
            t(Resource, "requestParameters.userName"),
            t(Resource, "requestParameters.roleName"),
            t(Resource, "requestParameters.functionName"),
            t(Resource, "resources.ARN"),
        ],
        ProfileKind::Windows => vec![
            t(Host, "Computer"),
            t(Service, "Channel"),
            t(Resource, "TargetFilename"),
            t(Resource, "TaskName"),
            t(Resource, "ObjectName"),
            t(Resource, "TargetImage"),
        ],
        ProfileKind::K8sAudit => vec![
            t(Service, "objectRef.resource"),
            t(Resource, "objectRef.name"),
            TouchField::when(Secret, "objectRef.name", "objectRef.resource", "secrets"),
        ],
        ProfileKind::Ocsf => vec![
            t(Host, "device.hostname"),
            t(Region, "cloud.region"),
            t(Service, "api.service.name"),
            t(Resource, "resources.uid"),
        ],
        ProfileKind::Ecs => vec![
            t(Host, "host.name"),
            t(Region, "cloud.region"),
            t(Service, "event.dataset"),
            t(Resource, "file.path"),
            t(Resource, "url.domain"),
        ],
        ProfileKind::Linux => vec![
            t(Host, "Hostname"),
            t(Resource, "TargetFilename"),
            t(Resource, "DestinationHostname"),
        ],
        ProfileKind::Agent => vec![
            t(Service, "tool.name"),
            t(Resource, "target.resource"),
            t(Resource, "target.destination"),
        ],
        ProfileKind::Generic => Vec::new(),
    }
}
