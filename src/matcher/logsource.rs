//! What a Sigma `logsource` implies on a given source profile.
//!
//! Sigma rules name a log source (`product: windows`, `category: process_creation`) instead of
//! the events' channel and id. Backends translate that; so does credtrail: a Windows rule for
//! `process_creation` runs only on Sysmon event 1 and Security event 4688, a `service:
//! security` rule only on the Security channel. The guards below are the conditions pySigma's
//! Windows, Windows audit and Sysmon pipelines add for the same log sources, and for
//! `network_connection` the Security 5156 events Hayabusa's conversion of SigmaHQ rules uses. Unknown categories add no guard
//! (the rule's own fields decide). The same log sources in ECS are recognised by Winlogbeat's
//! `winlog.channel` / `winlog.event_id` or by `event.category` / `event.type`, in OCSF by
//! `class_uid` / `activity_id`.
//!
//! Sysmon for Linux (`linux` profile) uses Sysmon's event ids too: `process_creation` is event
//! 1, `network_connection` 3, `file_event` 11, `file_delete` 23. AI-agent rules
//! (`product: ai_agent`) with `service: tool_calls` run on `event_type: tool_call` events.

use crate::decode::ProfileKind;
use crate::decode::profile::{AGENT_PRODUCT, LINUX_SYSMON_CHANNEL};
use crate::sigma::LogSource;

const SYSMON: &str = "Microsoft-Windows-Sysmon/Operational";
const POWERSHELL: &str = "Microsoft-Windows-PowerShell/Operational";
const SECURITY: &str = "Security";

/// 4657's `OperationType` for a new value: the message id and its English rendering.
const VALUE_CREATED: &[&str] = &["%%1904", "New registry value created"];
/// 4657's `OperationType` for a changed value.
const VALUE_MODIFIED: &[&str] = &["%%1905", "Existing registry value modified"];
const VALUE_CREATED_OR_MODIFIED: &[&str] = &[
    "%%1904",
    "New registry value created",
    "%%1905",
    "Existing registry value modified",
];

/// One condition of a guard: the event's `field` equals one of `values` (case-insensitive;
/// numbers compare by their JSON spelling).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldIs {
    pub field: &'static str,
    pub values: &'static [&'static str],
}

/// The condition a log source adds on events of one profile: the event passes when every
/// condition of at least one alternative holds (`process_creation` on Windows: Sysmon
/// event 1, or Security event 4688).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guard {
    pub alternatives: Vec<Vec<FieldIs>>,
}

impl Guard {
    fn one(conditions: Vec<FieldIs>) -> Guard {
        Guard {
            alternatives: vec![conditions],
        }
    }
}

