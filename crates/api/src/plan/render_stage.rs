//! Desired dataplane of the plan: routes, rules and the nft text of each
//! owned table, rendered from the effective config and the new statuses.

use routerd_render::{nft_text, render};
use serde_json::json;

use super::{DataplaneView, PlanDocument, PlanError, PlanInputs};

pub(super) fn run(
    inputs: &PlanInputs,
    doc: &mut PlanDocument,
) -> Result<routerd_render::DesiredState, PlanError> {
    // Statuses the plan computed win over the observed snapshot.
    let mut status = inputs.state.clone();
    status.extend(doc.status.iter().map(|(k, v)| (k.clone(), v.clone())));
    let rendered = render(&doc.effective, &status);
    doc.dataplane = dataplane_view(&rendered.desired)?;
    // A policy failing closed says so, as the daemon reports it.
    for (id, how) in &rendered.fail_closed {
        if let Some(st) = doc.status.get_mut(id) {
            *st = routerd_render::render::failclosed::overlay(st, how);
        }
    }
    // No silent failure: what cannot be rendered is listed and laid over
    // its owner's status the way the daemon reports it.
    for p in &rendered.problems {
        let fault = routerd_render::Fault {
            owner: p.owner.clone(),
            reason: p.reason.clone(),
            message: p.message.clone(),
        };
        if let Some(st) = doc.status.get_mut(&p.owner) {
            *st = routerd_render::fault::overlay(st, &fault);
        }
    }
    doc.problems = rendered.problems;
    doc.notes = rendered.notes;
    Ok(rendered.desired)
}

