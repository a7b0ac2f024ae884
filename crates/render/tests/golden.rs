//! Golden tests: config + status snapshot → routes, rules, nft text, and the
//! plan against an empty kernel. `ROUTERD_BLESS=1 cargo test -p
//! routerd-render --test golden` rewrites the expected files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use routerd_model::{StateSnapshot, load_and_validate};
use routerd_render::dataplane::MemDataplane;
use routerd_render::ir::{Family, L4Proto, NftFamily};
use routerd_render::render::{Redirect, add_redirects};
use routerd_render::{Dataplane, DesiredState, Ledger, Rendered, diff, nft_text, render};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn describe(r: &Rendered) -> String {
    let mut out = String::new();
    describe_desired(&mut out, &r.desired);
    if !r.fail_closed.is_empty() {
        out.push_str("## failing closed\n");
        for (id, how) in &r.fail_closed {
            let _ = writeln!(out, "{id}: {how}");
        }
    }
    if !r.problems.is_empty() {
        out.push_str("## problems\n");
        for p in &r.problems {
            let _ = writeln!(out, "{} [{}]: {}", p.owner, p.reason, p.message);
        }
    }
    out
}

fn describe_desired(out: &mut String, d: &DesiredState) {
    // IPv6 objects are marked as `ip -6` shows them apart.
    let v6 = |f: Family| if f == Family::V6 { "-6 " } else { "" };
    out.push_str("## routes\n");
    for r in &d.routes {
        let _ = writeln!(out, "{}{r}    # {}", v6(r.family()), r.owner);
    }
    out.push_str("## rules\n");
    for r in &d.rules {
        let _ = writeln!(out, "{}{r}    # {}", v6(r.family), r.owner);
    }
    for t in &d.nft {
        let _ = writeln!(
            out,
            "## nft {} {} (owners: {:?})",
            t.family, t.name, t.owners
        );
        out.push_str(&nft_text::table_batch(t));
    }
    if !d.addresses.is_empty() {
        out.push_str("## addresses\n");
        for a in &d.addresses {
            let _ = writeln!(out, "{a}    # {}", a.owner);
        }
    }
    if !d.retained.is_empty() {
        out.push_str("## retained (fail-static)\n");
        for o in &d.retained {
            let _ = writeln!(out, "{o}");
        }
    }
    let mut dp = MemDataplane::new();
    let observed = dp.observe().expect("observe");
    let plan = diff(d, &observed, &Ledger::default());
    out.push_str("## plan from an empty kernel\n");
    out.push_str(&plan.to_string());
}

fn check(name: &str, actual: &str) {
    common::check_golden(&format!("{name}.golden"), actual);
}

/// Renders a case. A policy without a status in the state file is first
/// evaluated by routerd-select at [`common::NOW`], as the daemon and
/// `routerctl plan` do, and what it published is listed before the
/// dataplane.
fn render_case(name: &str) -> (Rendered, String) {
    let config =
        std::fs::read_to_string(dir().join(format!("{name}.config.yaml"))).expect("config");
    let (loaded, diags) = load_and_validate(&[("config.yaml", &config)]);
    let errors: Vec<_> = diags
        .iter()
        .filter(|d| d.severity == routerd_model::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{name}: invalid config: {errors:?}");
    let state_path = dir().join(format!("{name}.state.yaml"));
    let mut state: StateSnapshot = match std::fs::read_to_string(&state_path) {
        Ok(s) => serde_yaml::from_str(&s).expect("state"),
        Err(_) => StateSnapshot::new(),
    };
    let mut selected = String::new();
    for id in common::select_missing(&loaded.resources, &mut state) {
        describe_selection(&mut selected, &id, &state[&id]);
    }
    (render(&loaded.resources, &state), selected)
}

/// One line per candidate of what selection published.
fn describe_selection(out: &mut String, id: &str, st: &routerd_model::Status) {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let _ = writeln!(
        out,
        "## selection {id}: {} {}",
        s(&st["phase"]),
        st.get("selectedCandidate").map(s).unwrap_or_default()
    );
    if let Some(ms) = st.get("members").and_then(|m| m.as_array()) {
        let list: Vec<String> = ms
            .iter()
            .map(|m| format!("{}={}", s(&m["name"]), m["weight"]))
            .collect();
        let _ = writeln!(out, "members {}", list.join(" "));
    }
    for c in st
        .get("candidates")
        .and_then(|c| c.as_array())
        .into_iter()
        .flatten()
    {
        let _ = write!(
            out,
            "candidate {} ready={} pathReady={}",
            s(&c["name"]),
            c["ready"],
            c.get("pathReady").unwrap_or(&serde_json::Value::Null)
        );
        for t in c
            .get("targetStates")
            .and_then(|t| t.as_array())
            .into_iter()
            .flatten()
        {
            let _ = write!(
                out,
                " [{} ready={} pathReady={} inUse={}]",
                s(&t["name"]),
                t["ready"],
                t["pathReady"],
                t["inUse"]
            );
        }
        out.push('\n');
    }
}

macro_rules! golden {
    ($($test:ident => $name:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            let (r, selected) = render_case($name);
            check($name, &(selected + &describe(&r)));
        }
    )*};
}

