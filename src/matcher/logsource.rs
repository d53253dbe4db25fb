//! What a Sigma `logsource` implies on a given source profile.
//!
//! Sigma rules name a log source (`product: windows`, `category: process_creation`) instead of
//! the events' channel and id. Backends translate that; so does credtrail: a Windows rule for
//! `process_creation` runs only on Sysmon event 1, a `service: security` rule only on the
//! Security channel. The guards below are the conditions pySigma's Windows and Sysmon pipelines
//! add for the same log sources. Unknown categories add no guard (the rule's own fields decide).
//!
//! Sysmon for Linux (`linux` profile) uses Sysmon's event ids too: `process_creation` is event
//! 1, `network_connection` 3, `file_event` 11, `file_delete` 23. AI-agent rules
//! (`product: ai_agent`) with `service: tool_calls` run on `event_type: tool_call` events.

use crate::decode::ProfileKind;
use crate::decode::profile::{AGENT_PRODUCT, LINUX_SYSMON_CHANNEL};
use crate::sigma::LogSource;

const SYSMON: &str = "Microsoft-Windows-Sysmon/Operational";
const POWERSHELL: &str = "Microsoft-Windows-PowerShell/Operational";

/// A guard on Windows and Linux Sysmon events: the event's `Channel` must equal `channel`
/// (case-insensitive) and, when given, its `EventID` must be one of `event_ids`. On agent
/// events: `event_type` must equal `channel`, and `event_ids` is empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guard {
    /// The field `channel` is compared with.
    pub channel_field: &'static str,
    pub channel: &'static str,
    pub event_ids: &'static [u32],
}

/// The one profile whose events a log source can imply a guard on (the product's dedicated
/// profile), if any.
pub fn guarded_profile(logsource: &LogSource) -> Option<ProfileKind> {
    let product = logsource.product.as_deref()?.to_ascii_lowercase();
    match product.as_str() {
        "windows" => Some(ProfileKind::Windows),
        "linux" => Some(ProfileKind::Linux),
        AGENT_PRODUCT => Some(ProfileKind::Agent),
        _ => None,
    }
}

/// The guard a rule's log source implies on events of `profile`, if any.
pub fn guard(logsource: &LogSource, profile: ProfileKind) -> Option<Guard> {
    if guarded_profile(logsource) != Some(profile) {
        return None;
    }
    match profile {
        ProfileKind::Windows => windows_guard(logsource),
        ProfileKind::Linux => linux_guard(logsource),
        ProfileKind::Agent => agent_guard(logsource),
        _ => None,
    }
}

/// Whether a log source is one credtrail knows how to guard on its product's profile: a
/// category or service of the tables below. Used by `rules lint` to warn about rules whose
/// log source no profile serves (they run unguarded, on every event of the product).
pub fn is_known(logsource: &LogSource, profile: ProfileKind) -> bool {
    guard(logsource, profile).is_some()
}

fn linux_guard(logsource: &LogSource) -> Option<Guard> {
    let ids: &'static [u32] = match logsource.category.as_deref()? {
        "process_creation" => &[1],
        "network_connection" => &[3],
        "process_termination" => &[5],
        "file_event" | "file_create" => &[11],
        "file_delete" => &[23],
        _ => return None,
    };
    Some(Guard {
        channel_field: "Channel",
        channel: LINUX_SYSMON_CHANNEL,
        event_ids: ids,
    })
}

fn agent_guard(logsource: &LogSource) -> Option<Guard> {
    if logsource.category.is_some() {
        return None;
    }
    match logsource.service.as_deref()? {
        "tool_calls" => Some(Guard {
            channel_field: "event_type",
            channel: "tool_call",
            event_ids: &[],
        }),
        _ => None,
    }
}

