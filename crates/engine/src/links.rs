//! Statuses of link-like resources (Interface, DSLiteTunnel, PPPoESession)
//! from the kernel's view of their devices.
//!
//! Selection reads these statuses (a candidate's `source`, `deviceFrom:
//! {resource: DSLiteTunnel/x, field: device}`), so the daemon publishes them
//! itself instead of trusting a file.

use std::collections::BTreeMap;

use routerd_model::{Kind, Resource, StateSnapshot, Status};
use serde_json::json;

/// What the kernel says about one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Carrier present (IFF_LOWER_UP).
    pub carrier: bool,
    /// MAC address, when it has one.
    pub mac: Option<String>,
    /// Addresses with prefix length.
    pub addresses: Vec<String>,
}

/// Reads device state.
pub trait LinkSource: Send {
    /// Every device by name.
    fn links(&mut self) -> BTreeMap<String, LinkInfo>;
}

/// A fixed set of links (tests, offline).
#[derive(Debug, Clone, Default)]
pub struct StaticLinks(pub BTreeMap<String, LinkInfo>);

impl LinkSource for StaticLinks {
    fn links(&mut self) -> BTreeMap<String, LinkInfo> {
        self.0.clone()
    }
}

/// The live kernel: `/sys/class/net` for flags and `getifaddrs` for
/// addresses, both of the daemon's own network namespace.
#[derive(Debug, Clone, Default)]
pub struct KernelLinks;

impl LinkSource for KernelLinks {
    fn links(&mut self) -> BTreeMap<String, LinkInfo> {
        let mut out = BTreeMap::new();
        let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
            return out;
        };
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let read = |f: &str| {
                std::fs::read_to_string(entry.path().join(f))
                    .map(|s| s.trim().to_string())
                    .ok()
            };
            let flags = read("flags")
                .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
                .unwrap_or(0);
            let info = LinkInfo {
                index: read("ifindex").and_then(|i| i.parse().ok()).unwrap_or(0),
                up: flags & (libc::IFF_UP as u32) != 0,
                carrier: flags & (libc::IFF_LOWER_UP as u32) != 0
                    || read("carrier").as_deref() == Some("1"),
                mac: read("address").filter(|a| !a.is_empty() && a != "00:00:00:00:00:00"),
                addresses: Vec::new(),
            };
            out.insert(name, info);
        }
        for (name, addr) in interface_addresses() {
            if let Some(l) = out.get_mut(&name) {
                l.addresses.push(addr);
            }
        }
        out
    }
}

/// Addresses with prefix length per device, from `getifaddrs` (no process
/// is spawned: this runs on every netlink event).
fn interface_addresses() -> Vec<(String, String)> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut res = Vec::new();
    for a in addrs {
        let (Some(addr), Some(mask)) = (a.address, a.netmask) else {
            continue;
        };
        let text = if let (Some(ip), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
            format!("{}/{}", ip.ip(), u32::from(m.ip()).count_ones())
        } else if let (Some(ip), Some(m)) = (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
            let bits: u32 = m.ip().octets().iter().map(|b| b.count_ones()).sum();
            format!("{}/{bits}", ip.ip())
        } else {
            continue;
        };
        res.push((a.interface_name, text));
    }
    res
}

fn link_status(ifname: &str, info: Option<&LinkInfo>) -> Status {
    let mut st = Status::new();
    st.insert("ifname".into(), json!(ifname));
    match info {
        None => {
            st.insert("phase".into(), json!("Down"));
            st.insert("reason".into(), json!("InterfaceNotFound"));
        }
        Some(l) => {
            let up = l.up && l.carrier;
            st.insert("phase".into(), json!(if up { "Up" } else { "Down" }));
            if l.up && !l.carrier {
                st.insert("reason".into(), json!("NoCarrier"));
            }
            st.insert("index".into(), json!(l.index));
            let v4: Vec<&String> = l.addresses.iter().filter(|a| !a.contains(':')).collect();
            let v6: Vec<&String> = l.addresses.iter().filter(|a| a.contains(':')).collect();
            st.insert("addresses".into(), json!(l.addresses));
            st.insert("ipv4Addresses".into(), json!(v4));
            st.insert("ipv6Addresses".into(), json!(v6));
            if let Some(a) = v4.first() {
                st.insert(
                    "primaryIPv4".into(),
                    json!(a.split('/').next().unwrap_or(a)),
                );
            }
            if let Some(a) = v6.first() {
                st.insert(
                    "primaryIPv6".into(),
                    json!(a.split('/').next().unwrap_or(a)),
                );
            }
            if let Some(m) = &l.mac {
                st.insert("macAddress".into(), json!(m));
            }
        }
    }
    st
}

