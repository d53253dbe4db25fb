//! Injected chains: attacks that must alert and near misses that must not, per source.
//!
//! Each [`Scenario`] writes its events for a fresh identity (named after the chain number, so
//! no background identity and no other chain shares it: labels stay exact) starting at `t0`,
//! and says what a correct engine does about it. Machine-speed chains take seconds, human-speed
//! chains tens of minutes; near misses stop one step short, break the order, or run slower than
//! the rules' window.

mod cloud;
mod hosts;
mod platforms;

use super::background::Source;
use super::json::Obj;
use super::labels::{ChainLabel, Expect, Speed};
use super::sources::{Call, Factory, Generated, Process};
use crate::time::{EventTime, Span};

/// The scenarios of the standard presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    CtFullMachine,
    CtPersistenceHuman,
    CtExfiltrationHuman,
    CtInstanceCredentials,
    CtNearNoEnumeration,
    CtNearTooSlow,
    CtNearWrongOrder,
    WinFullMachine,
    WinPersistenceHuman,
    WinNearNoCredential,
    LinuxFullMachine,
    LinuxNearDiscoveryOnly,
    K8sFullMachine,
    K8sNearReadOnly,
    AgentFullMachine,
    AgentNearDenied,
}

impl Scenario {
    pub const ALL: [Scenario; 16] = [
        Scenario::CtFullMachine,
        Scenario::CtPersistenceHuman,
        Scenario::CtExfiltrationHuman,
        Scenario::CtInstanceCredentials,
        Scenario::CtNearNoEnumeration,
        Scenario::CtNearTooSlow,
        Scenario::CtNearWrongOrder,
        Scenario::WinFullMachine,
        Scenario::WinPersistenceHuman,
        Scenario::WinNearNoCredential,
        Scenario::LinuxFullMachine,
        Scenario::LinuxNearDiscoveryOnly,
        Scenario::K8sFullMachine,
        Scenario::K8sNearReadOnly,
        Scenario::AgentFullMachine,
        Scenario::AgentNearDenied,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::CtFullMachine => "ct_full_machine",
            Scenario::CtPersistenceHuman => "ct_persistence_human",
            Scenario::CtExfiltrationHuman => "ct_exfiltration_human",
            Scenario::CtInstanceCredentials => "ct_instance_credentials",
            Scenario::CtNearNoEnumeration => "ct_near_no_enumeration",
            Scenario::CtNearTooSlow => "ct_near_too_slow",
            Scenario::CtNearWrongOrder => "ct_near_wrong_order",
            Scenario::WinFullMachine => "win_full_machine",
            Scenario::WinPersistenceHuman => "win_persistence_human",
            Scenario::WinNearNoCredential => "win_near_no_credential",
            Scenario::LinuxFullMachine => "linux_full_machine",
            Scenario::LinuxNearDiscoveryOnly => "linux_near_discovery_only",
            Scenario::K8sFullMachine => "k8s_full_machine",
            Scenario::K8sNearReadOnly => "k8s_near_read_only",
            Scenario::AgentFullMachine => "agent_full_machine",
            Scenario::AgentNearDenied => "agent_near_denied",
        }
    }

    pub fn source(self) -> Source {
        use Scenario::*;
        match self {
            CtFullMachine
            | CtPersistenceHuman
            | CtExfiltrationHuman
            | CtInstanceCredentials
            | CtNearNoEnumeration
            | CtNearTooSlow
            | CtNearWrongOrder => Source::CloudTrail,
            WinFullMachine | WinPersistenceHuman | WinNearNoCredential => Source::WindowsFlat,
            LinuxFullMachine | LinuxNearDiscoveryOnly => Source::Linux,
            K8sFullMachine | K8sNearReadOnly => Source::K8sAudit,
            AgentFullMachine | AgentNearDenied => Source::Agent,
        }
    }

    fn speed(self) -> Speed {
        use Scenario::*;
        match self {
            CtPersistenceHuman | CtExfiltrationHuman | CtNearTooSlow | WinPersistenceHuman => {
                Speed::Human
            }
            _ => Speed::Machine,
        }
    }

    /// The shipped pack's rules (by name) that must fire; empty for near misses.
    fn expected_rules(self) -> (Expect, &'static [&'static str]) {
        use Scenario::*;
        match self {
            CtFullMachine => (
                Expect::Alert,
                &[
                    "ct_chain_secret_to_persistence",
                    "ct_chain_secret_to_exfiltration",
                    "ct_chain_full",
                ],
            ),
            CtPersistenceHuman => (Expect::Alert, &["ct_chain_secret_to_persistence"]),
            CtExfiltrationHuman => (Expect::Alert, &["ct_chain_secret_to_exfiltration"]),
            CtInstanceCredentials => (Expect::Alert, &["ct_chain_instance_credentials_s3"]),
            WinFullMachine => (
                Expect::Alert,
                &[
                    "win_chain_credential_to_persistence",
                    "win_chain_credential_to_exfiltration",
                    "win_chain_full",
                ],
            ),
            WinPersistenceHuman => (Expect::Alert, &["win_chain_credential_to_persistence"]),
            LinuxFullMachine => (Expect::Alert, &["lnx_chain_credential_to_exfiltration"]),
            K8sFullMachine => (Expect::Alert, &["k8s_chain_secret_to_exec"]),
            AgentFullMachine => (Expect::Alert, &["agent_chain_secret_to_new_destination"]),
            CtNearNoEnumeration
            | CtNearTooSlow
            | CtNearWrongOrder
            | WinNearNoCredential
            | LinuxNearDiscoveryOnly
            | K8sNearReadOnly
            | AgentNearDenied => (Expect::None, &[]),
        }
    }

    /// Writes the chain numbered `n` starting at `t0`: its events (in event-time order) and
    /// its label.
    pub fn write(self, f: &mut Factory, n: u64, t0: EventTime) -> (Vec<Generated>, ChainLabel) {
        let mut c = Chain {
            f,
            t0,
            events: Vec::new(),
        };
        let identity = match self.source() {
            Source::CloudTrail => cloud::cloudtrail(self, &mut c, n),
            Source::WindowsFlat | Source::WindowsNested => hosts::windows(self, &mut c, n),
            Source::Linux => hosts::linux(self, &mut c, n),
            Source::K8sAudit => platforms::kube(self, &mut c, n),
            Source::Agent => platforms::agent(self, &mut c, n),
        };
        let mut events = c.events;
        events.sort_by_key(|e| e.time);
        let (expect, rules) = self.expected_rules();
        let label = ChainLabel {
            chain: format!("c{n:06}"),
            scenario: self.name().into(),
            source: self.source().name().into(),
            product: self.source().product().into(),
            speed: self.speed(),
            expect,
            expected_rules: rules.iter().map(|r| r.to_string()).collect(),
            identity,
            start: String::new(),
            end: String::new(),
            events: Vec::new(),
        }
        .spanning(&events);
        (events, label)
    }
}

/// A chain being written: its factory, start and events.
pub struct Chain<'a> {
    pub f: &'a mut Factory,
    pub t0: EventTime,
    pub events: Vec<Generated>,
}

impl Chain<'_> {
    pub fn at(&self, secs: i64) -> EventTime {
        self.t0.plus(Span::from_secs(secs))
    }

    /// A CloudTrail call by `arn` at `t0 + secs`.
    pub fn call(
        &mut self,
        secs: i64,
        arn: &str,
        (source, name): (&str, &str),
        agent: &str,
        params: &dyn Fn(&mut Obj<'_>),
    ) {
        let t = self.at(secs);
        let e = self.f.cloudtrail(
            t,
            &Call {
                arn,
                source,
                name,
                agent,
                ip: "198.51.100.23",
                params,
                error: None,
            },
        );
        self.events.push(e);
    }

    pub fn process(&mut self, secs: i64, host: &str, user: &str, image: &str, command_line: &str) {
        let t = self.at(secs);
        let e = self.f.sysmon_windows(
            t,
            &Process {
                host,
                user,
                image,
                command_line,
                parent_image: "C:\\Windows\\System32\\cmd.exe",
            },
        );
        self.events.push(e);
    }
}