const fn is(field: &'static str, values: &'static [&'static str]) -> FieldIs {
    FieldIs { field, values }
}

/// The guard a rule's log source implies on events of `profile`, if any: on a product's
/// dedicated profile (Windows, Sysmon for Linux, agent), and on the normalised layouts that
/// carry the same events (ECS: Winlogbeat's `winlog.*` or `event.category`; OCSF: the class).
pub fn guard(logsource: &LogSource, profile: ProfileKind) -> Option<Guard> {
    let product = logsource.product.as_deref()?.to_ascii_lowercase();
    match (product.as_str(), profile) {
        ("windows", ProfileKind::Windows) => windows_guard(logsource, "Channel", "EventID"),
        ("linux", ProfileKind::Linux) => linux_guard(logsource),
        (AGENT_PRODUCT, ProfileKind::Agent) => agent_guard(logsource),
        ("windows", ProfileKind::Ecs) => {
            let mut g = windows_guard(logsource, "winlog.channel", "winlog.event_id")?;
            if let Some(category) = ecs_category(logsource) {
                g.alternatives.push(category);
            }
            Some(g)
        }
        ("linux", ProfileKind::Ecs) => ecs_category(logsource).map(Guard::one),
        ("windows" | "linux", ProfileKind::Ocsf) => ocsf_class(logsource).map(Guard::one),
        _ => None,
    }
}

/// Whether a log source is one credtrail knows how to guard on `profile`: a category or
/// service of the tables below. Used by `rules lint` to warn about rules whose log source no
/// profile serves (they run unguarded, on every event of the product).
pub fn is_known(logsource: &LogSource, profile: ProfileKind) -> bool {
    guard(logsource, profile).is_some()
}

/// A category as ECS `event.category` (and `event.type`), the way Winlogbeat, auditbeat and
/// Elastic Defend write them.
fn ecs_category(logsource: &LogSource) -> Option<Vec<FieldIs>> {
    Some(match logsource.category.as_deref()? {
        "process_creation" => vec![
            is("event.category", &["process"]),
            is("event.type", &["start"]),
        ],
        "process_termination" => vec![
            is("event.category", &["process"]),
            is("event.type", &["end"]),
        ],
        "network_connection" => vec![is("event.category", &["network"])],
        "file_event" | "file_create" => vec![
            is("event.category", &["file"]),
            is("event.type", &["creation"]),
        ],
        "file_delete" => vec![
            is("event.category", &["file"]),
            is("event.type", &["deletion"]),
        ],
        "registry_event" | "registry_set" | "registry_add" | "registry_delete" => {
            vec![is("event.category", &["registry"])]
        }
        _ => return None,
    })
}

/// A category as an OCSF class (and activity).
fn ocsf_class(logsource: &LogSource) -> Option<Vec<FieldIs>> {
    Some(match logsource.category.as_deref()? {
        "process_creation" => vec![is("class_uid", &["1007"]), is("activity_id", &["1"])],
        "process_termination" => vec![is("class_uid", &["1007"]), is("activity_id", &["2"])],
        "network_connection" => vec![is("class_uid", &["4001"])],
        "file_event" | "file_create" => vec![is("class_uid", &["1001"]), is("activity_id", &["1"])],
        "file_delete" => vec![is("class_uid", &["1001"]), is("activity_id", &["4"])],
        "dns_query" => vec![is("class_uid", &["4003"])],
        _ => return None,
    })
}

fn linux_guard(logsource: &LogSource) -> Option<Guard> {
    let ids: &'static [&'static str] = match logsource.category.as_deref()? {
        "process_creation" => &["1"],
        "network_connection" => &["3"],
        "process_termination" => &["5"],
        "file_event" | "file_create" => &["11"],
        "file_delete" => &["23"],
        _ => return None,
    };
    Some(Guard::one(vec![
        is("Channel", &[LINUX_SYSMON_CHANNEL]),
        is("EventID", ids),
    ]))
}

fn agent_guard(logsource: &LogSource) -> Option<Guard> {
    if logsource.category.is_some() {
        return None;
    }
    match logsource.service.as_deref()? {
        "tool_calls" => Some(Guard::one(vec![is("event_type", &["tool_call"])])),
        _ => None,
    }
}

