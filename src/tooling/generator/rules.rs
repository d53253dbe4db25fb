//! The W500 rule set, generated deterministically: 16 stage rules feeding 10 correlations
//! (`temporal_ordered`, `temporal`, `event_count`, `value_count`) and as many noise detections
//! as asked, modelled on public Sigma rules (rare API calls, attack-tool user agents, source
//! ranges, living-off-the-land binaries with arguments, Office spawning shells, encoded
//! PowerShell, regular expressions and mid-string wildcards). With 100 rules: 90 detections
//! and 10 correlations.
//!
//! Correlations group by event fields (`userIdentity.arn`, `User`), not `credtrail.identity`,
//! so other Sigma engines run the same files.

use super::rng::Rng;
use super::w500::{LOLBINS, RARE_APIS};

/// One rule file: its name and YAML text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleFile {
    pub name: String,
    pub text: String,
}

/// Rules that are not noise: stage detections plus correlations.
pub const CORE_RULES: usize = 26;

/// The W500 rule set with `count` rules in all (at least [`CORE_RULES`] for the correlations;
/// fewer gives noise rules only), the same for the same `count` and `seed`.
pub fn generate(count: usize, seed: u64) -> Vec<RuleFile> {
    let mut rng = Rng::new(seed ^ 0x5717_5500);
    let mut files = Vec::new();
    let noise = if count >= CORE_RULES {
        files.push(RuleFile {
            name: "w500_stages.yml".into(),
            text: stages(&mut rng),
        });
        files.push(RuleFile {
            name: "w500_correlations.yml".into(),
            text: correlations(&mut rng),
        });
        count - CORE_RULES
    } else {
        count
    };
    let mut text = String::new();
    for i in 0..noise {
        if i > 0 {
            text.push_str("---\n");
        }
        text.push_str(&noise_rule(&mut rng, i));
    }
    if noise > 0 {
        files.push(RuleFile {
            name: "w500_noise.yml".into(),
            text,
        });
    }
    files
}

/// Writes the rule set into `dir` (created if needed).
pub fn write(dir: &std::path::Path, count: usize, seed: u64) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let files = generate(count, seed);
    for f in &files {
        std::fs::write(dir.join(&f.name), &f.text)?;
    }
    Ok(files.len())
}

fn header(rng: &mut Rng, name: &str, title: &str, level: &str) -> String {
    format!(
        "title: '{title}'\nid: {}\nname: {name}\nstatus: experimental\nauthor: credtrail w500 generator\ndate: 2026-11-30\nlevel: {level}\n",
        rng.uuid()
    )
}

const AWS: &str = "logsource:\n  product: aws\n  service: cloudtrail\n";
const WIN: &str = "logsource:\n  product: windows\n  category: process_creation\n";

