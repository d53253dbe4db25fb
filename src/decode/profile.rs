//! Source profiles: for each kind of security log, where the event time, the event id and the
//! acting identity are, where Sigma's field names live in its JSON, and how to recognise it.
//!
//! | profile      | recognised by                                   | time                         |
//! |--------------|-------------------------------------------------|------------------------------|
//! | `cloudtrail` | `eventSource` + `eventName`                     | `eventTime`, else `@timestamp` (Logstash) |
//! | `linux`      | `Channel` = `Linux-Sysmon/Operational` (Sysmon for Linux, flat) | `UtcTime`, else `@timestamp` |
//! | `windows`    | `EventID` + `Channel`/`SourceName`/`ProviderGuid` (flat), or `Event.System` (nested) | `UtcTime`, `TimeCreated`, `@timestamp` |
//! | `k8s_audit`  | `auditID` + `verb`                              | `requestReceivedTimestamp`   |
//! | `ocsf`       | `class_uid` + `metadata`                        | `time` (epoch ms)            |
//! | `agent`      | an `agent` object + a `tool` object (AI-agent tool calls) | `timestamp`        |
//! | `ecs`        | `@timestamp` + an `ecs` or `event` object       | `@timestamp`                 |
//! | `generic`    | never auto-detected; paths from configuration   | configured                   |

use serde::Deserialize;

use super::credential::CredentialSpec;
use super::detail::{DetailField, DetailKind, detail_fields};
use super::fields::{FieldTable, PathTrie, Slot, Step, split_path};
use super::principal::{PrincipalForm, SsoGrouping};
use super::touch::{TouchField, TouchKind, touch_fields};

pub use super::recognise::detect;

/// The built-in kinds of source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProfileKind {
    CloudTrail,
    Windows,
    K8sAudit,
    Ocsf,
    Ecs,
    Generic,
    /// Sysmon for Linux, flat JSON lines.
    Linux,
    /// AI-agent tool-call audit events (credtrail's documented format).
    Agent,
}

/// The `Channel` of Sysmon for Linux events.
pub const LINUX_SYSMON_CHANNEL: &str = "Linux-Sysmon/Operational";

impl ProfileKind {
    pub const ALL: [ProfileKind; 8] = [
        ProfileKind::CloudTrail,
        ProfileKind::Windows,
        ProfileKind::K8sAudit,
        ProfileKind::Ocsf,
        ProfileKind::Ecs,
        ProfileKind::Generic,
        ProfileKind::Linux,
        ProfileKind::Agent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProfileKind::CloudTrail => "cloudtrail",
            ProfileKind::Windows => "windows",
            ProfileKind::K8sAudit => "k8s_audit",
            ProfileKind::Ocsf => "ocsf",
            ProfileKind::Ecs => "ecs",
            ProfileKind::Generic => "generic",
            ProfileKind::Linux => "linux",
            ProfileKind::Agent => "agent",
        }
    }

    pub fn from_name(name: &str) -> Option<ProfileKind> {
        ProfileKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether a Sigma rule with this `logsource.product` can match events of this profile.
    /// Normalised formats (ECS, OCSF, generic) can carry any product, so they accept all;
    /// a rule without a product matches everywhere.
    pub fn serves_product(self, product: Option<&str>) -> bool {
        let Some(product) = product else { return true };
        let product = product.to_ascii_lowercase();
        match self {
            ProfileKind::CloudTrail => product == "aws",
            ProfileKind::Windows => product == "windows",
            ProfileKind::K8sAudit => product == "kubernetes" || product == "k8s",
            ProfileKind::Linux => product == "linux",
            ProfileKind::Agent => product == AGENT_PRODUCT,
            ProfileKind::Ocsf | ProfileKind::Ecs | ProfileKind::Generic => true,
        }
    }

    /// The products a profile is dedicated to: a rule for any other known product never runs
    /// on it. Used to warn about rules that can never match.
    pub fn is_known_product(product: &str) -> bool {
        matches!(
            product.to_ascii_lowercase().as_str(),
            "aws" | "windows" | "kubernetes" | "k8s" | "linux" | AGENT_PRODUCT
        )
    }
}

/// The Sigma `logsource.product` of AI-agent tool-call rules.
pub const AGENT_PRODUCT: &str = "ai_agent";

/// How to build one identity: the listed fields' first values joined by `separator`; the
/// template applies only when every field is present and non-empty.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityTemplate {
    pub fields: Vec<String>,
    #[serde(default)]
    pub separator: String,
}

