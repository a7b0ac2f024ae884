//! Status-reference cycles (`dependsOn`, `deviceFrom`, `gatewayFrom`):
//! a loop can never resolve, so it is an error naming every hop instead of
//! resources that sit in `Pending` forever.

mod common;

use common::*;

fn route(name: &str, spec: &str) -> String {
    doc("IPv4Route", name, spec)
}

/// (resource name, path, cycle text) of one expected error.
type Expected = (&'static str, &'static str, &'static str);

/// (case, documents, expected errors).
#[test]
fn cycles_are_errors_naming_the_loop() {
    let cases: &[(&str, String, &[Expected])] = &[
        (
            "self dependsOn",
            route(
                "a",
                "destination: 10.1.0.0/16\ndevice: eth0\ndependsOn: [{resource: IPv4Route/a}]",
            ),
            &[("a", "spec.dependsOn[0]", "IPv4Route/a -> IPv4Route/a")],
        ),
        (
            "self deviceFrom",
            route(
                "a",
                "destination: 10.1.0.0/16\ndeviceFrom: {resource: IPv4Route/a, field: device}",
            ),
            &[("a", "spec.deviceFrom", "IPv4Route/a -> IPv4Route/a")],
        ),
        (
            "mutual dependsOn",
            route(
                "a",
                "destination: 10.1.0.0/16\ndevice: eth0\ndependsOn: [{resource: IPv4Route/b}]",
            ) + "---\n"
                + &route(
                    "b",
                    "destination: 10.2.0.0/16\ndevice: eth0\ndependsOn: [{resource: IPv4Route/a}]",
                ),
            &[(
                "a",
                "spec.dependsOn[0]",
                "IPv4Route/a -> IPv4Route/b -> IPv4Route/a",
            )],
        ),
        (
            "three-hop gatewayFrom and dependsOn",
            route(
                "a",
                "destination: 10.1.0.0/16\ndevice: eth0\ngatewayFrom: {resource: IPv4Route/b, field: gateway}",
            ) + "---\n"
                + &route(
                    "b",
                    "destination: 10.2.0.0/16\ndevice: eth0\ndependsOn: [{resource: IPv4Route/c}]",
                )
                + "---\n"
                + &route(
                    "c",
                    "destination: 10.3.0.0/16\ndevice: eth0\ndependsOn: [{resource: IPv4Route/a}]",
                ),
            &[(
                "a",
                "spec.gatewayFrom",
                "IPv4Route/a -> IPv4Route/b -> IPv4Route/c -> IPv4Route/a",
            )],
        ),
    ];
    for (case, text, expected) in cases {
        let got: Vec<(String, String, String)> = errors(&with_base(text))
            .into_iter()
            .filter(|d| d.message.contains("dependency cycle"))
            .map(|d| {
                (
                    d.resource.clone().unwrap_or_default(),
                    d.path.clone().unwrap_or_default(),
                    d.message.clone(),
                )
            })
            .collect();
        let want: Vec<(String, String, String)> = expected
            .iter()
            .map(|(name, path, cycle)| {
                let rid = id("IPv4Route", name);
                (
                    rid.clone(),
                    (*path).to_string(),
                    format!("{rid} {path} forms a dependency cycle: {cycle}; no resource in it can become ready"),
                )
            })
            .collect();
        assert_eq!(got, want, "{case}");
    }
}

/// A chain that ends is no cycle, and neither is a diamond.
#[test]
fn chains_and_diamonds_are_valid() {
    let text = route(
        "a",
        "destination: 10.1.0.0/16\ndevice: eth0\ndependsOn: [{resource: IPv4Route/b}, {resource: IPv4Route/c}]",
    ) + "---\n"
        + &route(
            "b",
            "destination: 10.2.0.0/16\ndevice: eth0\ndependsOn: [{resource: IPv4Route/d}]",
        )
        + "---\n"
        + &route(
            "c",
            "destination: 10.3.0.0/16\ndevice: eth0\ndependsOn: [{resource: IPv4Route/d}]",
        )
        + "---\n"
        + &route(
            "d",
            "destination: 10.4.0.0/16\ndevice: eth0\ndependsOn: [{resource: Interface/wan}]",
        );
    let e = errors(&with_base(&text));
    assert!(e.is_empty(), "{e:?}");
}
