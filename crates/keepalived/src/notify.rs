//! keepalived's notify FIFO: one line per state change
//! (`INSTANCE "gw_egress" MASTER 250`). Following the FIFO instead of
//! polling means routerd installs SNAT the moment keepalived promotes.

use std::fmt;

/// A VRRP instance's state as keepalived reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VrrpState {
    /// Not yet reported (keepalived not started, or no line yet).
    Unknown,
    /// Active: holds the virtual addresses.
    Master,
    /// Standby.
    Backup,
    /// Unsuitable (track file, tracked interface): will not take the role.
    Fault,
    /// The instance stopped (keepalived exiting).
    Stop,
}

impl VrrpState {
    /// keepalived's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VrrpState::Unknown => "UNKNOWN",
            VrrpState::Master => "MASTER",
            VrrpState::Backup => "BACKUP",
            VrrpState::Fault => "FAULT",
            VrrpState::Stop => "STOP",
        }
    }

    fn parse(s: &str) -> Option<VrrpState> {
        Some(match s {
            "MASTER" => VrrpState::Master,
            "BACKUP" => VrrpState::Backup,
            "FAULT" => VrrpState::Fault,
            "STOP" | "DELETED" => VrrpState::Stop,
            _ => return None,
        })
    }
}

impl fmt::Display for VrrpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parsed FIFO line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyEvent {
    /// `INSTANCE` or `GROUP`.
    pub group: bool,
    /// The instance (or sync group) name.
    pub name: String,
    /// The new state.
    pub state: VrrpState,
    /// The priority keepalived reported.
    pub priority: u8,
}

/// Parses one FIFO line; anything else (virtual-server lines, future
/// formats) is `None` and ignored.
pub fn parse_line(line: &str) -> Option<NotifyEvent> {
    let line = line.trim();
    let (kind, rest) = line.split_once(' ')?;
    let group = match kind {
        "INSTANCE" => false,
        "GROUP" => true,
        _ => return None,
    };
    let rest = rest.trim_start().strip_prefix('"')?;
    let (name, rest) = rest.split_once('"')?;
    let mut it = rest.split_whitespace();
    let state = VrrpState::parse(it.next()?)?;
    let priority = it.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some(NotifyEvent {
        group,
        name: name.to_string(),
        state,
        priority,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_instance_and_group_lines() {
        assert_eq!(
            parse_line("INSTANCE \"gw_egress-gw\" MASTER 250\n"),
            Some(NotifyEvent {
                group: false,
                name: "gw_egress-gw".into(),
                state: VrrpState::Master,
                priority: 250
            })
        );
        assert_eq!(
            parse_line("GROUP \"g\" FAULT 0").map(|e| (e.group, e.state)),
            Some((true, VrrpState::Fault))
        );
        assert_eq!(
            parse_line("INSTANCE \"x\" DELETED 0").map(|e| e.state),
            Some(VrrpState::Stop)
        );
    }

    #[test]
    fn ignores_other_lines() {
        for l in [
            "",
            "VS 10.0.0.1:80 UP",
            "INSTANCE noquote MASTER 1",
            "INSTANCE \"x\" WEIRD 1",
        ] {
            assert_eq!(parse_line(l), None, "{l}");
        }
    }
}