fn windows_guard(logsource: &LogSource) -> Option<Guard> {
    if !logsource
        .product
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case("windows"))
    {
        return None;
    }
    let sysmon = |ids: &'static [u32]| {
        Some(Guard {
            channel_field: "Channel",
            channel: SYSMON,
            event_ids: ids,
        })
    };
    if let Some(category) = logsource.category.as_deref() {
        return match category {
            "process_creation" => sysmon(&[1]),
            "file_change" => sysmon(&[2]),
            "network_connection" => sysmon(&[3]),
            "sysmon_status" => sysmon(&[4, 16]),
            "process_termination" => sysmon(&[5]),
            "driver_load" => sysmon(&[6]),
            "image_load" => sysmon(&[7]),
            "create_remote_thread" => sysmon(&[8]),
            "raw_access_thread" => sysmon(&[9]),
            "process_access" => sysmon(&[10]),
            "file_event" => sysmon(&[11]),
            "registry_add" | "registry_delete" => sysmon(&[12]),
            "registry_set" => sysmon(&[13]),
            "registry_rename" => sysmon(&[14]),
            "registry_event" => sysmon(&[12, 13, 14]),
            "create_stream_hash" => sysmon(&[15]),
            "pipe_created" => sysmon(&[17, 18]),
            "wmi_event" => sysmon(&[19, 20, 21]),
            "dns_query" => sysmon(&[22]),
            "file_delete" => sysmon(&[23, 26]),
            "clipboard_change" => sysmon(&[24]),
            "process_tampering" => sysmon(&[25]),
            "file_block_executable" => sysmon(&[27]),
            "file_block_shredding" => sysmon(&[28]),
            "file_executable_detected" => sysmon(&[29]),
            "sysmon_error" => sysmon(&[255]),
            "ps_module" => Some(Guard {
                channel_field: "Channel",
                channel: POWERSHELL,
                event_ids: &[4103],
            }),
            "ps_script" => Some(Guard {
                channel_field: "Channel",
                channel: POWERSHELL,
                event_ids: &[4104],
            }),
            "ps_classic_start" => Some(Guard {
                channel_field: "Channel",
                channel: "Windows PowerShell",
                event_ids: &[400],
            }),
            "ps_classic_provider_start" => Some(Guard {
                channel_field: "Channel",
                channel: "Windows PowerShell",
                event_ids: &[600],
            }),
            _ => None,
        };
    }
    let channel = match logsource.service.as_deref()? {
        "security" => "Security",
        "system" => "System",
        "application" => "Application",
        "sysmon" => SYSMON,
        "powershell" => POWERSHELL,
        "powershell-classic" => "Windows PowerShell",
        "taskscheduler" => "Microsoft-Windows-TaskScheduler/Operational",
        "wmi" => "Microsoft-Windows-WMI-Activity/Operational",
        "dns-server" => "DNS Server",
        "windefend" => "Microsoft-Windows-Windows Defender/Operational",
        "bits-client" => "Microsoft-Windows-Bits-Client/Operational",
        "firewall-as" => "Microsoft-Windows-Windows Firewall With Advanced Security/Firewall",
        "ntlm" => "Microsoft-Windows-NTLM/Operational",
        "codeintegrity-operational" => "Microsoft-Windows-CodeIntegrity/Operational",
        _ => return None,
    };
    Some(Guard {
        channel_field: "Channel",
        channel,
        event_ids: &[],
    })
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

    #[test]
    fn windows_categories_and_services_have_guards() {
        let pc = guard(
            &ls("windows", None, Some("process_creation")),
            ProfileKind::Windows,
        )
        .unwrap();
        assert_eq!(pc.event_ids, &[1]);
        let sec = guard(&ls("windows", Some("security"), None), ProfileKind::Windows).unwrap();
        assert_eq!(sec.channel, "Security");
        assert!(sec.event_ids.is_empty());
    }

    #[test]
    fn other_profiles_and_products_have_none() {
        assert_eq!(
            guard(
                &ls("windows", None, Some("process_creation")),
                ProfileKind::Ecs
            ),
            None
        );
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
            (pc.channel, pc.event_ids),
            (LINUX_SYSMON_CHANNEL, &[1u32][..])
        );
        let fe = guard(&ls("linux", None, Some("file_event")), ProfileKind::Linux).unwrap();
        assert_eq!(fe.event_ids, &[11]);
        let nc = guard(
            &ls("linux", None, Some("network_connection")),
            ProfileKind::Linux,
        )
        .unwrap();
        assert_eq!(nc.event_ids, &[3]);
        let agent = guard(
            &ls("ai_agent", Some("tool_calls"), None),
            ProfileKind::Agent,
        )
        .unwrap();
        assert_eq!(
            (agent.channel_field, agent.channel),
            ("event_type", "tool_call")
        );
        assert_eq!(
            guard(&ls("linux", Some("auditd"), None), ProfileKind::Linux),
            None
        );
    }
}