golden! {
    priority_mode_connmark_steering => "priority-mode",
    mark_mode_static_marks_with_sets => "mark-mode",
    hash_mode_jhash_targets => "hash-mode",
    selection_only_routes_and_nat_follow_selection => "selection-only",
    nat44_shapes => "nat-shapes",
    static_addresses_assigned_gated_and_overlap_blocked => "static-addresses",
    weighted_ecmp_multipath_route => "weighted-ecmp",
    pending_resources_are_retained => "pending",
    modeless_policy_with_marks_renders_marks_only => "modeless-marks",
    dslite_targets_down_move_new_flows_to_the_backup => "dslite-targets-down",
    weighted_ecmp_in_priority_mode_is_a_multipath_table => "weighted-ecmp-priority",
    weighted_ecmp_in_mark_mode_hashes_over_member_marks => "weighted-ecmp-mark",
    weighted_ecmp_in_hash_mode_hashes_over_member_marks => "weighted-ecmp-hash",
    fail_closed_reject_refuses_the_policy_match_first => "fail-closed-reject",
    fail_closed_drop_starts_closed_before_any_probe => "fail-closed-drop",
    fail_closed_policy_with_a_ready_candidate_is_open => "fail-closed-open",
    fail_closed_ipv6_policy_refuses_in_an_ip6_table => "fail-closed-ipv6-reject",
    dead_path_flush_keeps_stale_ct_marks_in_priority_mode => "flush-dead-path-priority",
    dead_path_flush_keeps_stale_ct_marks_in_hash_mode => "flush-dead-path-hash",
    ipv6_priority_mode_renders_ip6_tables_and_rules => "ipv6-priority-mode",
    ipv6_mark_mode_uses_ip6_matches_and_ipv6_sets => "ipv6-mark-mode",
    ipv6_hash_mode_hashes_ip6_headers => "ipv6-hash-mode",
    ipv6_host_traffic_routes_local_traffic_from_the_global_address => "ipv6-host-traffic",
    ipv6_host_traffic_without_a_source_keeps_the_last_good_pair => "ipv6-host-traffic-no-source",
    egress_router_rules_only_refuses_every_other_port => "egress-router-rules",
    egress_router_rules_then_fallback_after_every_port_rule => "egress-router-rules-fallback",
    egress_router_fallback_only_takes_every_port => "egress-router-fallback",
    egress_router_without_rules_or_fallback_only_refuses => "egress-router-refusal",
    egress_router_rules_only_ipv6 => "egress-router-rules-v6",
    egress_router_rules_then_fallback_ipv6 => "egress-router-rules-fallback-v6",
    egress_router_fallback_only_ipv6 => "egress-router-fallback-v6",
    egress_router_without_rules_or_fallback_ipv6 => "egress-router-refusal-v6",
    egress_router_many_redirects_load_as_port_maps => "egress-router-many",
    egress_router_many_redirects_load_as_port_maps_ipv6 => "egress-router-many-v6",
    gateway_master_snats_to_the_vip_and_routes_by_its_table => "gateway-master-vip",
    gateway_backup_renders_nothing => "gateway-backup",
    gateway_master_in_primary_ip_mode_masquerades => "gateway-master-primary",
    gateway_client_steers_to_the_internal_next_hop => "gateway-client",
    egress_router_health_balances_live_destinations_and_falls_back => "egress-router-health",
    egress_router_health_unhealthy_fallback_refuses => "egress-router-health-refused",
    egress_router_health_ipv6_balances_live_destinations => "egress-router-health-v6",
}

#[test]
fn dnat_redirects() {
    let mut d = DesiredState::default();
    add_redirects(
        &mut d,
        &[
            Redirect {
                owner: "test/Redirect/web".into(),
                iifname: Some("wan0".into()),
                destination: None,
                protocol: L4Proto::Tcp,
                port: 8080,
                to_address: "203.0.113.26".parse().unwrap(),
                to_port: Some(80),
            },
            Redirect {
                owner: "test/Redirect/sctp".into(),
                iifname: None,
                destination: Some("198.51.100.0/24".parse().unwrap()),
                protocol: L4Proto::Sctp,
                port: 9,
                to_address: "203.0.113.26".parse().unwrap(),
                to_port: None,
            },
        ],
    );
    assert_eq!(d.nft.len(), 1);
    assert_eq!(d.nft[0].family, NftFamily::Ip);
    let mut out = String::new();
    describe_desired(&mut out, &d);
    check("dnat-redirects", &out);
}

/// The kernel accepts every EgressRouter golden table through both nft
/// front ends the daemon uses (the text and the JSON batch), checked in
/// a private network namespace (`unshare -n nft -c`), never the host's.
#[test]
#[ignore = "needs root: network namespaces"]
fn egress_router_tables_are_accepted_by_the_kernel_as_text_and_json() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let cases = [
        "egress-router-rules",
        "egress-router-rules-fallback",
        "egress-router-fallback",
        "egress-router-refusal",
        "egress-router-many",
    ];
    let health = [
        "egress-router-health",
        "egress-router-health-refused",
        "egress-router-health-v6",
    ];
    let all = cases
        .iter()
        .flat_map(|b| [b.to_string(), format!("{b}-v6")])
        .chain(health.iter().map(|c| c.to_string()));
    {
        for case in all {
            let (r, _) = render_case(&case);
            let t = r
                .desired
                .nft
                .iter()
                .find(|t| t.name.starts_with("routerd_egress_"))
                .unwrap_or_else(|| panic!("{case}: no table"));
            let json = routerd_render::nft_json::replace_document(t).to_string();
            for (args, input) in [
                (vec!["-c", "-f", "-"], nft_text::table_batch(t)),
                // What the nft backend loads for a large table.
                (vec!["-c", "-f", "-"], nft_text::replace_batch(t)),
                (vec!["-j", "-c", "-f", "-"], json),
            ] {
                let mut child = Command::new("unshare")
                    .arg("-n")
                    .arg("nft")
                    .args(&args)
                    .stdin(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("unshare nft");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(input.as_bytes())
                    .expect("write");
                let out = child.wait_with_output().expect("wait");
                assert!(
                    out.status.success(),
                    "{case} nft {args:?} refused:\n{}\n{input}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}
