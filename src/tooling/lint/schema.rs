//! What fields each source profile's events can hold, nested: the schema `rules lint` checks a
//! rule's field names against, and the source of its "did you mean" for a misspelt one.
//!
//! A profile with a published event schema (CloudTrail records, Kubernetes audit events,
//! Sysmon for Linux, agent tool calls) has a tree here; Windows event data, ECS and OCSF are
//! open (a rule may name anything). In a tree, an object is closed when its keys are fixed by
//! the schema (`objectRef` has `resource`, `namespace`, `name`, ...: `objectRef.resorce` is a
//! typo) and open when they are the user's or the API's (`requestParameters`, `annotations`,
//! `requestObject`: anything under them may exist). The trees follow the public references:
//! AWS's CloudTrail record contents, Kubernetes' `audit.k8s.io/v1` `Event`, Sysmon's event
//! fields.

use crate::decode::ProfileKind;
use crate::matcher::IDENTITY_FIELD;
use crate::sigma::suggest;

/// A field of a profile's events.
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
}

/// What is under a field.
pub enum Kind {
    /// A value: nothing under it.
    Leaf,
    /// An object whose keys the schema fixes.
    Closed(&'static [Field]),
    /// An object (or list of them) whose keys are free.
    Open,
}

const fn leaf(name: &'static str) -> Field {
    Field {
        name,
        kind: Kind::Leaf,
    }
}

const fn open(name: &'static str) -> Field {
    Field {
        name,
        kind: Kind::Open,
    }
}

const fn closed(name: &'static str, fields: &'static [Field]) -> Field {
    Field {
        name,
        kind: Kind::Closed(fields),
    }
}

const SESSION_ISSUER: &[Field] = &[
    leaf("type"),
    leaf("principalId"),
    leaf("arn"),
    leaf("accountId"),
    leaf("userName"),
];

const SESSION_CONTEXT: &[Field] = &[
    open("attributes"),
    closed("sessionIssuer", SESSION_ISSUER),
    open("webIdFederationData"),
    leaf("sourceIdentity"),
    leaf("ec2RoleDelivery"),
    leaf("assumedRoot"),
];

const USER_IDENTITY: &[Field] = &[
    leaf("type"),
    leaf("principalId"),
    leaf("arn"),
    leaf("accountId"),
    leaf("accessKeyId"),
    leaf("userName"),
    closed("sessionContext", SESSION_CONTEXT),
    leaf("invokedBy"),
    leaf("identityProvider"),
    open("onBehalfOf"),
    leaf("credentialId"),
    open("inScopeOf"),
];

const CLOUDTRAIL: &[Field] = &[
    leaf("eventVersion"),
    closed("userIdentity", USER_IDENTITY),
    leaf("eventTime"),
    leaf("eventSource"),
    leaf("eventName"),
    leaf("awsRegion"),
    leaf("sourceIPAddress"),
    leaf("userAgent"),
    leaf("errorCode"),
    leaf("errorMessage"),
    open("requestParameters"),
    open("responseElements"),
    open("additionalEventData"),
    leaf("requestID"),
    leaf("eventID"),
    leaf("readOnly"),
    closed("resources", &[leaf("ARN"), leaf("accountId"), leaf("type")]),
    leaf("eventType"),
    leaf("apiVersion"),
    leaf("managementEvent"),
    leaf("recipientAccountId"),
    open("serviceEventDetails"),
    leaf("sharedEventID"),
    leaf("vpcEndpointId"),
    leaf("vpcEndpointAccountId"),
    leaf("eventCategory"),
    open("tlsDetails"),
    leaf("sessionCredentialFromConsole"),
    open("edgeDeviceDetails"),
    open("insightDetails"),
    leaf("@timestamp"),
];

const K8S_USER: &[Field] = &[leaf("username"), leaf("uid"), leaf("groups"), open("extra")];

const K8S: &[Field] = &[
    leaf("kind"),
    leaf("apiVersion"),
    leaf("level"),
    leaf("auditID"),
    leaf("stage"),
    leaf("requestURI"),
    leaf("verb"),
    closed("user", K8S_USER),
    closed("impersonatedUser", K8S_USER),
    leaf("sourceIPs"),
    leaf("userAgent"),
    closed(
        "objectRef",
        &[
            leaf("resource"),
            leaf("namespace"),
            leaf("name"),
            leaf("uid"),
            leaf("apiGroup"),
            leaf("apiVersion"),
            leaf("resourceVersion"),
            leaf("subresource"),
        ],
    ),
    closed(
        "responseStatus",
        &[
            open("metadata"),
            leaf("status"),
            leaf("message"),
            leaf("reason"),
            open("details"),
            leaf("code"),
        ],
    ),
    open("requestObject"),
    open("responseObject"),
    leaf("requestReceivedTimestamp"),
    leaf("stageTimestamp"),
    open("annotations"),
];

const LINUX: &[Field] = &[
    leaf("@timestamp"),
    leaf("Channel"),
    leaf("EventID"),
    leaf("Hostname"),
    leaf("Computer"),
    leaf("RecordNumber"),
    leaf("User"),
    leaf("auid"),
    leaf("uid"),
    leaf("Image"),
    leaf("CommandLine"),
    leaf("ParentImage"),
    leaf("ParentCommandLine"),
    leaf("ParentUser"),
    leaf("CurrentDirectory"),
    leaf("ProcessId"),
    leaf("ProcessGuid"),
    leaf("ParentProcessId"),
    leaf("ParentProcessGuid"),
    leaf("LogonId"),
    leaf("LogonGuid"),
    leaf("IntegrityLevel"),
    leaf("Hashes"),
    leaf("OriginalFileName"),
    leaf("Product"),
    leaf("Description"),
    leaf("Company"),
    leaf("FileVersion"),
    leaf("RuleName"),
    leaf("UtcTime"),
    leaf("CreationUtcTime"),
    leaf("TargetFilename"),
    leaf("Protocol"),
    leaf("Initiated"),
    leaf("SourceIp"),
    leaf("SourceHostname"),
    leaf("SourcePort"),
    leaf("SourceIsIpv6"),
    leaf("DestinationIp"),
    leaf("DestinationHostname"),
    leaf("DestinationPort"),
    leaf("DestinationPortName"),
    leaf("DestinationIsIpv6"),
];

const AGENT: &[Field] = &[
    leaf("timestamp"),
    leaf("event_type"),
    leaf("event_id"),
    open("agent"),
    open("tool"),
    open("target"),
    leaf("outcome"),
];

/// The schema of `profile`'s events, when it has a fixed one.
pub fn of(profile: ProfileKind) -> Option<&'static [Field]> {
    match profile {
        ProfileKind::CloudTrail => Some(CLOUDTRAIL),
        ProfileKind::K8sAudit => Some(K8S),
        ProfileKind::Linux => Some(LINUX),
        ProfileKind::Agent => Some(AGENT),
        _ => None,
    }
}

