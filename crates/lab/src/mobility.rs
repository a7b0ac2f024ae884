//! The two-site Selective Address Mobility lab's moving parts, shared by
//! `routerd demo mobility` and its end-to-end test so the two cannot drift:
//! each router's startup configuration, the inventory plugin that brings
//! the claim, the UDP echo that names its site, and the client's probe.
//! The namespaces and links themselves are built by their callers.

use std::path::Path;

/// A cloud inventory plugin: proposes the claim for 192.168.10.50 with the
/// `ownerSide` written in `$OWNER_FILE` (the test moves the host and
/// rewrites the file, as an inventory would see the VM move).
pub const INVENTORY_PLUGIN: &str = r#"#!/usr/bin/python3
import datetime, json, os, sys
request = json.load(sys.stdin)
with open(os.environ["OWNER_FILE"]) as f:
    owner = f.read().strip()
claim = {
    "apiVersion": "hybrid.routerd.net/v1alpha1",
    "kind": "RemoteAddressClaim",
    "metadata": {"name": "web"},
    "spec": {
        "domainRef": "lan",
        "address": "192.168.10.50/32",
        "ownerSide": owner,
        "capture": {"type": "proxy-arp", "interface": "lan", "gratuitousARP": True},
        "delivery": {"peerRef": "cloud", "mode": "route"},
    },
}
json.dump({
    "apiVersion": "plugin.routerd.net/v1alpha1",
    "kind": "PluginResult",
    "status": {
        "observedAt": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ttl": "30s",
        "resources": [claim],
        "directives": [],
    },
}, sys.stdout)
"#;

/// UDP echo: answers every datagram on port 7777 with its payload and the
/// site it runs at (`argv[1]`).
pub const ECHO: &str = r#"#!/usr/bin/python3
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7777))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data + b" " + sys.argv[1].encode(), peer)
"#;

/// Probes 192.168.10.50:7777 every 20 ms for `argv[1]` seconds; prints
/// `<sent seq> <answer time> <site>` for every answer, then `sent <n>`.
pub const PROBE: &str = r#"#!/usr/bin/python3
import select, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
end = time.time() + float(sys.argv[1])
seq, nxt = 0, time.time()
while time.time() < end:
    now = time.time()
    if now >= nxt:
        try:
            s.sendto(str(seq).encode(), ("192.168.10.50", 7777))
        except OSError:
            pass
        seq += 1
        nxt += 0.02
    r, _, _ = select.select([s], [], [], max(0.0, min(nxt - time.time(), 0.005)))
    if r:
        try:
            data, _ = s.recvfrom(2048)
        except OSError:
            continue
        n, site = data.decode().split()
        print(n, "%.4f" % time.time(), site, flush=True)
print("sent", seq, flush=True)
"#;

/// The routers' shared startup half: links, the overlay health check, the
/// peer (this node's `role`), a HybridRoute over it (the health gate), the
/// domain, and the inventory plugin that brings the claim.
pub fn router_config(
    role: &str,
    lan: &str,
    target: &str,
    plugin: &Path,
    owner_file: &Path,
) -> String {
    format!(
        "apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {{name: {role}}}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {{name: lan}}
      spec: {{ifname: {lan}}}
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {{name: overlay}}
      spec: {{ifname: vx0}}
    - apiVersion: net.routerd.net/v1alpha1
      kind: HealthCheck
      metadata: {{name: overlay-hc}}
      spec: {{target: {target}, interface: overlay, protocol: icmp,
             interval: 1s, timeout: 500ms, healthyThreshold: 1, unhealthyThreshold: 2}}
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: OverlayPeer
      metadata: {{name: cloud}}
      spec: {{role: {role}, nodeID: {role}-1, underlay: {{type: route, interface: vx0}}}}
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: HybridRoute
      metadata: {{name: far-net}}
      spec: {{peerRef: cloud, healthCheckRef: overlay-hc, destinationCIDRs: [10.98.{octet}.0/24]}}
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: AddressMobilityDomain
      metadata: {{name: lan}}
      spec: {{prefix: 192.168.10.0/24, mode: selective-address, peerRef: cloud}}
    - apiVersion: plugin.routerd.net/v1alpha1
      kind: Plugin
      metadata: {{name: inventory}}
      spec:
        executable: {plugin}
        timeout: 5s
        env: {{OWNER_FILE: {owner}}}
        triggers: [{{type: interval, every: 1s}}]
",
        octet = if role == "cloud" { 1 } else { 2 },
        plugin = plugin.display(),
        owner = owner_file.display(),
    )
}

/// Writes an executable script.
pub fn write_exec(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

/// One answer [`PROBE`] printed.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeAnswer {
    /// The sequence number of the probe it answers.
    pub seq: u64,
    /// When it arrived (seconds since the epoch).
    pub at: f64,
    /// The site that answered.
    pub site: String,
}

/// [`PROBE`]'s output: the answers in arrival order and how many probes
/// were sent.
pub fn parse_probe(output: &str) -> (Vec<ProbeAnswer>, u64) {
    let answers = output
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some(ProbeAnswer {
                seq: w.next()?.parse().ok()?,
                at: w.next()?.parse().ok()?,
                site: w.next()?.to_string(),
            })
        })
        .collect();
    let sent = output
        .lines()
        .find_map(|l| l.strip_prefix("sent "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    (answers, sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_output_is_read_line_by_line() {
        let (answers, sent) =
            parse_probe("3 1700000000.5000 cloud\nnoise\n4 1700000000.5200 onprem\nsent 9\n");
        assert_eq!(sent, 9);
        assert_eq!(answers.len(), 2);
        assert_eq!(answers[1].seq, 4);
        assert_eq!(answers[1].site, "onprem");
        assert!((answers[0].at - 1_700_000_000.5).abs() < 1e-6);
        assert_eq!(parse_probe(""), (Vec::new(), 0));
    }

    #[test]
    fn each_router_names_its_own_role_and_far_side() {
        let c = router_config(
            "cloud",
            "clan0",
            "10.99.0.2",
            Path::new("/p"),
            Path::new("/o"),
        );
        assert!(c.contains("role: cloud, nodeID: cloud-1"), "{c}");
        assert!(c.contains("10.98.1.0/24"), "{c}");
        let o = router_config(
            "onprem",
            "lan0",
            "10.99.0.1",
            Path::new("/p"),
            Path::new("/o"),
        );
        assert!(o.contains("10.98.2.0/24"), "{o}");
        assert!(o.contains("OWNER_FILE: /o"), "{o}");
    }
}