/// (name, title, logsource, detection body)
const STAGES: &[(&str, &str, &str, &str)] = &[
    (
        "w500_ct_secret",
        "Production secret read",
        AWS,
        "  sel:\n    eventSource: secretsmanager.amazonaws.com\n    eventName: GetSecretValue\n    requestParameters.secretId|startswith: 'prod/'\n  condition: sel\n",
    ),
    (
        "w500_ct_iam_enum",
        "IAM enumeration",
        AWS,
        "  sel:\n    eventSource: iam.amazonaws.com\n    eventName:\n      - ListUsers\n      - ListRoles\n      - ListAccessKeys\n      - GetAccountAuthorizationDetails\n  condition: sel\n",
    ),
    (
        "w500_ct_iam_persist",
        "IAM credentials created",
        AWS,
        "  sel:\n    eventSource: iam.amazonaws.com\n    eventName:\n      - CreateAccessKey\n      - CreateLoginProfile\n      - CreateUser\n  condition: sel\n",
    ),
    (
        "w500_ct_snapshot_share",
        "Snapshot shared",
        AWS,
        "  sel:\n    eventName: ModifySnapshotAttribute\n    requestParameters.createVolumePermission.add|exists: true\n  condition: sel\n",
    ),
    (
        "w500_ct_bucket_policy",
        "Bucket policy written",
        AWS,
        "  sel:\n    eventSource: s3.amazonaws.com\n    eventName: PutBucketPolicy\n  condition: sel\n",
    ),
    (
        "w500_ct_denied",
        "Access denied",
        AWS,
        "  sel:\n    errorCode: AccessDenied\n  condition: sel\n",
    ),
    (
        "w500_ct_secret_any",
        "Any secret read",
        AWS,
        "  sel:\n    eventName: GetSecretValue\n  condition: sel\n",
    ),
    (
        "w500_ct_console_foreign",
        "Console login from an unusual range",
        AWS,
        "  sel:\n    eventName: ConsoleLogin\n    sourceIPAddress|cidr: 198.51.100.0/24\n  condition: sel\n",
    ),
    (
        "w500_ct_trail_tamper",
        "CloudTrail tampering",
        AWS,
        "  sel:\n    eventSource: cloudtrail.amazonaws.com\n    eventName:\n      - StopLogging\n      - DeleteTrail\n      - UpdateTrail\n  condition: sel\n",
    ),
    (
        "w500_ct_guardduty_tamper",
        "GuardDuty tampering",
        AWS,
        "  sel:\n    eventSource: guardduty.amazonaws.com\n    eventName:\n      - DeleteDetector\n      - DisassociateFromMasterAccount\n      - UpdateDetector\n  condition: sel\n",
    ),
    (
        "w500_ct_s3_cli_read",
        "S3 object read with the AWS CLI",
        AWS,
        "  sel:\n    eventName: GetObject\n    userAgent|contains: aws-cli\n  condition: sel\n",
    ),
    (
        "w500_win_lsass",
        "LSASS dump through comsvcs",
        WIN,
        "  sel:\n    CommandLine|contains|all:\n      - comsvcs\n      - MiniDump\n  condition: sel\n",
    ),
    (
        "w500_win_discovery",
        "Account discovery binaries",
        WIN,
        "  sel:\n    Image|endswith:\n      - '\\whoami.exe'\n      - '\\nltest.exe'\n  condition: sel\n",
    ),
    (
        "w500_win_schtasks",
        "Scheduled task created",
        WIN,
        "  sel:\n    Image|endswith: '\\schtasks.exe'\n    CommandLine|contains: '/create'\n  condition: sel\n",
    ),
    (
        "w500_win_net_user",
        "Domain user listing with net",
        WIN,
        "  sel:\n    Image|endswith:\n      - '\\net.exe'\n      - '\\net1.exe'\n    CommandLine|contains: ' user '\n  condition: sel\n",
    ),
    (
        "w500_win_remote_exec",
        "Remote execution with PsExec",
        WIN,
        "  sel:\n    Image|endswith:\n      - '\\psexec.exe'\n      - '\\PsExec64.exe'\n    CommandLine|contains: '\\\\\\\\'\n  condition: sel\n",
    ),
];

fn stages(rng: &mut Rng) -> String {
    let mut out = String::new();
    for (i, (name, title, logsource, detection)) in STAGES.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&header(rng, name, &format!("W500 stage: {title}"), "low"));
        out.push_str(logsource);
        out.push_str("detection:\n");
        out.push_str(detection);
    }
    out
}

/// One W500 correlation: name, title, type, rules, group-by field, timespan, condition body.
struct CorrelationSpec(
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static str,
    &'static str,
);

const CORRELATIONS: &[CorrelationSpec] = &[
    CorrelationSpec(
        "w500_corr_cloud_chain",
        "Secret read, IAM enumeration, new credentials",
        "temporal_ordered",
        &["w500_ct_secret", "w500_ct_iam_enum", "w500_ct_iam_persist"],
        "userIdentity.arn",
        "30m",
        "",
    ),
    CorrelationSpec(
        "w500_corr_windows_chain",
        "LSASS dump, discovery, scheduled task",
        "temporal_ordered",
        &["w500_win_lsass", "w500_win_discovery", "w500_win_schtasks"],
        "User",
        "1h",
        "",
    ),
    CorrelationSpec(
        "w500_corr_share_and_policy",
        "Bucket policy and snapshot share",
        "temporal",
        &["w500_ct_snapshot_share", "w500_ct_bucket_policy"],
        "userIdentity.arn",
        "1h",
        "",
    ),
    CorrelationSpec(
        "w500_corr_denied_burst",
        "Burst of access denials",
        "event_count",
        &["w500_ct_denied"],
        "userIdentity.arn",
        "5m",
        "    gte: 10\n",
    ),
    CorrelationSpec(
        "w500_corr_secret_sweep",
        "Many distinct secrets read",
        "value_count",
        &["w500_ct_secret_any"],
        "userIdentity.arn",
        "10m",
        "    gte: 5\n    field: requestParameters.secretId\n",
    ),
    CorrelationSpec(
        "w500_corr_net_burst",
        "Burst of domain user listings",
        "event_count",
        &["w500_win_net_user"],
        "User",
        "5m",
        "    gte: 8\n",
    ),
    CorrelationSpec(
        "w500_corr_lateral_spread",
        "Remote execution on many hosts",
        "value_count",
        &["w500_win_remote_exec"],
        "User",
        "10m",
        "    gte: 3\n    field: Hostname\n",
    ),
    CorrelationSpec(
        "w500_corr_console_then_key",
        "Console login from an unusual range, then new credentials",
        "temporal_ordered",
        &["w500_ct_console_foreign", "w500_ct_iam_persist"],
        "userIdentity.arn",
        "1h",
        "",
    ),
    CorrelationSpec(
        "w500_corr_defense_evasion",
        "CloudTrail and GuardDuty tampering",
        "temporal",
        &["w500_ct_trail_tamper", "w500_ct_guardduty_tamper"],
        "userIdentity.arn",
        "30m",
        "",
    ),
    CorrelationSpec(
        "w500_corr_cli_s3_after_enumeration",
        "IAM enumeration, then S3 reads with the CLI",
        "temporal_ordered",
        &["w500_ct_iam_enum", "w500_ct_s3_cli_read"],
        "userIdentity.arn",
        "15m",
        "",
    ),
];

