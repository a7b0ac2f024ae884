//! The loader must never panic, whatever it is fed. This runs the same entry
//! point as the `load_config` fuzz target (fuzz/fuzz_targets/load_config.rs)
//! over a fixed corpus of hostile inputs, so a plain `cargo test` covers it.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use routerd_model::Loaded;
use routerd_model::validate::Context;

/// The fuzz target's body: load bytes as one file, validate both ways,
/// print every diagnostic and re-serialize every resource.
fn load_config(data: &[u8]) -> usize {
    let text = String::from_utf8_lossy(data);
    let mut l = Loaded::new();
    l.add_file("fuzz.yaml", &text);
    let mut n = 0;
    for ctx in [Context::Startup, Context::Effective] {
        for d in l.validate(ctx) {
            n += d.to_string().len();
        }
    }
    for r in &l.resources {
        n += serde_json::to_string(r).map(|s| s.len()).unwrap_or(0);
        n += serde_yaml::to_string(r).map(|s| s.len()).unwrap_or(0);
    }
    n
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut c: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, text: String| c.push((name.to_string(), text.into_bytes()));
    let iface = "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: wan}\n";

    add("empty", String::new());
    add("only-separators", "---\n---\n...\n---\n".into());
    add("null-doc", "~\n".into());
    add("scalar-doc", "hello\n".into());
    add("list-doc", "- a\n- b: c\n".into());
    add("tabs", "\tapiVersion: x\n\tkind:\tInterface\n".into());
    add("bom", "\u{feff}apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: a}\nspec: {ifname: e}\n".into());
    add(
        "deep-flow-seq",
        format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)),
    );
    add(
        "deep-flow-map",
        format!("{}{}", "{a: ".repeat(5_000), "}".repeat(5_000)),
    );
    add(
        "deep-block",
        (0..3_000)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect(),
    );
    add(
        "deep-in-spec",
        format!(
            "{iface}spec: {{when: {}}}}}\n",
            "{all: [".repeat(500) + &"]}".repeat(500)
        ),
    );
    add(
        "billion-laughs",
        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\nkind: Interface\n".into(),
    );
    add(
        "aliases-in-resources",
        "apiVersion: routerd.net/v1alpha1\nkind: Router\nmetadata: {name: r}\nspec:\n  resources:\n    - &i {apiVersion: net.routerd.net/v1alpha1, kind: Interface, metadata: {name: a}, spec: {ifname: e}}\n    - *i\n    - <<: *i\n      metadata: {name: b}\n".into(),
    );
    add("undefined-alias", "kind: *nope\n".into());
    add("recursive-anchor", "a: &a [*a]\n".into());
    add(
        "merge-key",
        format!("base: &b {{ifname: e}}\n---\n{iface}spec:\n  <<: *b\n  mtu: 1500\n"),
    );
    add(
        "huge-numbers",
        format!(
            "{iface}spec: {{ifname: e, mtu: 99999999999999999999999999999999, adminUp: 1e999}}\n"
        ),
    );
    add(
        "huge-durations",
        "apiVersion: net.routerd.net/v1alpha1\nkind: HealthCheck\nmetadata: {name: h}\nspec:\n  interval: 999999999999999999999999999999999999999h\n  timeout: 170141183460469231731687303715884105727h\n  failingInterval: 9223372036854775807ns9223372036854775807ns\n".into(),
    );
    add(
        "huge-durations-everywhere",
        "apiVersion: plugin.routerd.net/v1alpha1\nkind: Plugin\nmetadata: {name: p}\nspec:\n  executable: /p\n  timeout: 99999999999999999999999999999999999999h1h\n  triggers: [{type: interval, every: 18446744073709551616.99999999999999999999999999999h}]\n---\napiVersion: net.routerd.net/v1alpha1\nkind: EgressRoutePolicy\nmetadata: {name: e}\nspec: {hysteresis: -9223372036854775808ns, preemptDelay: .5h.5h, candidates: [{name: a}]}\n".into(),
    );
    add(
        "negative-and-extreme-ints",
        "apiVersion: net.routerd.net/v1alpha1\nkind: EgressRoutePolicy\nmetadata: {name: e}\nspec:\n  mode: priority\n  candidates:\n    - {name: a, mark: -9223372036854775808, priority: 9223372036854775807, table: -1, weight: -9223372036854775808}\n".into(),
    );
    add(
        "port-range-extremes",
        "apiVersion: net.routerd.net/v1alpha1\nkind: NAT44Rule\nmetadata: {name: n}\nspec: {outboundInterface: w, sourceCIDRs: [0.0.0.0/0], translation: {type: pool, addresses: [''], portMapping: {type: range, start: -9223372036854775808, end: 9223372036854775807}}}\n".into(),
    );
    add(
        "non-string-keys",
        format!("{iface}spec: {{1: 2, [a]: b, {{c: d}}: e, null: f, true: g}}\n"),
    );
    add(
        "complex-keys",
        "? [a, b]\n: c\n? {x: y}\n: z\nkind: Interface\n".into(),
    );
    add(
        "tags",
        format!("{iface}spec: !Interface {{ifname: !!binary aGVsbG8=, mtu: !!str 1500}}\n"),
    );
    add(
        "tagged-doc",
        "--- !Router\napiVersion: routerd.net/v1alpha1\n".into(),
    );
    add(
        "duplicate-keys",
        format!("{iface}spec: {{ifname: a, ifname: b}}\nkind: Interface\n"),
    );
    add(
        "wrong-types-everywhere",
        "apiVersion: [1]\nkind: {a: b}\nmetadata: 7\nspec: []\nstatus: 3\n".into(),
    );
    add("router-wrong-types", "apiVersion: routerd.net/v1alpha1\nkind: Router\nmetadata: [x]\nspec: {reconcile: [1], resources: 5}\n".into());
    add("router-reconcile-types", "apiVersion: routerd.net/v1alpha1\nkind: Router\nmetadata: {name: r}\nspec: {reconcile: {mode: [x], protectedInterfaces: [[]], protectedZones: {a: b}, 7: 8}, resources: [~, 1, [], {}]}\n".into());
    add("metadata-types", "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: {a: b}, ownerRefs: 5, labels: [1]}\n".into());
    add(
        "status-types",
        format!("{iface}spec: {{ifname: e}}\nstatus: [1, 2]\n"),
    );
    add(
        "weird-key-names",
        "apiVersion: plugin.routerd.net/v1alpha1\nkind: Plugin\nmetadata: {name: p}\nspec:\n  executable: /p\n  env: {\"a.b\": [1], \"c[0]\": {x: 1}, \"]\": 2, \"[\": 3, \"\": 4, \"..\": [5]}\n".into(),
    );
    add(
        "type-errors-in-lists",
        "apiVersion: net.routerd.net/v1alpha1\nkind: EgressRoutePolicy\nmetadata: {name: e}\nspec:\n  candidates: [{name: [a], targets: [{table: x}, {mark: y}]}, 5, {weight: z}]\n  hashFields: [[1]]\n".into(),
    );
    add(
        "many-type-errors",
        format!(
            "apiVersion: net.routerd.net/v1alpha1\nkind: EgressRoutePolicy\nmetadata: {{name: e}}\nspec:\n  candidates:\n{}",
            (0..100)
                .map(|i| format!("    - {{name: c{i}, mark: m{i}}}\n"))
                .collect::<String>()
        ),
    );
    add(
        "dynamic-part-nesting",
        "apiVersion: config.routerd.net/v1alpha1\nkind: DynamicConfigPart\nmetadata: {name: d}\nspec:\n  source: Plugin/x\n  generation: 1\n  expiresAt: not-a-time\n  resources:\n    - {apiVersion: config.routerd.net/v1alpha1, kind: DynamicConfigPart, metadata: {name: inner}, spec: {resources: [{kind: Link}]}}\n".into(),
    );
    add("status-ref-shapes", "apiVersion: net.routerd.net/v1alpha1\nkind: IPv4Route\nmetadata: {name: r}\nspec: {destination: x, deviceFrom: {resource: /, field: ''}, gatewayFrom: {resource: a/b/c}, dependsOn: [{}, {resource: '/'}, {resource: 'Interface/ '}]}\n".into());
    add(
        "unicode",
        format!("{iface}spec: {{ifname: \"\u{1F600}\u{0000}\u{202e}\", ☃: ❄}}\n"),
    );
    add(
        "long-string",
        format!("{iface}spec: {{ifname: {}}}\n", "x".repeat(1 << 20)),
    );
    add("many-documents", "{}\n---\n".repeat(20_000));
    add("unterminated", "apiVersion: \"net\nkind: 'x\n".into());
    add("cr-only", "apiVersion: a\rkind: b\r".into());
    add("nul-bytes", "kind: \0Interface\0\n".into());
    add(
        "legacy-kind-no-name",
        "apiVersion: net.routerd.net/v1alpha1\nkind: Link\n".into(),
    );
    add("wire-object", "apiVersion: plugin.routerd.net/v1alpha1\nkind: PluginRequest\nmetadata: {name: x}\nspec: {}\n".into());

    let mut garbage = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..64 * 1024 {
        // xorshift32: deterministic noise
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        garbage.push((x & 0xff) as u8);
    }
    c.push(("binary-garbage".into(), garbage.clone()));
    let mut mixed = b"apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: a}\nspec: {ifname: ".to_vec();
    mixed.extend_from_slice(&garbage[..4096]);
    c.push(("yaml-then-garbage".into(), mixed));
    c.push((
        "invalid-utf8".into(),
        vec![0xff, 0xfe, b'k', b':', 0xc0, 0x80, b'\n'],
    ));
    c
}

#[test]
fn the_loader_never_panics_on_hostile_input() {
    let mut failed = Vec::new();
    for (name, data) in corpus() {
        let start = std::time::Instant::now();
        let r = std::panic::catch_unwind(|| load_config(&data));
        eprintln!("{name}: {:?}", start.elapsed());
        if r.is_err() {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "the loader panicked on: {failed:?}");
}

#[test]
fn hostile_input_is_reported_not_accepted() {
    // A few inputs whose outcome is known: they must produce errors.
    for (name, text) in [
        (
            "deep",
            format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)),
        ),
        (
            "laughs",
            "a: &a [x, x]\nb: &b [*a, *a]\nkind: [*b, *b]\n".to_string(),
        ),
        ("tabs", "\tkind: x\n".to_string()),
    ] {
        let mut l = Loaded::new();
        l.add_file("f.yaml", &text);
        let d = l.validate(Context::Startup);
        assert!(d.iter().any(|d| d.is_error()), "{name}: {d:?}");
    }
}
