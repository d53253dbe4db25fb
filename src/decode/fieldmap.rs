//! Built-in field maps: where each source profile keeps the fields Sigma rules name with their
//! canonical (Sysmon / CloudTrail) spelling.
//!
//! SigmaHQ rules say `Image`, `CommandLine`, `User`, `eventName`. A Security 4688 event says
//! `NewProcessName`, a Winlogbeat or auditbeat event `process.executable`, an OCSF event
//! `process.file.path`. pySigma converts a rule once per backend with a pipeline; credtrail
//! decodes each event by its own profile, so each profile carries the map for its layout and a
//! stream that mixes layouts needs no pipeline at all. The map only adds places to look: the
//! canonical spelling is always tried too, and a rule already renamed by a pipeline
//! (`process.executable`) finds its field as written.
//!
//! The maps below are written from the public field references (Microsoft's Security audit
//! event schemas, Elastic Common Schema, the OCSF schema), the same sources pySigma's Windows,
//! ECS and OCSF pipelines are built from.

use super::profile::ProfileKind;

/// Canonical Windows names and the names Security audit events use for the same thing: 4688
/// (process creation), 5156 (a connection the Windows Filtering Platform permitted) and 4657
/// (a registry value set), the events SigmaHQ's Windows audit pipeline and Hayabusa's
/// conversion serve `process_creation`, `network_connection` and `registry_*` rules from.
///
/// Only names that mean one thing in every Windows event are mapped: `NewProcessId`
/// (4688) is not mapped to `ProcessId`, because 4688's own `ProcessId` is the parent's, and
/// mapping it would make Sysmon's `ProcessId` ambiguous; 5156's `ProcessID` is not mapped
/// either, because the nested layout's `System.Execution.ProcessID` (the logging process)
/// has the same name. `MandatoryLabel` is not `IntegrityLevel` (a SID, not a word). 4688 has
/// no joined `DOMAIN\name`: `User` finds both `SubjectUserName` and `SubjectDomainName`, so
/// `User|contains: 'AUTHORI'` and `User|endswith: 'admin'` work, `User: 'CONTOSO\admin'`
/// does not.
///
/// Where the value is spelled differently too (5156's `Direction` for `Initiated`, its
/// protocol numbers, its device paths; 4657's `ObjectName` for `TargetObject`), the value is
/// rewritten by [`derive`](super::derive) instead.
pub const WINDOWS_SECURITY: &[(&str, &[&str])] = &[
    // 4688 names the new process; 4657 the process that set the value; 5156 the program by
    // its device path (a `C:` spelling is derived).
    ("Image", &["NewProcessName", "ProcessName", "Application"]),
    ("ParentImage", &["ParentProcessName"]),
    ("User", &["SubjectUserName", "SubjectDomainName"]),
    ("LogonId", &["SubjectLogonId"]),
    ("SourceIp", &["SourceAddress"]),
    ("DestinationIp", &["DestAddress"]),
    ("DestinationPort", &["DestPort"]),
    ("Details", &["NewValue"]),
];

/// The Windows event header fields, as Winlogbeat writes them in ECS.
const ECS_WINDOWS_SYSTEM: &[(&str, &[&str])] = &[
    ("EventID", &["winlog.event_id"]),
    ("Channel", &["winlog.channel"]),
    ("Provider_Name", &["winlog.provider_name"]),
    ("Computer", &["winlog.computer_name", "host.name"]),
    ("EventRecordID", &["winlog.record_id"]),
];

/// Canonical names to ECS fields (process, network, file, registry, DNS, PowerShell,
/// authentication and CloudTrail as Elastic's AWS integration writes it).
const ECS: &[(&str, &[&str])] = &[
    ("Image", &["process.executable"]),
    // auditbeat writes the command line as `process.title` (from the audit PROCTITLE record);
    // Winlogbeat and Elastic Defend as `process.command_line`.
    ("CommandLine", &["process.command_line", "process.title"]),
    ("CurrentDirectory", &["process.working_directory"]),
    ("ProcessId", &["process.pid"]),
    ("ProcessGuid", &["process.entity_id"]),
    ("OriginalFileName", &["process.pe.original_file_name"]),
    ("Company", &["process.pe.company"]),
    ("Description", &["process.pe.description"]),
    ("Product", &["process.pe.product"]),
    ("FileVersion", &["process.pe.file_version"]),
    ("ParentImage", &["process.parent.executable"]),
    ("ParentCommandLine", &["process.parent.command_line"]),
    ("ParentProcessId", &["process.parent.pid"]),
    ("ParentProcessGuid", &["process.parent.entity_id"]),
    ("User", &["user.name"]),
    ("DestinationIp", &["destination.ip"]),
    ("DestinationPort", &["destination.port"]),
    ("DestinationHostname", &["destination.domain"]),
    ("SourceIp", &["source.ip"]),
    ("SourcePort", &["source.port"]),
    ("SourceHostname", &["source.domain"]),
    ("Protocol", &["network.transport"]),
    ("TargetFilename", &["file.path"]),
    ("ImageLoaded", &["file.path"]),
    ("QueryName", &["dns.question.name"]),
    ("TargetObject", &["registry.path"]),
    ("Details", &["registry.data.strings"]),
    ("ScriptBlockText", &["powershell.file.script_block_text"]),
    ("IpAddress", &["source.ip"]),
    ("eventName", &["event.action"]),
    ("eventSource", &["event.provider"]),
    ("sourceIPAddress", &["source.address", "source.ip"]),
    ("userAgent", &["user_agent.original"]),
    ("awsRegion", &["cloud.region"]),
    ("errorCode", &["aws.cloudtrail.error_code"]),
    ("userIdentity.arn", &["aws.cloudtrail.user_identity.arn"]),
    ("userIdentity.type", &["aws.cloudtrail.user_identity.type"]),
];