fn correlations(rng: &mut Rng) -> String {
    let mut out = String::new();
    for (i, CorrelationSpec(name, title, kind, rules, group, timespan, condition)) in
        CORRELATIONS.iter().enumerate()
    {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&header(
            rng,
            name,
            &format!("W500 correlation: {title}"),
            "high",
        ));
        out.push_str(&format!("correlation:\n  type: {kind}\n  rules:\n"));
        for r in *rules {
            out.push_str(&format!("    - {r}\n"));
        }
        out.push_str(&format!(
            "  group-by:\n    - {group}\n  timespan: {timespan}\n"
        ));
        if !condition.is_empty() {
            out.push_str("  condition:\n");
            out.push_str(condition);
        }
    }
    out
}

const TOOLS: &[&str] = &[
    "pacu",
    "ScoutSuite",
    "cloudsploit",
    "prowler",
    "kali",
    "parrot",
    "nmap",
    "sqlmap",
    "stratus-red-team",
    "cloudfox",
    "weirdAAL",
    "endgame",
];
const RANGES: &[&str] = &[
    "192.0.2.0/24",
    "198.18.0.0/15",
    "100.64.0.0/10",
    "203.0.113.128/25",
    "10.99.0.0/16",
    "172.31.250.0/24",
];
const OFFICE: &[&str] = &[
    "\\winword.exe",
    "\\excel.exe",
    "\\powerpnt.exe",
    "\\outlook.exe",
    "\\onenote.exe",
];
const SHELLS: &[&str] = &[
    "\\powershell.exe",
    "\\cmd.exe",
    "\\wscript.exe",
    "\\cscript.exe",
    "\\mshta.exe",
    "\\pwsh.exe",
];
const ARGS: &[&str] = &[
    "urlcache",
    "-decode",
    "/i:http",
    "javascript:",
    "vbscript:",
    "-split",
    "/transfer",
    "DownloadString",
    "scrobj.dll",
    "process call create",
    "-ExecutionPolicy Bypass",
    "Net.WebClient",
    "/s /n /u",
    "advpack.dll",
    "LaunchINFSection",
    "pcwutl.dll",
    "\\\\webdav\\",
    ".Invoke(",
    "Start-BitsTransfer",
    "FromBase64String",
];

/// Between `min` and `min + spread - 1` distinct items.
fn pick_n<'a>(rng: &mut Rng, items: &[&'a str], min: usize, spread: u64) -> Vec<&'a str> {
    let n = min + rng.below(spread) as usize;
    pick_some(rng, items, n)
}

