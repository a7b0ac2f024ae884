//! The human text of the daemon verbs (`-o text`, the default): the
//! headline an operator looks for first (what carries traffic and why, the
//! daemon's phase and reason), then aligned details. `-o yaml|json` print
//! the daemon's documents unchanged; scripts use those.

use std::fmt::Write as _;

use serde_json::Value;

/// `v[k]` as text: strings bare, numbers and booleans printed, else `""`.
fn s(v: &Value, k: &str) -> String {
    scalar(&v[k])
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// Left-aligned columns separated by two spaces, trailing blanks trimmed.
pub fn columns<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut o = String::new();
    let head = header.map(String::from);
    for r in std::iter::once(&head).chain(rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        o.push_str(line.join("  ").trim_end());
        o.push('\n');
    }
    o
}

/// `Kind/name` of an event's or item's resource (`-` when it has none).
fn resource(r: &Value) -> String {
    let (k, n) = (s(r, "kind"), s(r, "name"));
    if k.is_empty() && n.is_empty() {
        "-".into()
    } else {
        format!("{k}/{n}")
    }
}

/// Second-precision UTC time (`2026-12-03T11:20:30Z`) of an RFC 3339 text.
fn short_time(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t).map_or_else(
        |_| t.to_string(),
        |d| {
            d.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        },
    )
}

/// The events timeline: ID (what `--since` takes), TIME, RESOURCE, REASON,
/// MESSAGE (the topic and attributes when an event has no message).
pub fn events(items: &[Value], header: bool) -> String {
    let rows: Vec<[String; 5]> = items
        .iter()
        .map(|e| {
            let topic = s(e, "type");
            let reason = Some(s(e, "reason"))
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| topic.rsplit('.').next().unwrap_or("").to_string());
            let mut message = s(e, "message");
            if message.is_empty() {
                // Events without a message (routerd's route and NAT
                // events) say what they say in their attributes.
                let attrs: Vec<String> = e["attributes"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, v)| !scalar(v).is_empty())
                    .map(|(k, v)| format!("{k}={}", scalar(v)))
                    .collect();
                message = if attrs.is_empty() {
                    topic.clone()
                } else {
                    format!("{topic}: {}", attrs.join(" "))
                };
            }
            if s(e, "severity") == "error" || s(e, "severity") == "warning" {
                message = format!("{}: {message}", s(e, "severity"));
            }
            [
                s(e, "id"),
                short_time(&s(e, "time")),
                resource(&e["resource"]),
                reason,
                message,
            ]
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let t = columns(["ID", "TIME", "RESOURCE", "REASON", "MESSAGE"], &rows);
    if header {
        t
    } else {
        t.split_once('\n')
            .map_or(t.clone(), |(_, rest)| rest.to_string())
    }
}

/// `routerctl status`: phase and reason first, then the counts, then
/// every resource that is not fine.
pub fn status(v: &Value) -> String {
    let st = &v["status"];
    let mut o = String::new();
    let phase = s(st, "phase");
    let why = if let Some(e) = st["lastError"].as_str() {
        format!(": last step failed: {e}")
    } else if let Some(e) = st["storeError"]["message"].as_str() {
        format!(": state store: {e}")
    } else if let Some(n) = st["faults"].as_array().filter(|a| !a.is_empty()) {
        format!(": {} owner(s) refused by the kernel", n.len())
    } else {
        String::new()
    };
    let _ = writeln!(o, "routerd {phase}{why}");
    let mut kv: Vec<[String; 2]> = vec![
        ["generation".into(), s(st, "generation")],
        ["resources".into(), s(st, "resourceCount")],
        ["started".into(), short_time(&s(st, "startedAt"))],
        ["last step".into(), short_time(&s(st, "lastApplyTime"))],
        [
            "work".into(),
            format!(
                "{} ready, {} scheduled (ready is a backlog; scheduled are retries and timed wakes)",
                s(&st["work"], "ready"),
                s(&st["work"], "scheduled")
            ),
        ],
        ["orphans".into(), s(st, "orphans")],
    ];
    if let Some(r) = st["lastReload"].as_object() {
        let g = |k: &str| r.get(k).map(scalar).unwrap_or_default();
        kv.push([
            "last reload".into(),
            format!(
                "{} at {} (generation {})",
                g("result"),
                short_time(&g("time")),
                g("generation")
            ),
        ]);
    }
    for [k, val] in &kv {
        let _ = writeln!(o, "  {:<14}{val}", format!("{k}:"));
    }
    for f in st["faults"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  fault: {} {}: {}",
            s(f, "owner"),
            s(f, "reason"),
            s(f, "message")
        );
    }
    let issues: Vec<[String; 3]> = st["resourcePhaseIssues"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let id = s(i, "id");
            let short = id.splitn(3, '/').nth(2).map_or(id.clone(), str::to_string);
            [short, s(i, "phase"), s(i, "reason")]
        })
        .collect();
    if !issues.is_empty() {
        o.push('\n');
        o.push_str(&columns(["RESOURCE", "PHASE", "REASON"], &issues));
    }
    o
}