/// The Windows guard, reading the channel and event id from `channel` and `event_id` (flat
/// and nested Windows events, or Winlogbeat's `winlog.*` in ECS).
fn windows_guard(
    logsource: &LogSource,
    channel: &'static str,
    event_id: &'static str,
) -> Option<Guard> {
    let on = |ch: &'static [&'static str], ids: &'static [&'static str]| {
        vec![is(channel, ch), is(event_id, ids)]
    };
    let sysmon = |ids: &'static [&'static str]| Some(Guard::one(on(&[SYSMON], ids)));
    // Sysmon, or a Security event (with more conditions) carrying the same thing.
    let or_security = |ids: &'static [&'static str], security: Vec<FieldIs>| {
        Some(Guard {
            alternatives: vec![on(&[SYSMON], ids), security],
        })
    };
    let registry_4657 = |operations: &'static [&'static str]| {
        let mut security = on(&[SECURITY], &["4657"]);
        security.push(is("OperationType", operations));
        security
    };
    if let Some(category) = logsource.category.as_deref() {
        return match category {
            // SigmaHQ's Windows pipelines: process creation is Sysmon 1 or Security 4688
            // (with 4688's field names, see `decode::fieldmap`).
            "process_creation" => Some(Guard {
                alternatives: vec![on(&[SYSMON], &["1"]), on(&[SECURITY], &["4688"])],
            }),
            "file_change" => sysmon(&["2"]),
            // A connection the Windows Filtering Platform permitted, as Hayabusa's conversion
            // of SigmaHQ rules has it (5156's names and values: `decode::fieldmap`,
            // `decode::derive`).
            "network_connection" => or_security(&["3"], on(&[SECURITY], &["5156"])),
            "sysmon_status" => sysmon(&["4", "16"]),
            "process_termination" => sysmon(&["5"]),
            "driver_load" => sysmon(&["6"]),
            "image_load" => sysmon(&["7"]),
            "create_remote_thread" => sysmon(&["8"]),
            "raw_access_thread" => sysmon(&["9"]),
            "process_access" => sysmon(&["10"]),
            "file_event" => sysmon(&["11"]),
            // Registry values set, as SigmaHQ's Windows audit pipeline has them: 4657 by its
            // operation (rendered, or the message id EVTX keeps). A key deleted or renamed
            // has no 4657.
            "registry_add" => or_security(&["12"], registry_4657(VALUE_CREATED)),
            "registry_delete" => sysmon(&["12"]),
            "registry_set" => or_security(&["13"], registry_4657(VALUE_MODIFIED)),
            "registry_rename" => sysmon(&["14"]),
            "registry_event" => or_security(
                &["12", "13", "14"],
                registry_4657(VALUE_CREATED_OR_MODIFIED),
            ),
            "create_stream_hash" => sysmon(&["15"]),
            "pipe_created" => sysmon(&["17", "18"]),
            "wmi_event" => sysmon(&["19", "20", "21"]),
            "dns_query" => sysmon(&["22"]),
            "file_delete" => sysmon(&["23", "26"]),
            "clipboard_change" => sysmon(&["24"]),
            "process_tampering" => sysmon(&["25"]),
            "file_block_executable" => sysmon(&["27"]),
            "file_block_shredding" => sysmon(&["28"]),
            "file_executable_detected" => sysmon(&["29"]),
            "sysmon_error" => sysmon(&["255"]),
            "ps_module" => Some(Guard::one(on(&[POWERSHELL], &["4103"]))),
            "ps_script" => Some(Guard::one(on(&[POWERSHELL], &["4104"]))),
            "ps_classic_start" => Some(Guard::one(on(&["Windows PowerShell"], &["400"]))),
            "ps_classic_provider_start" => Some(Guard::one(on(&["Windows PowerShell"], &["600"]))),
            _ => None,
        };
    }
    let channels: &'static [&'static str] = match logsource.service.as_deref()? {
        "security" => &[SECURITY],
        "system" => &["System"],
        "application" => &["Application"],
        "sysmon" => &[SYSMON],
        "powershell" => &[POWERSHELL],
        "powershell-classic" => &["Windows PowerShell"],
        "taskscheduler" => &["Microsoft-Windows-TaskScheduler/Operational"],
        "wmi" => &["Microsoft-Windows-WMI-Activity/Operational"],
        "dns-server" => &["DNS Server"],
        "windefend" => &["Microsoft-Windows-Windows Defender/Operational"],
        "bits-client" => &["Microsoft-Windows-Bits-Client/Operational"],
        "firewall-as" => &["Microsoft-Windows-Windows Firewall With Advanced Security/Firewall"],
        "ntlm" => &["Microsoft-Windows-NTLM/Operational"],
        "codeintegrity-operational" => &["Microsoft-Windows-CodeIntegrity/Operational"],
        // The other services SigmaHQ's Windows rules name, by the channels Windows writes them
        // to (the names pySigma's Windows pipelines use). Unguarded, such a rule ran on every
        // Windows event: an Exchange keyword rule on every Sysmon event.
        "dns-server-audit" => &["Microsoft-Windows-DNS-Server/Audit"],
        "dns-client" => &["Microsoft-Windows-DNS Client Events/Operational"],
        "dhcp" => &["Microsoft-Windows-DHCP-Server/Operational"],
        "driver-framework" => &["Microsoft-Windows-DriverFrameworks-UserMode/Operational"],
        "msexchange-management" => &["MSExchange Management"],
        "microsoft-servicebus-client" => &["Microsoft-ServiceBus-Client"],
        "applocker" => &[
            "Microsoft-Windows-AppLocker/MSI and Script",
            "Microsoft-Windows-AppLocker/EXE and DLL",
            "Microsoft-Windows-AppLocker/Packaged app-Deployment",
            "Microsoft-Windows-AppLocker/Packaged app-Execution",
        ],
        "appxdeployment-server" => &["Microsoft-Windows-AppXDeploymentServer/Operational"],
        "appxpackaging-om" => &["Microsoft-Windows-AppxPackaging/Operational"],
        "appmodel-runtime" => &["Microsoft-Windows-AppModel-Runtime/Admin"],
        "printservice-admin" => &["Microsoft-Windows-PrintService/Admin"],
        "printservice-operational" => &["Microsoft-Windows-PrintService/Operational"],
        "smbclient-security" => &["Microsoft-Windows-SmbClient/Security"],
        "smbserver-connectivity" => &["Microsoft-Windows-SmbServer/Connectivity"],
        "terminalservices-localsessionmanager" => {
            &["Microsoft-Windows-TerminalServices-LocalSessionManager/Operational"]
        }
        "security-mitigations" => &[
            "Microsoft-Windows-Security-Mitigations/Kernel Mode",
            "Microsoft-Windows-Security-Mitigations/User Mode",
        ],
        "openssh" => &["OpenSSH/Operational"],
        "shell-core" => &["Microsoft-Windows-Shell-Core/Operational"],
        "lsa-server" => &["Microsoft-Windows-LSA/Operational"],
        "iis-configuration" => &["Microsoft-IIS-Configuration/Operational"],
        "capi2" => &["Microsoft-Windows-CAPI2/Operational"],
        "certificateservicesclient-lifecycle-system" => {
            &["Microsoft-Windows-CertificateServicesClient-Lifecycle-System/Operational"]
        }
        "diagnosis-scripted" => &["Microsoft-Windows-Diagnosis-Scripted/Operational"],
        "ldap" | "ldap_debug" => &["Microsoft-Windows-LDAP-Client/Debug"],
        _ => return None,
    };
    Some(Guard::one(vec![is(channel, channels)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(product: &str, service: Option<&str>, category: Option<&str>) -> LogSource {
        LogSource {
            product: Some(product.into()),
            service: service.map(Into::into),
            category: category.map(Into::into),
        }
    }

    fn pairs(g: &Guard) -> Vec<Vec<(&'static str, Vec<&'static str>)>> {
        g.alternatives
            .iter()
            .map(|a| a.iter().map(|c| (c.field, c.values.to_vec())).collect())
            .collect()
    }

    #[test]
    fn process_creation_is_sysmon_1_or_security_4688() {
        let pc = guard(
            &ls("windows", None, Some("process_creation")),
            ProfileKind::Windows,
        )
        .unwrap();
        assert_eq!(
            pairs(&pc),
            vec![
                vec![("Channel", vec![SYSMON]), ("EventID", vec!["1"])],
                vec![("Channel", vec!["Security"]), ("EventID", vec!["4688"])],
            ]
        );
        let sec = guard(&ls("windows", Some("security"), None), ProfileKind::Windows).unwrap();
        assert_eq!(pairs(&sec), vec![vec![("Channel", vec!["Security"])]]);
    }

    #[test]
    fn network_and_registry_categories_also_take_their_security_events() {
        let net = guard(
            &ls("windows", None, Some("network_connection")),
            ProfileKind::Windows,
        )
        .unwrap();
        assert_eq!(
            pairs(&net),
            vec![
                vec![("Channel", vec![SYSMON]), ("EventID", vec!["3"])],
                vec![("Channel", vec!["Security"]), ("EventID", vec!["5156"])],
            ]
        );
        let set = guard(
            &ls("windows", None, Some("registry_set")),
            ProfileKind::Windows,
        )
        .unwrap();
        assert_eq!(
            pairs(&set)[1],
            vec![
                ("Channel", vec!["Security"]),
                ("EventID", vec!["4657"]),
                ("OperationType", VALUE_MODIFIED.to_vec()),
            ]
        );
        // A deleted key has no 4657.
        let delete = guard(
            &ls("windows", None, Some("registry_delete")),
            ProfileKind::Windows,
        )
        .unwrap();
        assert_eq!(delete.alternatives.len(), 1);
    }

    #[test]
    fn normalised_layouts_have_their_own_guards() {
        let pc = ls("windows", None, Some("process_creation"));
        let ecs = guard(&pc, ProfileKind::Ecs).unwrap();
        assert_eq!(ecs.alternatives.len(), 3);
        assert_eq!(ecs.alternatives[0][0].field, "winlog.channel");
        assert_eq!(
            pairs(&ecs)[2],
            vec![
                ("event.category", vec!["process"]),
                ("event.type", vec!["start"])
            ]
        );
        let linux = guard(
            &ls("linux", None, Some("process_creation")),
            ProfileKind::Ecs,
        )
        .unwrap();
        assert_eq!(linux.alternatives.len(), 1);
        let ocsf = guard(&pc, ProfileKind::Ocsf).unwrap();
        assert_eq!(
            pairs(&ocsf),
            vec![vec![
                ("class_uid", vec!["1007"]),
                ("activity_id", vec!["1"])
            ]]
        );
    }

    /// Every `service:` SigmaHQ's `rules/windows` names (pinned commit 8eaafff), as a channel.
    #[test]
    fn every_windows_service_sigmahq_names_has_a_channel_guard() {
        let services = [
            "security",
            "system",
            "application",
            "windefend",
            "codeintegrity-operational",
            "appxdeployment-server",
            "firewall-as",
            "msexchange-management",
            "bits-client",
            "dns-client",
            "sysmon",
            "iis-configuration",
            "taskscheduler",
            "powershell-classic",
            "ntlm",
            "wmi",
            "security-mitigations",
            "dns-server",
            "applocker",
            "terminalservices-localsessionmanager",
            "smbserver-connectivity",
            "smbclient-security",
            "shell-core",
            "openssh",
            "microsoft-servicebus-client",
            "lsa-server",
            "ldap",
            "driver-framework",
            "diagnosis-scripted",
            "certificateservicesclient-lifecycle-system",
            "capi2",
            "appxpackaging-om",
            "appmodel-runtime",
        ];
        for service in services {
            let g = guard(&ls("windows", Some(service), None), ProfileKind::Windows);
            let g = g.unwrap_or_else(|| panic!("{service} runs unguarded"));
            assert_eq!(g.alternatives[0][0].field, "Channel", "{service}");
        }
        let exchange = guard(
            &ls("windows", Some("msexchange-management"), None),
            ProfileKind::Windows,
        );
        assert_eq!(
            pairs(&exchange.unwrap()),
            vec![vec![("Channel", vec!["MSExchange Management"])]]
        );
    }

    #[test]
    fn other_profiles_and_products_have_none() {
        assert_eq!(
            guard(
                &ls("aws", Some("cloudtrail"), None),
                ProfileKind::CloudTrail
            ),
            None
        );
        assert_eq!(
            guard(
                &ls("windows", None, Some("no_such_category")),
                ProfileKind::Windows
            ),
            None
        );
        // A Windows rule implies nothing on Linux events, and the reverse.
        assert_eq!(
            guard(
                &ls("windows", None, Some("process_creation")),
                ProfileKind::Linux
            ),
            None
        );
        assert_eq!(
            guard(
                &ls("linux", None, Some("process_creation")),
                ProfileKind::Windows
            ),
            None
        );
    }

    #[test]
    fn linux_sysmon_categories_and_agent_tool_calls_have_guards() {
        let pc = guard(
            &ls("linux", None, Some("process_creation")),
            ProfileKind::Linux,
        )
        .unwrap();
        assert_eq!(
            pairs(&pc),
            vec![vec![
                ("Channel", vec![LINUX_SYSMON_CHANNEL]),
                ("EventID", vec!["1"])
            ]]
        );
        let fe = guard(&ls("linux", None, Some("file_event")), ProfileKind::Linux).unwrap();
        assert_eq!(fe.alternatives[0][1].values, &["11"]);
        let agent = guard(
            &ls("ai_agent", Some("tool_calls"), None),
            ProfileKind::Agent,
        )
        .unwrap();
        assert_eq!(pairs(&agent), vec![vec![("event_type", vec!["tool_call"])]]);
        assert_eq!(
            guard(&ls("linux", Some("auditd"), None), ProfileKind::Linux),
            None
        );
    }
}
