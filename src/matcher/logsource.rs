//! What a Sigma `logsource` implies on a given source profile.
//!
//! Sigma rules name a log source (`product: windows`, `category: process_creation`) instead of
//! the events' channel and id. Backends translate that; so does credtrail: a Windows rule for
//! `process_creation` runs only on Sysmon event 1, a `service: security` rule only on the
//! Security channel. The guards below are the conditions pySigma's Windows and Sysmon pipelines
//! add for the same log sources. Unknown categories add no guard (the rule's own fields decide).

use crate::decode::ProfileKind;
use crate::sigma::LogSource;

const SYSMON: &str = "Microsoft-Windows-Sysmon/Operational";
const POWERSHELL: &str = "Microsoft-Windows-PowerShell/Operational";

/// A guard: the event's `Channel` must equal `channel` (case-insensitive) and, when given, its
/// `EventID` must be one of `event_ids`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guard {
    pub channel: &'static str,
    pub event_ids: &'static [u32],
}

/// The guard a rule's log source implies on events of `profile`, if any.
pub fn guard(logsource: &LogSource, profile: ProfileKind) -> Option<Guard> {
    if profile != ProfileKind::Windows {
        return None;
    }
    if !logsource
        .product
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case("windows"))
    {
        return None;
    }
    let sysmon = |ids: &'static [u32]| {
        Some(Guard {
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
                channel: POWERSHELL,
                event_ids: &[4103],
            }),
            "ps_script" => Some(Guard {
                channel: POWERSHELL,
                event_ids: &[4104],
            }),
            "ps_classic_start" => Some(Guard {
                channel: "Windows PowerShell",
                event_ids: &[400],
            }),
            "ps_classic_provider_start" => Some(Guard {
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
    }
}