/// One `key: value` line per scalar of a status or spec object, nested
/// objects and lists as compact JSON, indented.
fn fields(o: &mut String, v: &Value, indent: &str) {
    let Some(m) = v.as_object() else {
        return;
    };
    let w = m.keys().map(String::len).max().unwrap_or(0) + 1;
    for (k, x) in m {
        if let Some(list) = x
            .as_array()
            .filter(|a| !a.is_empty() && a.iter().all(Value::is_object))
        {
            // A list of objects (candidates, targets): one line each.
            let _ = writeln!(o, "{indent}{k}:");
            for item in list {
                let kv: Vec<String> = item
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| match v {
                        Value::Object(_) | Value::Array(_) => format!("{k}={v}"),
                        other => format!("{k}={}", scalar(other)),
                    })
                    .collect();
                let _ = writeln!(o, "{indent}  - {}", kv.join(" "));
            }
            continue;
        }
        let text = match x {
            Value::Object(_) | Value::Array(_) => x.to_string(),
            other => scalar(other),
        };
        let _ = writeln!(o, "{indent}{:<w$} {text}", format!("{k}:"));
    }
}

/// `routerctl describe`: the resource and its phase and reason first,
/// then the status, the spec, and the recent events as a timeline.
pub fn describe(v: &Value) -> String {
    let r = &v["resource"];
    let st = &r["status"];
    let mut o = String::new();
    let phase = s(st, "phase");
    let mut head = format!("{}/{}", s(r, "kind"), s(r, "name"));
    if !phase.is_empty() {
        head.push_str(&format!(": {phase}"));
    }
    for k in ["reason", "message"] {
        let x = s(st, k);
        if !x.is_empty() {
            head.push_str(&format!(" ({x})"));
        }
    }
    let _ = writeln!(o, "{head}");
    let why = s(v, "headline");
    if !why.is_empty() {
        let _ = writeln!(o, "  {why}");
    }
    for c in v["causes"].as_array().into_iter().flatten() {
        let _ = writeln!(o, "  {}: {}", s(c, "candidate"), s(c, "cause"));
    }
    let _ = writeln!(o, "  apiVersion: {}", s(r, "apiVersion"));
    if st.is_object() {
        let _ = writeln!(o, "status:");
        fields(&mut o, st, "  ");
    }
    if r["spec"].is_object() {
        let _ = writeln!(o, "spec:");
        fields(&mut o, &r["spec"], "  ");
    }
    if r["suppressed"].is_object() {
        let _ = writeln!(o, "suppressed:");
        fields(&mut o, &r["suppressed"], "  ");
    }
    let ev: Vec<Value> = v["events"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(o, "events:");
    if ev.is_empty() {
        let _ = writeln!(o, "  (none)");
    } else {
        for line in events(&ev, true).lines() {
            let _ = writeln!(o, "  {line}");
        }
    }
    o
}

/// `routerctl explain egress`: the headline (selected path and why, or why
/// nothing is), the causes per candidate, then the candidates as a table.
pub fn explain(v: &Value) -> String {
    let d = &v["decision"];
    let mut o = String::new();
    let _ = writeln!(o, "{}", s(v, "headline"));
    let _ = writeln!(
        o,
        "  policy: {}  mode: {}  selection: {}  evaluated: {}",
        s(v, "policy").splitn(3, '/').nth(2).unwrap_or(""),
        Some(s(d, "mode"))
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "advisory".into()),
        s(d, "selection"),
        short_time(&s(d, "evaluatedAt"))
    );
    let causes = v["causes"].as_array().cloned().unwrap_or_default();
    if !causes.is_empty() {
        let _ = writeln!(o, "causes:");
        for c in &causes {
            let _ = writeln!(o, "  {}: {}", s(c, "candidate"), s(c, "cause"));
            let detail = s(c, "detail");
            if !detail.is_empty() {
                let _ = writeln!(o, "    {detail}");
            }
            let ev = &c["evidence"];
            if ev.is_object() {
                let mut parts = Vec::new();
                for k in ["lastResult", "lastCheckedAt", "consecutiveFailed"] {
                    let x = s(ev, k);
                    if !x.is_empty() {
                        parts.push(format!("{k}={x}"));
                    }
                }
                if let Some(m) = ev["lastEvidence"].as_object() {
                    for (k, x) in m {
                        parts.push(format!("{k}={}", scalar(x)));
                    }
                }
                if !parts.is_empty() {
                    let _ = writeln!(o, "    last probe: {}", parts.join(" "));
                }
            }
        }
    }
    let rows: Vec<[String; 6]> = d["candidates"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let why = c["reasons"]
                .as_array()
                .and_then(|a| a.first())
                .map(|r| s(r, "code"))
                .or_else(|| c["held"]["by"].as_str().map(|b| format!("held by {b}")))
                .unwrap_or_default();
            [
                s(c, "name"),
                if c["ready"] == true { "yes" } else { "no" }.into(),
                s(c, "rank"),
                s(c, "device"),
                s(c, "gateway"),
                why,
            ]
        })
        .collect();
    if !rows.is_empty() {
        let _ = writeln!(o, "candidates:");
        for line in columns(["NAME", "READY", "RANK", "DEVICE", "GATEWAY", "WHY"], &rows).lines() {
            let _ = writeln!(o, "  {line}");
        }
    }
    if let Some(f) = v["fault"].as_object() {
        let g = |k: &str| f.get(k).map(scalar).unwrap_or_default();
        let _ = writeln!(o, "fault: {}: {}", g("reason"), g("message"));
    }
    o
}