fn pick_some<'a>(rng: &mut Rng, items: &[&'a str], n: usize) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    while out.len() < n.min(items.len()) {
        let x = *rng.pick(items);
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn list(key: &str, items: &[&str]) -> String {
    let mut s = format!("    {key}:\n");
    for i in items {
        s.push_str(&format!("      - '{}'\n", i.replace('\'', "''")));
    }
    s
}

fn noise_rule(rng: &mut Rng, i: usize) -> String {
    let name = format!("w500_noise_{i:04}");
    let (title, logsource, detection) = match i % 12 {
        0 | 5 => {
            let (svc, names) = *rng.pick(RARE_APIS);
            let n = 1 + rng.below(3) as usize;
            let names = pick_some(rng, names, n);
            let mut d = format!("  sel:\n    eventSource: {svc}\n{}", list("eventName", &names));
            if i % 12 == 5 {
                d.push_str("  filter:\n    userIdentity.arn|contains: ':assumed-role/terraform/'\n  condition: sel and not filter\n");
            } else {
                d.push_str("  condition: sel\n");
            }
            (format!("Rare {} call", svc.trim_end_matches(".amazonaws.com")), AWS, d)
        }
        1 => {
            let tools = pick_n(rng, TOOLS, 2, 3);
            (
                "Attack tool user agent".into(),
                AWS,
                format!("  sel:\n{}  condition: sel\n", list("userAgent|contains", &tools)),
            )
        }
        2 => {
            let range = *rng.pick(RANGES);
            (
                "Destructive call from an unexpected range".into(),
                AWS,
                format!("  sel:\n    sourceIPAddress|cidr: {range}\n    eventName|startswith:\n      - Delete\n      - Put\n  condition: sel\n"),
            )
        }
        3 => {
            let suffix = rng.below(10_000);
            (
                "Temporary bucket opened".into(),
                AWS,
                format!("  sel:\n    eventName:\n      - PutBucketAcl\n      - PutBucketPolicy\n      - DeleteBucketPolicy\n    requestParameters.bucketName|re: '^(tmp|test)-[a-z0-9-]+-{suffix}$'\n  condition: sel\n"),
            )
        }
        4 => {
            let (svc, _) = *rng.pick(RARE_APIS);
            (
                "Denied creation".into(),
                AWS,
                format!("  sel:\n    errorCode:\n      - AccessDenied\n      - UnauthorizedOperation\n    eventSource: {svc}\n    eventName|startswith: Create\n  condition: sel\n"),
            )
        }
        6 => {
            let names: Vec<&str> = LOLBINS.iter().map(|(b, _)| *b).collect();
            let bins: Vec<String> = pick_n(rng, &names, 1, 2)
                .into_iter()
                .map(|b| format!("\\{b}"))
                .collect();
            let bins: Vec<&str> = bins.iter().map(String::as_str).collect();
            let args = pick_n(rng, ARGS, 2, 2);
            (
                "Living-off-the-land binary with suspicious arguments".into(),
                WIN,
                format!("  sel:\n{}{}  condition: sel\n", list("Image|endswith", &bins), list("CommandLine|contains", &args)),
            )
        }
        7 => {
            let args = pick_some(rng, ARGS, 2);
            ("Suspicious argument pair".into(), WIN, format!("  sel:\n{}  condition: sel\n", list("CommandLine|contains|all", &args)))
        }
        8 => {
            let parents = pick_n(rng, OFFICE, 2, 3);
            let children = pick_n(rng, SHELLS, 2, 3);
            (
                "Office application spawning a shell".into(),
                WIN,
                format!("  sel:\n{}{}  condition: sel\n", list("ParentImage|endswith", &parents), list("Image|endswith", &children)),
            )
        }
        9 => (
            "Encoded PowerShell".into(),
            WIN,
            "  sel:\n    Image|endswith:\n      - '\\powershell.exe'\n      - '\\pwsh.exe'\n    CommandLine|contains:\n      - ' -enc '\n      - ' -EncodedCommand '\n      - 'FromBase64String'\n  condition: sel\n".into(),
        ),
        10 => {
            let n = 6 + rng.below(5);
            (
                "Random-named executable in AppData".into(),
                WIN,
                format!("  sel:\n    CommandLine|re: '\\\\AppData\\\\Roaming\\\\[a-z]{{{n}}}\\.exe'\n  condition: sel\n"),
            )
        }
        _ => {
            let ext = *rng.pick(&["vbs", "hta", "js", "ps1", "bat", "lnk"]);
            let dir = *rng.pick(&["Temp", "Public", "Downloads", "ProgramData"]);
            (
                "Script launched from a user-writable folder".into(),
                WIN,
                // `\\*` is a backslash then a wildcard; `\*` alone would be a literal star.
                format!("  sel:\n    CommandLine:\n      - '*\\{dir}\\\\*.{ext}*'\n  condition: sel\n"),
            )
        }
    };
    let mut s = header(
        rng,
        &name,
        &format!("W500 noise {i}: {title}"),
        if i.is_multiple_of(3) { "medium" } else { "low" },
    );
    s.push_str(logsource);
    s.push_str("detection:\n");
    s.push_str(&detection);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_determinism() {
        let a = generate(100, 7);
        assert_eq!(a, generate(100, 7));
        assert_ne!(a, generate(100, 8));
        let docs: usize = a
            .iter()
            .map(|f| f.text.matches("\ntitle: ").count() + 1)
            .sum();
        assert_eq!(docs, 100);
        let correlations: usize = a
            .iter()
            .map(|f| f.text.matches("\ncorrelation:").count())
            .sum();
        assert_eq!(correlations, 10);
        let one = generate(1, 7);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].text.matches("title: ").count(), 1);
    }
}