/// Canonical names to OCSF attributes (Process Activity 1007, Network Activity 4001, File
/// System Activity 1001, DNS Activity 4003, Authentication 3002, API Activity 6003).
const OCSF: &[(&str, &[&str])] = &[
    ("Image", &["process.file.path"]),
    ("CommandLine", &["process.cmd_line"]),
    ("CurrentDirectory", &["process.working_directory"]),
    ("ProcessId", &["process.pid"]),
    ("ParentImage", &["process.parent_process.file.path"]),
    ("ParentCommandLine", &["process.parent_process.cmd_line"]),
    ("ParentProcessId", &["process.parent_process.pid"]),
    ("User", &["actor.user.name", "process.user.name"]),
    ("DestinationIp", &["dst_endpoint.ip"]),
    ("DestinationPort", &["dst_endpoint.port"]),
    ("DestinationHostname", &["dst_endpoint.hostname"]),
    ("SourceIp", &["src_endpoint.ip"]),
    ("SourcePort", &["src_endpoint.port"]),
    ("TargetFilename", &["file.path"]),
    ("QueryName", &["query.hostname"]),
    ("TargetUserName", &["user.name"]),
    ("IpAddress", &["src_endpoint.ip"]),
    ("eventName", &["api.operation"]),
    ("eventSource", &["api.service.name"]),
    ("sourceIPAddress", &["src_endpoint.ip"]),
    ("userAgent", &["http_request.user_agent"]),
    ("awsRegion", &["cloud.region"]),
    ("errorCode", &["api.response.error"]),
    ("userIdentity.arn", &["actor.user.uid"]),
    ("userIdentity.type", &["actor.user.type"]),
];

fn lookup(
    table: &'static [(&'static str, &'static [&'static str])],
    field: &str,
) -> &'static [&'static str] {
    table
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, to)| *to)
        .unwrap_or(&[])
}

/// The other names (dotted paths) under which events of `kind` carry the Sigma field `field`,
/// besides `field` itself, most likely first.
pub fn aliases(kind: ProfileKind, field: &str) -> Vec<String> {
    match kind {
        ProfileKind::Windows => lookup(WINDOWS_SECURITY, field)
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ProfileKind::Ecs => {
            let mut out: Vec<String> = lookup(ECS_WINDOWS_SYSTEM, field)
                .iter()
                .chain(lookup(ECS, field))
                .map(|s| s.to_string())
                .collect();
            if let Some(name) = field.strip_prefix("winlog.event_data.") {
                // A rule renamed by a Winlogbeat pipeline still finds 4688's own names.
                out.extend(
                    lookup(WINDOWS_SECURITY, name)
                        .iter()
                        .map(|s| format!("winlog.event_data.{s}")),
                );
            } else if is_windows_event_data_name(field)
                && lookup(ECS_WINDOWS_SYSTEM, field).is_empty()
            {
                // Winlogbeat keeps every EventData value under `winlog.event_data`.
                out.push(format!("winlog.event_data.{field}"));
                out.extend(
                    lookup(WINDOWS_SECURITY, field)
                        .iter()
                        .map(|s| format!("winlog.event_data.{s}")),
                );
            }
            let mut seen = std::collections::HashSet::new();
            out.retain(|p| seen.insert(p.clone()));
            out
        }
        ProfileKind::Ocsf => lookup(OCSF, field).iter().map(|s| s.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// Whether `field` is spelled like a Windows EventData name (`CommandLine`, `TargetUserName`):
/// one word starting with a capital letter.
fn is_windows_event_data_name(field: &str) -> bool {
    !field.contains('.') && field.starts_with(|c: char| c.is_ascii_uppercase())
}

/// Whether the profile's map gives `field` places of its own, so a profile reading the field
/// for itself (identity, time) must read it where it is written only.
pub fn is_mapped(kind: ProfileKind, field: &str) -> bool {
    !aliases(kind, field).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_layout_maps_canonical_names_to_its_own() {
        assert_eq!(
            aliases(ProfileKind::Windows, "Image"),
            vec!["NewProcessName", "ProcessName", "Application"]
        );
        assert_eq!(
            aliases(ProfileKind::Ecs, "Image"),
            vec![
                "process.executable",
                "winlog.event_data.Image",
                "winlog.event_data.NewProcessName",
                "winlog.event_data.ProcessName",
                "winlog.event_data.Application"
            ]
        );
        assert_eq!(
            aliases(ProfileKind::Ocsf, "Image"),
            vec!["process.file.path"]
        );
        assert_eq!(
            aliases(ProfileKind::Ecs, "TargetUserName"),
            vec!["winlog.event_data.TargetUserName"]
        );
        assert_eq!(
            aliases(ProfileKind::Ecs, "EventID"),
            vec!["winlog.event_id"]
        );
        assert_eq!(
            aliases(ProfileKind::Ecs, "winlog.event_data.ParentImage"),
            vec!["winlog.event_data.ParentProcessName"]
        );
        assert!(aliases(ProfileKind::CloudTrail, "Image").is_empty());
        assert!(aliases(ProfileKind::Ecs, "user.name").is_empty());
    }
}