impl IdentityTemplate {
    fn one(field: &str) -> IdentityTemplate {
        IdentityTemplate {
            fields: vec![field.to_string()],
            separator: String::new(),
        }
    }

    fn joined(fields: &[&str], separator: &str) -> IdentityTemplate {
        IdentityTemplate {
            fields: fields.iter().map(|f| f.to_string()).collect(),
            separator: separator.to_string(),
        }
    }
}

/// What a profile says about its events, in Sigma-level field names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileSpec {
    pub kind: ProfileKind,
    /// Candidate time fields, first present wins.
    pub time_fields: Vec<String>,
    /// Fields joined by `/` into the event id; empty means the id is a hash of the raw bytes.
    pub id_fields: Vec<String>,
    /// Identity templates in priority order.
    pub identity: Vec<IdentityTemplate>,
    /// How an identity the templates built is spelled canonically (see [`principal`]).
    ///
    /// [`principal`]: super::principal
    pub principal: PrincipalForm,
    /// The credential an event used (an access key id; a Linux login), for lineage.
    pub credential: Option<CredentialSpec>,
    /// The field naming the session (an assumed-role session ARN), for lineage.
    pub session_field: Option<String>,
    /// Whether events of this profile can mint credentials (CloudTrail's STS and IAM calls).
    pub mints_credentials: bool,
    /// Fields naming what an event touched, for the blast radius.
    pub touches: Vec<TouchField>,
    /// Fields an evidence shows (caller, call, source, host, process, resources).
    pub details: Vec<DetailField>,
}

/// Paths of the `generic` profile, from configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericPaths {
    pub time: Vec<String>,
    #[serde(default)]
    pub id: Vec<String>,
    #[serde(default)]
    pub identity: Vec<IdentityTemplate>,
}

impl ProfileSpec {
    /// The built-in spec of `kind`; `generic` takes its paths from `generic`.
    pub fn builtin(kind: ProfileKind, generic: &GenericPaths) -> ProfileSpec {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        match kind {
            ProfileKind::CloudTrail => ProfileSpec {
                kind,
                time_fields: s(&["eventTime", "@timestamp"]),
                id_fields: s(&["eventID"]),
                identity: vec![
                    // Session credentials act for the role behind the session.
                    IdentityTemplate::one("userIdentity.sessionContext.sessionIssuer.arn"),
                    IdentityTemplate::one("userIdentity.arn"),
                    IdentityTemplate::one("userIdentity.accessKeyId"),
                    IdentityTemplate::one("userIdentity.principalId"),
                    IdentityTemplate::one("userIdentity.invokedBy"),
                ],
                principal: PrincipalForm::Aws {
                    sso: SsoGrouping::Role,
                },
                credential: Some(CredentialSpec::cloudtrail()),
                session_field: Some("userIdentity.arn".into()),
                mints_credentials: true,
                touches: touch_fields(kind),
                details: detail_fields(kind),
            },
            ProfileKind::Windows => ProfileSpec {
                kind,
                // The event's own clock first: Sysmon's `UtcTime` (when the process started,
                // the file was written, ...), then the record's `TimeCreated`; a shipper's
                // `@timestamp` is when it read the event, often one value for a whole batch.
                time_fields: s(&["UtcTime", "TimeCreated", "@timestamp"]),
                id_fields: s(&["Computer", "Channel", "EventRecordID"]),
                identity: vec![
                    // Sysmon writes DOMAIN\name in one field.
                    IdentityTemplate::one("User"),
                    IdentityTemplate::joined(&["SubjectDomainName", "SubjectUserName"], "\\"),
                    // nxlog-shipped PowerShell events.
                    IdentityTemplate::joined(&["Domain", "AccountName"], "\\"),
                    IdentityTemplate::joined(&["TargetDomainName", "TargetUserName"], "\\"),
                ],
                principal: PrincipalForm::WindowsAccount,
                credential: None,
                session_field: None,
                mints_credentials: false,
                touches: touch_fields(kind),
                details: detail_fields(kind),
            },
            ProfileKind::K8sAudit => ProfileSpec {
                kind,
                time_fields: s(&["requestReceivedTimestamp", "stageTimestamp"]),
                id_fields: s(&["auditID"]),
                identity: vec![IdentityTemplate::one("user.username")],
                principal: PrincipalForm::AsWritten,
                credential: None,
                session_field: None,
                mints_credentials: false,
                touches: touch_fields(kind),
                details: detail_fields(kind),
            },
            ProfileKind::Ocsf => ProfileSpec {
                kind,
                time_fields: s(&["time"]),
                id_fields: s(&["metadata.uid"]),
                identity: vec![
                    IdentityTemplate::one("actor.user.uid"),
                    IdentityTemplate::one("actor.user.name"),
                ],
                principal: PrincipalForm::AsWritten,
                credential: None,
                session_field: None,
                mints_credentials: false,
                touches: touch_fields(kind),
                details: detail_fields(kind),
            },
            ProfileKind::Ecs => ProfileSpec {
                kind,
                time_fields: s(&["@timestamp"]),
                id_fields: s(&["event.id"]),
                identity: vec![
                    // auditbeat's login user (auid): who logged in, also under sudo and su,
                    // where `user.name` is root.
                    IdentityTemplate::one("user.audit.name"),
                    IdentityTemplate::joined(&["user.domain", "user.name"], "\\"),
                    IdentityTemplate::one("user.name"),
                    IdentityTemplate::one("user.audit.id"),
                    IdentityTemplate::one("user.id"),
                ],
                principal: PrincipalForm::QualifiedWindowsAccount,
                credential: None,
                session_field: None,
                mints_credentials: false,
                touches: touch_fields(kind),
                details: detail_fields(kind),
            },
            ProfileKind::Linux => ProfileSpec {
                kind,
                time_fields: s(&["UtcTime", "@timestamp"]),
                id_fields: s(&["Hostname", "RecordNumber"]),
                // auditd's login user survives sudo and su: its name (`AUID`, auditd's enriched
                // format) comes first, and the numeric login uid comes before the uid.
                identity: vec![
                    IdentityTemplate::one("AUID"),
                    IdentityTemplate::one("User"),
                    IdentityTemplate::one("auid"),
                    IdentityTemplate::one("uid"),
                ],
                principal: PrincipalForm::AsWritten,
                credential: Some(CredentialSpec::linux_login()),
                session_field: None,
                mints_credentials: false,
                touches: touch_fields(kind),
                details: detail_fields(kind),
            },
            ProfileKind::Agent => ProfileSpec {
                kind,
                time_fields: s(&["timestamp"]),
                id_fields: s(&["event_id"]),
                identity: vec![IdentityTemplate::one("agent.id")],
                principal: PrincipalForm::AsWritten,
                credential: None,
                session_field: None,
                mints_credentials: false,
                touches: touch_fields(kind),
                details: detail_fields(kind),
            },
            ProfileKind::Generic => ProfileSpec {
                kind,
                time_fields: generic.time.clone(),
                id_fields: generic.id.clone(),
                identity: generic.identity.clone(),
                principal: PrincipalForm::AsWritten,
                credential: None,
                session_field: None,
                mints_credentials: false,
                touches: touch_fields(kind),
                details: detail_fields(kind),
            },
        }
    }