/// Whether events of `profile` can hold `field` (a dotted path; profiles without a schema
/// hold anything).
pub fn provides(profile: ProfileKind, field: &str) -> bool {
    if field == IDENTITY_FIELD {
        return true;
    }
    let Some(mut level) = of(profile) else {
        return true;
    };
    let mut parts = field.split('.');
    while let Some(part) = parts.next() {
        let Some(f) = level.iter().find(|f| f.name == part) else {
            return false;
        };
        match f.kind {
            Kind::Open => return true,
            Kind::Leaf => return parts.next().is_none(),
            Kind::Closed(children) => {
                if parts.clone().next().is_none() {
                    return true;
                }
                level = children;
            }
        }
    }
    true
}

/// The known path `field` was probably meant to be: its first unknown part replaced by the
/// closest name at that level (`objectRef.resorce` → `objectRef.resource`, `eventNme` →
/// `eventName`), the parts after it kept. `None` when nothing is close, or when `field` is
/// provided.
pub fn closest(profile: ProfileKind, field: &str) -> Option<String> {
    let mut level = of(profile)?;
    let parts: Vec<&str> = field.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let f = match level.iter().find(|f| f.name == *part) {
            Some(f) => f,
            None => {
                let name = suggest::closest(part, level.iter().map(|f| f.name))?;
                let mut fixed: Vec<&str> = parts.clone();
                fixed[i] = name;
                let fixed = fixed.join(".");
                return provides(profile, &fixed).then_some(fixed);
            }
        };
        match f.kind {
            Kind::Closed(children) => level = children,
            Kind::Open | Kind::Leaf => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_fields_are_known_closed_or_open() {
        assert!(provides(ProfileKind::K8sAudit, "objectRef.resource"));
        assert!(provides(ProfileKind::K8sAudit, "objectRef"));
        assert!(!provides(ProfileKind::K8sAudit, "objectRef.resorce"));
        assert!(provides(
            ProfileKind::K8sAudit,
            "requestObject.spec.containers"
        ));
        assert!(!provides(ProfileKind::K8sAudit, "verb.name"));
        assert!(provides(
            ProfileKind::CloudTrail,
            "userIdentity.sessionContext.sessionIssuer.arn"
        ));
        assert!(provides(
            ProfileKind::CloudTrail,
            "requestParameters.secretId"
        ));
        assert!(provides(ProfileKind::Windows, "anything.at.all"));
    }

    #[test]
    fn a_misspelt_part_finds_its_path() {
        assert_eq!(
            closest(ProfileKind::K8sAudit, "objectRef.resorce").as_deref(),
            Some("objectRef.resource")
        );
        assert_eq!(
            closest(ProfileKind::K8sAudit, "objctRef.resource").as_deref(),
            Some("objectRef.resource")
        );
        assert_eq!(
            closest(ProfileKind::CloudTrail, "eventNme").as_deref(),
            Some("eventName")
        );
        assert_eq!(
            closest(
                ProfileKind::CloudTrail,
                "userIdentity.sessionContext.sessionIssuer.arm"
            )
            .as_deref(),
            Some("userIdentity.sessionContext.sessionIssuer.arn")
        );
        assert_eq!(closest(ProfileKind::CloudTrail, "src_country"), None);
        assert_eq!(closest(ProfileKind::K8sAudit, "objectRef.resource"), None);
    }
}