/// Statuses of every link-like resource in `resources`.
pub fn statuses(resources: &[Resource], links: &BTreeMap<String, LinkInfo>) -> StateSnapshot {
    let mut out = StateSnapshot::new();
    for r in resources {
        let (ifname, extra): (String, Option<(&str, String)>) = match r.kind() {
            Kind::Interface => match r.as_interface() {
                Some(s) => (s.ifname.clone(), None),
                None => continue,
            },
            Kind::DSLiteTunnel => match r.as_dslite() {
                Some(s) => {
                    let dev = s.device_name(r.name()).to_string();
                    (dev.clone(), Some(("tunnelName", dev)))
                }
                None => continue,
            },
            Kind::PPPoESession => match r.as_pppoe() {
                Some(s) => (s.device_name(r.name()), None),
                None => continue,
            },
            _ => continue,
        };
        let mut st = link_status(&ifname, links.get(&ifname));
        if r.kind() != Kind::Interface {
            st.insert("device".into(), json!(ifname));
            st.insert("interface".into(), json!(ifname));
        }
        if let Some((k, v)) = extra {
            st.insert(k.into(), json!(v));
        }
        let disabled = r.as_dslite().is_some_and(|s| s.enabled == Some(false))
            || r.as_pppoe().is_some_and(|s| !s.is_enabled());
        if disabled {
            st.insert("phase".into(), json!("Disabled"));
            st.insert("reason".into(), json!("Disabled"));
        }
        out.insert(r.id().to_string(), st);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_links_read_loopback_with_its_address() {
        // Read-only look at this process's own namespace.
        let links = KernelLinks.links();
        let lo = links.get("lo").expect("every namespace has lo");
        assert!(lo.up);
        assert!(
            lo.addresses.iter().any(|a| a == "127.0.0.1/8"),
            "{:?}",
            lo.addresses
        );
    }

    #[test]
    fn up_with_carrier_is_up_and_missing_is_down() {
        let cfg = "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: wan}\nspec: {ifname: eth0}\n---\napiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: gone}\nspec: {ifname: eth9}\n---\napiVersion: net.routerd.net/v1alpha1\nkind: DSLiteTunnel\nmetadata: {name: ds}\nspec: {interface: wan, tunnelName: dsl0, aftrIPv6: '2001:db8::1'}\n";
        let (l, d) = routerd_model::load_and_validate(&[("c", cfg)]);
        assert!(d.iter().all(|d| !d.is_error()), "{d:?}");
        let mut links = BTreeMap::new();
        links.insert(
            "eth0".to_string(),
            LinkInfo {
                index: 2,
                up: true,
                carrier: true,
                addresses: vec!["192.0.2.2/30".into()],
                ..Default::default()
            },
        );
        links.insert(
            "dsl0".to_string(),
            LinkInfo {
                index: 3,
                up: true,
                carrier: false,
                ..Default::default()
            },
        );
        let s = statuses(&l.resources, &links);
        let wan = &s["net.routerd.net/v1alpha1/Interface/wan"];
        assert_eq!(wan["phase"], "Up");
        assert_eq!(wan["primaryIPv4"], "192.0.2.2");
        let gone = &s["net.routerd.net/v1alpha1/Interface/gone"];
        assert_eq!(
            (gone["phase"].as_str(), gone["reason"].as_str()),
            (Some("Down"), Some("InterfaceNotFound"))
        );
        let ds = &s["net.routerd.net/v1alpha1/DSLiteTunnel/ds"];
        assert_eq!(
            (
                ds["phase"].as_str(),
                ds["device"].as_str(),
                ds["reason"].as_str()
            ),
            (Some("Down"), Some("dsl0"), Some("NoCarrier"))
        );
    }
}