    /// The JSON paths where this profile finds the Sigma field `field`, most likely first: the
    /// field as written, then the places the profile's built-in field map gives it (see
    /// [`fieldmap`](super::fieldmap)). A name marked by [`own_field`] is the profile's own read
    /// of the field and gets the written places only.
    pub fn paths(&self, field: &str) -> Vec<Vec<Step>> {
        if let Some(own) = field.strip_prefix(OWN_FIELD_MARK) {
            return self.written_paths(own);
        }
        let mut paths = self.written_paths(field);
        for alias in super::fieldmap::aliases(self.kind, field) {
            for p in self.written_paths(&alias) {
                if !paths.contains(&p) {
                    paths.push(p);
                }
            }
        }
        paths
    }

    /// The paths of `field` as written: dotted into steps, and on Windows in the flat and
    /// nested spellings of every shipper.
    fn written_paths(&self, field: &str) -> Vec<Vec<Step>> {
        let mut paths = vec![split_path(field)];
        if self.kind == ProfileKind::Windows && !field.contains('.') {
            let key = |k: &str| Step::Key(k.into());
            // Flat spellings of the same thing by other shippers (nxlog in the OTRF data).
            let flat_alias: &[&str] = match field {
                "Computer" => &["Hostname"],
                "EventRecordID" => &["RecordNumber"],
                "Provider_Name" => &["SourceName", "ProviderName"],
                _ => &[],
            };
            paths.extend(flat_alias.iter().map(|a| vec![key(a)]));
            // The nested layout EVTX converters write.
            let system: Option<Vec<&str>> = match field {
                "EventID" => Some(vec!["EventID", "#text"]),
                "Provider_Name" => Some(vec!["Provider", "#attributes", "Name"]),
                "TimeCreated" => Some(vec!["TimeCreated", "#attributes", "SystemTime"]),
                "ProcessID" | "ThreadID" => Some(vec!["Execution", "#attributes", field]),
                "UserID" => Some(vec!["Security", "#attributes", "UserID"]),
                _ => None,
            };
            if let Some(system) = system {
                let mut p = vec![key("Event"), key("System")];
                p.extend(system.into_iter().map(key));
                paths.push(p);
            }
            paths.push(vec![key("Event"), key("System"), key(field)]);
            paths.push(vec![key("Event"), key("EventData"), key(field)]);
            paths.push(vec![
                key("Event"),
                key("UserData"),
                Step::AnyKey,
                key(field),
            ]);
        }
        paths
    }