/// The plan document's `dataplane` section for a desired state.
pub fn dataplane_view(d: &routerd_render::DesiredState) -> Result<DataplaneView, PlanError> {
    let to_value = |v: serde_json::Result<serde_json::Value>| {
        v.map_err(|e| PlanError::Invalid(format!("dataplane: {e}")))
    };
    Ok(DataplaneView {
        routes: d
            .routes
            .iter()
            .map(|r| to_value(serde_json::to_value(r)))
            .collect::<Result<_, _>>()?,
        rules: d
            .rules
            .iter()
            .map(|r| to_value(serde_json::to_value(r)))
            .collect::<Result<_, _>>()?,
        nftables: d
            .nft
            .iter()
            .map(|t| {
                json!({
                    "family": t.family.as_str(),
                    "name": t.name,
                    "owners": t.owners,
                    "text": nft_text::table_batch(t),
                })
            })
            .collect(),
        addresses: d
            .addresses
            .iter()
            .map(|a| to_value(serde_json::to_value(a)))
            .collect::<Result<_, _>>()?,
        links: d
            .links
            .iter()
            .map(|l| {
                let mut v = to_value(serde_json::to_value(l))?;
                // The `ip link add` arguments, as operators read them.
                if let Some(o) = v.as_object_mut() {
                    o.insert("command".into(), json!(format!("ip link add {l}")));
                }
                Ok(v)
            })
            .collect::<Result<_, PlanError>>()?,
        neigh_proxies: d
            .neigh_proxies
            .iter()
            .map(|p| to_value(serde_json::to_value(p)))
            .collect::<Result<_, _>>()?,
        forwarding: d
            .forwarding
            .iter()
            .map(|f| to_value(serde_json::to_value(f)))
            .collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use routerd_model::load_and_validate;

    use crate::plan::{PlanInputs, build_plan};

    #[test]
    fn dataplane_lists_routes_and_nft_text_of_owned_tables() {
        let config = "apiVersion: net.routerd.net/v1alpha1
kind: IPv4Route
metadata: {name: rfc1918}
spec: {type: blackhole, destination: 10.0.0.0/8}
---
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: ens18}
---
apiVersion: net.routerd.net/v1alpha1
kind: NAT44Rule
metadata: {name: lan}
spec: {type: masquerade, egressInterface: wan, sourceRanges: [192.168.10.0/24]}
";
        let (loaded, diags) = load_and_validate(&[("c.yaml", config)]);
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
        let doc = build_plan(&PlanInputs {
            startup: loaded.resources,
            ..PlanInputs::default()
        })
        .unwrap();
        assert_eq!(doc.dataplane.routes.len(), 1);
        assert_eq!(doc.dataplane.routes[0]["kind"], "blackhole");
        assert_eq!(doc.dataplane.routes[0]["destination"], "10.0.0.0/8");
        assert!(doc.dataplane.rules.is_empty());
        assert_eq!(doc.dataplane.nftables.len(), 1);
        assert_eq!(doc.dataplane.nftables[0]["name"], "routerd_nat");
        let text = doc.dataplane.nftables[0]["text"].as_str().unwrap();
        assert!(
            text.contains("oifname \"ens18\" ip saddr 192.168.10.0/24 masquerade"),
            "{text}"
        );
    }

    #[test]
    fn what_cannot_be_rendered_is_listed_and_reported_on_its_owner() {
        let config = "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: ens18}
---
apiVersion: net.routerd.net/v1alpha1
kind: IPv4Route
metadata: {name: a}
spec: {destination: 10.7.0.0/16, device: ens18}
---
apiVersion: net.routerd.net/v1alpha1
kind: IPv4Route
metadata: {name: b}
spec:
  destination: 10.7.0.0/16
  device: ens19
  when: {state: {Interface/wan.phase: {exists: true}}}
";
        let (loaded, diags) = load_and_validate(&[("c.yaml", config)]);
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
        let mut state = routerd_model::StateSnapshot::new();
        let mut wan = routerd_model::Status::new();
        wan.insert("phase".into(), serde_json::json!("Up"));
        state.insert("net.routerd.net/v1alpha1/Interface/wan".into(), wan);
        let doc = build_plan(&PlanInputs {
            startup: loaded.resources,
            state,
            ..PlanInputs::default()
        })
        .unwrap();
        assert_eq!(doc.problems.len(), 1, "{:?}", doc.problems);
        let p = &doc.problems[0];
        assert_eq!(p.reason, "Conflict");
        let st = &doc.status[&p.owner];
        assert_eq!(st["phase"], "Error", "{st:?}");
        assert_eq!(st["reason"], "Conflict");
        assert_eq!(st["dataplane"]["intended"]["phase"], "Installed");
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["problems"][0]["owner"], p.owner.as_str());
    }

    #[test]
    fn an_ipv6_static_route_is_installed_as_a_main_table_ipv6_route() {
        let config = "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: ens18}
---
apiVersion: net.routerd.net/v1alpha1
kind: IPv6StaticRoute
metadata: {name: lab}
spec: {interface: wan, destination: \"2001:db8:1::/64\", via: \"fe80::1\", metric: 200}
";
        let (loaded, diags) = load_and_validate(&[("c.yaml", config)]);
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
        let doc = build_plan(&PlanInputs {
            startup: loaded.resources,
            ..PlanInputs::default()
        })
        .unwrap();
        let st = &doc.status["net.routerd.net/v1alpha1/IPv6StaticRoute/lab"];
        assert_eq!(st["phase"], "Installed", "{st:?}");
        assert_eq!(st["device"], "ens18");
        assert_eq!(st["gateway"], "fe80::1");
        assert_eq!(doc.dataplane.routes.len(), 1);
        let r = &doc.dataplane.routes[0];
        assert_eq!(r["destination"], "2001:db8:1::/64");
        assert_eq!(r["gateway"], "fe80::1");
        assert_eq!(r["device"], "ens18");
        assert_eq!(r["metric"], 200);
        assert!(doc.problems.is_empty(), "{:?}", doc.problems);
    }

    #[test]
    fn offline_a_host_traffic_policy_is_pending_for_want_of_a_source_address() {
        let config = "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: ens18}
---
apiVersion: net.routerd.net/v1alpha1
kind: EgressRoutePolicy
metadata: {name: host}
spec:
  family: ipv6
  hostTraffic: true
  candidates:
    - {name: wan, interface: wan, gatewaySource: static, gateway: \"fe80::1\",
       preferredSource: interface, table: 300, priority: 10300}
";
        let (loaded, diags) = load_and_validate(&[("c.yaml", config)]);
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
        let doc = build_plan(&PlanInputs {
            startup: loaded.resources,
            ..PlanInputs::default()
        })
        .unwrap();
        let st = &doc.status["net.routerd.net/v1alpha1/EgressRoutePolicy/host"];
        assert_eq!(st["phase"], "Pending", "{st:?}");
        assert_eq!(st["reason"], "PreferredSourceUnavailable", "{st:?}");
        assert!(
            st["message"]
                .as_str()
                .unwrap()
                .contains("has no observation of ens18's IPv6 addresses"),
            "{st:?}"
        );
        assert!(doc.dataplane.routes.is_empty() && doc.dataplane.rules.is_empty());
    }

    #[test]
    fn a_policy_failing_closed_says_so_in_the_plan() {
        let config = "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: ens18}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: hc}
spec: {target: 192.0.2.1}
---
apiVersion: net.routerd.net/v1alpha1
kind: EgressRoutePolicy
metadata: {name: lan}
spec:
  mode: mark
  whenNoCandidate: drop
  sourceCIDRs: [192.168.10.0/24]
  candidates:
    - {name: a, interface: wan, table: 110, priority: 1100, mark: 16, healthCheck: hc}
";
        let (loaded, diags) = load_and_validate(&[("c.yaml", config)]);
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
        let doc = build_plan(&PlanInputs {
            startup: loaded.resources,
            ..PlanInputs::default()
        })
        .unwrap();
        let st = &doc.status["net.routerd.net/v1alpha1/EgressRoutePolicy/lan"];
        assert_eq!(st["phase"], "Pending");
        assert_eq!(st["failClosed"], "drop");
        let names: Vec<&str> = doc
            .dataplane
            .nftables
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert_eq!(names, ["routerd_failclosed_lan"]);
    }
}