/// `get dynamic`: one row per stored part.
pub fn parts(v: &Value) -> String {
    let rows: Vec<[String; 6]> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|rec| {
            let spec = &rec["part"]["spec"];
            let len = |k: &str| spec[k].as_array().map_or(0, Vec::len).to_string();
            [
                s(spec, "source"),
                s(spec, "generation"),
                s(rec, "state"),
                format!("{}/{}", len("resources"), len("directives")),
                Some(s(spec, "expiresAt"))
                    .filter(|e| !e.is_empty())
                    .map_or_else(|| "never".into(), |e| short_time(&e)),
                s(rec, "reason"),
            ]
        })
        .collect();
    columns(
        [
            "SOURCE",
            "GEN",
            "STATE",
            "RESOURCES/DIRECTIVES",
            "EXPIRES",
            "REASON",
        ],
        &rows,
    )
}

/// `get ledger`: one row per kernel object routerd owns.
pub fn ledger(v: &Value) -> String {
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let fam = |net: &str| if net.contains(':') { "ipv6" } else { "ipv4" }.to_string();
    let mut rows: Vec<[String; 5]> = Vec::new();
    for e in list("routes") {
        let (k, owner) = (&e[0], scalar(&e[1]));
        let dst = s(k, "destination");
        rows.push([
            "route".into(),
            fam(&dst),
            s(k, "table"),
            format!("{dst} metric {}", s(k, "metric")),
            owner,
        ]);
    }
    for e in list("rules") {
        let k = &e[0];
        let family = Some(s(k, "family"))
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| "ipv4".into());
        let mut key = format!("priority {}", s(k, "priority"));
        if let Some(m) = k["fwmark"].as_u64().filter(|m| *m != 0) {
            key.push_str(&format!(" fwmark {m:#x}"));
        }
        for f in ["from", "iif"] {
            let x = s(k, f);
            if !x.is_empty() {
                key.push_str(&format!(" {f} {x}"));
            }
        }
        rows.push(["rule".into(), family, s(k, "table"), key, scalar(&e[1])]);
    }
    for e in list("nft") {
        let k = &e[0];
        let owners: Vec<String> = e[1]["owners"]
            .as_array()
            .into_iter()
            .flatten()
            .map(scalar)
            .collect();
        rows.push([
            "nft".into(),
            s(k, "family"),
            s(k, "name"),
            String::new(),
            owners.join(","),
        ]);
    }
    for e in list("addresses") {
        let k = &e[0];
        let a = s(k, "address");
        rows.push([
            "address".into(),
            fam(&a),
            String::new(),
            format!("{a} dev {}", s(k, "device")),
            scalar(&e[1]),
        ]);
    }
    columns(["TYPE", "FAMILY", "TABLE", "KEY", "OWNER"], &rows)
}