    /// Every field name the profile itself needs.
    pub fn own_fields(&self) -> impl Iterator<Item = &str> {
        self.time_fields
            .iter()
            .chain(self.id_fields.iter())
            .chain(self.identity.iter().flat_map(|t| t.fields.iter()))
            .map(String::as_str)
            .chain(self.credential.iter().flat_map(|c| c.fields()))
            .chain(self.session_field.as_deref())
            .chain(
                matches!(self.principal, PrincipalForm::Aws { .. })
                    .then_some(super::principal::AWS_ON_BEHALF_OF),
            )
            .chain(
                if self.mints_credentials {
                    &MINT_FIELDS[..]
                } else {
                    &[]
                }
                .iter()
                .copied(),
            )
            .chain(self.touches.iter().flat_map(|t| {
                std::iter::once(t.field.as_str()).chain(t.when.as_ref().map(|w| w.0.as_str()))
            }))
            .chain(self.details.iter().flat_map(|t| {
                std::iter::once(t.field.as_str()).chain(t.when.as_ref().map(|w| w.0.as_str()))
            }))
    }
}

/// Marks a field name the profile reads for itself (see [`own_field`]). No Sigma field name
/// contains a control character.
const OWN_FIELD_MARK: char = '\u{1}';

/// The name under which a profile interns a field it reads for itself (time, id, identity,
/// touches): the field as written when the profile's field map also gives it other places
/// (Windows reads `User` for the identity, where 4688's `SubjectUserName` must not answer),
/// else the plain name, shared with the rules.
pub fn own_field(kind: ProfileKind, field: &str) -> String {
    if super::fieldmap::is_mapped(kind, field) {
        format!("{OWN_FIELD_MARK}{field}")
    } else {
        field.to_string()
    }
}

/// A profile ready for decoding: its spec with fields resolved to slots and its path trie.
#[derive(Clone, Debug)]
pub struct CompiledProfile {
    pub spec: ProfileSpec,
    pub trie: PathTrie,
    pub time_slots: Vec<Slot>,
    pub id_slots: Vec<Slot>,
    pub identity: Vec<(Vec<Slot>, String)>,
    /// The credential template's slots and separator, and the owner fields' slots.
    pub credential: Option<CompiledCredential>,
    pub session_slot: Option<Slot>,
    /// [`AWS_ON_BEHALF_OF`](super::principal::AWS_ON_BEHALF_OF), for AWS principals.
    pub on_behalf_of_slot: Option<Slot>,
    /// Slots of [`MINT_FIELDS`], in order, when the profile mints credentials.
    pub mint_slots: Option<[Slot; 7]>,
    /// (kind, field slot, optional (other slot, required value)).
    pub touch_slots: Vec<TouchSlot>,
    /// The evidence fields resolved, in the spec's order.
    pub detail_slots: Vec<DetailSlot>,
    /// Values made from other fields (see [`derive`](super::derive)).
    pub derived: Vec<super::derive::CompiledDerivation>,
}

/// A [`CredentialSpec`] resolved to slots.
#[derive(Clone, Debug)]
pub struct CompiledCredential {
    pub slots: Vec<Slot>,
    pub separator: String,
    pub owner_templates: usize,
    pub owner_when_equal: Option<(Slot, Slot)>,
}

/// An evidence field resolved: (kind, field slot, optional (other slot, required value)).
pub type DetailSlot = (DetailKind, Slot, Option<(Slot, String)>);

/// A touch field resolved: (kind, field slot, optional (other slot, required value)).
pub type TouchSlot = (TouchKind, Slot, Option<(Slot, String)>);

/// CloudTrail fields that say which credential an event minted: the event name, its error
/// code (a failed call mints nothing), the caller's type (an AWS service minting instance or
/// function credentials is not a person to follow), the new access key or session ARN in the response, and
/// the requested session duration.
pub const MINT_FIELDS: [&str; 7] = [
    "eventName",
    "userIdentity.type",
    "errorCode",
    "responseElements.credentials.accessKeyId",
    "responseElements.assumedRoleUser.arn",
    "responseElements.accessKey.accessKeyId",
    "requestParameters.durationSeconds",
];

