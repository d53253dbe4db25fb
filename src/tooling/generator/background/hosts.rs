//! Benign host activity: Windows (flat Sysmon, nested Security) and Linux (Sysmon for Linux).

use crate::time::EventTime;
use crate::tooling::generator::sources::{Factory, Generated, Process};

/// (image, command line, parent)
type Cmd = (&'static str, &'static str, &'static str);

const EXPLORER: &str = "C:\\Windows\\explorer.exe";
const CMD: &str = "C:\\Windows\\System32\\cmd.exe";
const SERVICES: &str = "C:\\Windows\\System32\\services.exe";

pub(super) fn windows_flat(f: &mut Factory, rank: u64, role: u64, t: EventTime) -> Generated {
    let host = format!("WKS{:03}.contoso.local", rank % 800);
    let (user, cmds): (String, &[Cmd]) = match role {
        0..=9 => (
            format!("CONTOSO\\svc-backup-{}", rank % 7),
            &[
                (
                    "C:\\Program Files\\Veeam\\Backup\\VeeamAgent.exe",
                    "VeeamAgent.exe -job nightly",
                    SERVICES,
                ),
                (
                    "C:\\Windows\\System32\\robocopy.exe",
                    "robocopy D:\\data \\\\nas01\\backup /MIR /R:1",
                    SERVICES,
                ),
                (
                    "C:\\Windows\\System32\\curl.exe",
                    "curl.exe -s -o C:\\ProgramData\\veeam\\update.json https://updates.example.com/veeam.json",
                    SERVICES,
                ),
            ],
        ),
        10..=79 => (
            format!("CONTOSO\\u{rank}"),
            &[
                (
                    "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
                    "\"chrome.exe\" --type=renderer --lang=en-US",
                    EXPLORER,
                ),
                (
                    "C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE",
                    "\"OUTLOOK.EXE\" /recycle",
                    EXPLORER,
                ),
                (
                    "C:\\Users\\Public\\AppData\\Local\\Microsoft\\Teams\\current\\Teams.exe",
                    "Teams.exe --system-initiated",
                    EXPLORER,
                ),
                (
                    "C:\\Windows\\System32\\notepad.exe",
                    "notepad.exe C:\\Users\\Public\\notes.txt",
                    EXPLORER,
                ),
                ("C:\\Windows\\System32\\ipconfig.exe", "ipconfig /all", CMD),
                ("C:\\Windows\\System32\\whoami.exe", "whoami /groups", CMD),
                ("C:\\Windows\\System32\\net.exe", "net use", CMD),
                (
                    "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                    "powershell.exe -NoProfile Get-Process",
                    EXPLORER,
                ),
            ],
        ),
        _ => (
            format!("CONTOSO\\adm-{rank}"),
            &[
                (
                    "C:\\Windows\\System32\\net.exe",
                    "net group \"domain admins\" /domain",
                    CMD,
                ),
                (
                    "C:\\Windows\\System32\\nltest.exe",
                    "nltest /dclist:contoso.local",
                    CMD,
                ),
                ("C:\\Windows\\System32\\systeminfo.exe", "systeminfo", CMD),
                ("C:\\Windows\\System32\\tasklist.exe", "tasklist /v", CMD),
                (
                    "C:\\Windows\\System32\\schtasks.exe",
                    "schtasks /create /tn \"Maintenance\\Defrag\" /tr defrag.exe /sc weekly",
                    CMD,
                ),
                (
                    "C:\\Windows\\System32\\mmc.exe",
                    "\"mmc.exe\" C:\\Windows\\System32\\dsa.msc",
                    EXPLORER,
                ),
            ],
        ),
    };
    let (image, command_line, parent_image) = *f.rng.pick(cmds);
    f.sysmon_windows(
        t,
        &Process {
            host: &host,
            user: &user,
            image,
            command_line,
            parent_image,
        },
    )
}

pub(super) fn windows_nested(f: &mut Factory, rank: u64, role: u64, t: EventTime) -> Generated {
    let n = rank % 800;
    let host = format!("WKS{n:03}.contoso.local");
    if role < 50 {
        // The machine account maintains its own scheduled tasks.
        let machine = format!("WKS{n:03}$");
        let task = *f.rng.pick(&[
            "\\Microsoft\\Windows\\UpdateOrchestrator\\Schedule Scan",
            "\\Microsoft\\Windows\\Defrag\\ScheduledDefrag",
            "\\Microsoft\\Windows\\WindowsUpdate\\Scheduled Start",
        ]);
        let id = *f.rng.pick(&[4698i64, 4702]);
        return f.security_nested(
            t,
            &host,
            id,
            &[
                ("SubjectUserSid", "S-1-5-18"),
                ("SubjectUserName", &machine),
                ("SubjectDomainName", "CONTOSO"),
                ("TaskName", task),
            ],
        );
    }
    let user = format!("u{rank}");
    let sid = format!("S-1-5-21-1-2-3-{}", 2000 + rank);
    let id = *f.rng.pick(&[4624i64, 4624, 4634, 4672]);
    f.security_nested(
        t,
        &host,
        id,
        &[
            ("TargetUserSid", &sid),
            ("TargetUserName", &user),
            ("TargetDomainName", "CONTOSO"),
            ("LogonType", "3"),
        ],
    )
}

pub(super) fn linux(f: &mut Factory, rank: u64, role: u64, t: EventTime) -> Generated {
    let host = format!("srv-{:03}", rank % 300);
    let (user, uid, cmds): (String, u32, &[Cmd]) = match role {
        0..=29 => (
            "root".into(),
            0,
            &[
                (
                    "/usr/sbin/logrotate",
                    "/usr/sbin/logrotate /etc/logrotate.conf",
                    "/usr/sbin/cron",
                ),
                (
                    "/usr/bin/run-parts",
                    "run-parts --report /etc/cron.daily",
                    "/usr/sbin/cron",
                ),
                (
                    "/usr/bin/apt-get",
                    "apt-get -qq update",
                    "/usr/lib/apt/apt.systemd.daily",
                ),
                (
                    "/usr/bin/find",
                    "find /tmp -type f -mtime +7 -delete",
                    "/usr/sbin/cron",
                ),
            ],
        ),
        30..=84 => (
            format!("u{rank}"),
            1000 + (rank % 5000) as u32,
            &[
                ("/usr/bin/ls", "ls -la", "/usr/bin/bash"),
                ("/usr/bin/git", "git pull --rebase", "/usr/bin/bash"),
                (
                    "/usr/bin/python3",
                    "python3 manage.py runserver",
                    "/usr/bin/bash",
                ),
                ("/usr/bin/ssh", "ssh db01.internal", "/usr/bin/bash"),
                ("/usr/bin/vim", "vim notes.txt", "/usr/bin/bash"),
                ("/usr/bin/cat", "cat /etc/hosts", "/usr/bin/bash"),
            ],
        ),
        _ => (
            format!("deploy-{}", rank % 20),
            998,
            &[
                (
                    "/usr/bin/docker",
                    "docker pull registry.internal/app:latest",
                    "/usr/bin/bash",
                ),
                (
                    "/usr/local/bin/kubectl",
                    "kubectl apply -f deploy.yaml",
                    "/usr/bin/bash",
                ),
            ],
        ),
    };
    let (image, command_line, parent_image) = *f.rng.pick(cmds);
    let p = Process {
        host: &host,
        user: &user,
        image,
        command_line,
        parent_image,
    };
    match f.rng.below(10) {
        0 => f.sysmon_linux(
            t,
            3,
            &p,
            uid,
            &[
                ("DestinationIp", "10.0.0.53"),
                ("DestinationHostname", "mirror.internal"),
                ("DestinationPort", "443"),
            ],
        ),
        1 => f.sysmon_linux(
            t,
            11,
            &p,
            uid,
            &[("TargetFilename", "/var/log/app/app.log.1")],
        ),
        _ => f.sysmon_linux(t, 1, &p, uid, &[]),
    }
}