/// `get status`: id, phase and reason of every stored status.
pub fn statuses(v: &Value) -> String {
    let rows: Vec<[String; 3]> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(id, st)| {
            let short = id.splitn(3, '/').nth(2).unwrap_or(id).to_string();
            [short, s(st, "phase"), s(st, "reason")]
        })
        .collect();
    columns(["RESOURCE", "PHASE", "REASON"], &rows)
}

/// `get orphans`: the kernel objects nobody claims.
pub fn orphans(v: &Value) -> String {
    let rows: Vec<[String; 1]> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| [i.as_str().map_or_else(|| i.to_string(), str::to_string)])
        .collect();
    let mut o = columns(["OBJECT"], &rows);
    if !rows.is_empty() {
        let _ = writeln!(o, "\n{}", s(v, "remedy"));
    }
    o
}

/// `get <kind>`: KIND, NAME, PHASE, REASON; a suppressed resource says
/// which part masks it.
pub fn resources(v: &Value) -> String {
    let rows: Vec<[String; 4]> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let st = &i["status"];
            let mut reason = s(st, "reason");
            if s(st, "phase") == "Suppressed" {
                reason = s(st, "message");
            }
            [s(i, "kind"), s(i, "name"), s(st, "phase"), reason]
        })
        .collect();
    columns(["KIND", "NAME", "PHASE", "REASON"], &rows)
}

#[cfg(test)]
mod tests {
    //! Golden text for each verb: `ROUTERCTL_BLESS=1 cargo test -p
    //! routerctl text::` rewrites the files under `tests/golden/text/`.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn golden(name: &str, got: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/text")
            .join(format!("{name}.txt"));
        if std::env::var_os("ROUTERCTL_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, got).unwrap();
            return;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (ROUTERCTL_BLESS=1 writes it)", path.display()));
        assert_eq!(got, want, "{name}: text differs from {}", path.display());
    }

    fn input(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/text")
            .join(format!("{name}.json"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn status_text() {
        golden("status", &status(&input("status")));
    }

    #[test]
    fn describe_text() {
        golden("describe", &describe(&input("describe")));
    }

    #[test]
    fn explain_text() {
        golden("explain", &explain(&input("explain")));
    }

    #[test]
    fn events_text() {
        let v = input("events");
        golden("events", &events(v["items"].as_array().unwrap(), true));
    }

    #[test]
    fn get_tables() {
        golden("get-resources", &resources(&input("get-resources")));
        golden("get-dynamic", &parts(&input("get-dynamic")));
        golden("get-ledger", &ledger(&input("get-ledger")));
        golden("get-status", &statuses(&input("get-status")));
    }

    #[test]
    fn events_without_header_continue_a_timeline() {
        let v = input("events");
        let with = events(v["items"].as_array().unwrap(), true);
        let without = events(v["items"].as_array().unwrap(), false);
        assert_eq!(
            with.lines().skip(1).collect::<Vec<_>>(),
            without.lines().collect::<Vec<_>>()
        );
        assert!(events(&[], true).is_empty());
    }
}