impl CompiledProfile {
    /// Interns the profile's own fields into `fields`; call [`CompiledProfile::build_trie`] once
    /// every rule has interned its fields too.
    pub fn new(spec: ProfileSpec, fields: &mut FieldTable) -> CompiledProfile {
        let kind = spec.kind;
        let mut fields = OwnFields { kind, fields };
        let fields = &mut fields;
        let time_slots = spec.time_fields.iter().map(|f| fields.intern(f)).collect();
        let id_slots = spec.id_fields.iter().map(|f| fields.intern(f)).collect();
        let identity = spec
            .identity
            .iter()
            .map(|t| {
                (
                    t.fields.iter().map(|f| fields.intern(f)).collect(),
                    t.separator.clone(),
                )
            })
            .collect();
        let credential = spec.credential.as_ref().map(|c| CompiledCredential {
            slots: c.template.fields.iter().map(|f| fields.intern(f)).collect(),
            separator: c.template.separator.clone(),
            owner_templates: c.owner_templates,
            owner_when_equal: c
                .owner_when_equal
                .as_ref()
                .map(|(a, b)| (fields.intern(a), fields.intern(b))),
        });
        let session_slot = spec.session_field.as_deref().map(|f| fields.intern(f));
        let on_behalf_of_slot = matches!(spec.principal, PrincipalForm::Aws { .. })
            .then(|| fields.intern(super::principal::AWS_ON_BEHALF_OF));
        let mint_slots = spec
            .mints_credentials
            .then(|| MINT_FIELDS.map(|f| fields.intern(f)));
        let touch_slots = spec
            .touches
            .iter()
            .map(|t| {
                (
                    t.kind,
                    fields.intern(&t.field),
                    t.when.as_ref().map(|(f, v)| (fields.intern(f), v.clone())),
                )
            })
            .collect();
        let detail_slots = spec
            .details
            .iter()
            .map(|t| {
                (
                    t.kind,
                    fields.intern(&t.field),
                    t.when.as_ref().map(|(f, v)| (fields.intern(f), v.clone())),
                )
            })
            .collect();
        let derived = super::derive::compile(kind, fields.fields);
        CompiledProfile {
            spec,
            derived,
            detail_slots,
            trie: PathTrie::default(),
            time_slots,
            id_slots,
            identity,
            credential,
            session_slot,
            on_behalf_of_slot,
            mint_slots,
            touch_slots,
        }
    }

    /// Builds the trie over every slot of `fields`.
    pub fn build_trie(&mut self, fields: &FieldTable) {
        let mut trie = PathTrie::default();
        for (slot, name) in fields.iter() {
            for path in self.spec.paths(name) {
                trie.insert(&path, slot);
            }
        }
        // Windows EventData names are one word in rules; some providers write them with spaces.
        trie.fold_spaces(self.spec.kind == ProfileKind::Windows);
        self.trie = trie;
    }
}

/// Interns a profile's own fields under [`own_field`] names.
struct OwnFields<'a> {
    kind: ProfileKind,
    fields: &'a mut FieldTable,
}

impl OwnFields<'_> {
    fn intern(&mut self, field: &str) -> Slot {
        self.fields.intern(&own_field(self.kind, field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_fields_have_flat_and_nested_paths() {
        let spec = ProfileSpec::builtin(ProfileKind::Windows, &GenericPaths::default());
        let paths = spec.paths("EventID");
        let key = |k: &str| Step::Key(k.into());
        assert!(paths.contains(&vec![key("EventID")]));
        assert!(paths.contains(&vec![key("Event"), key("System"), key("EventID")]));
        assert!(paths.contains(&vec![
            key("Event"),
            key("System"),
            key("EventID"),
            key("#text")
        ]));
        let cmd = spec.paths("CommandLine");
        assert!(cmd.contains(&vec![key("Event"), key("EventData"), key("CommandLine")]));
    }

    #[test]
    fn products_select_profiles() {
        assert!(ProfileKind::CloudTrail.serves_product(Some("aws")));
        assert!(!ProfileKind::CloudTrail.serves_product(Some("windows")));
        assert!(ProfileKind::Windows.serves_product(Some("Windows")));
        assert!(ProfileKind::Ecs.serves_product(Some("windows")));
        assert!(ProfileKind::Windows.serves_product(None));
    }
}
