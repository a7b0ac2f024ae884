//! `routerctl probe -f FILE... NAME [--count N] [--interval D] [-o text|json]`.
//!
//! Runs one HealthCheck in the foreground with the binding the daemon would
//! derive for it, and prints every result with its evidence and each phase
//! transition: the operator's way to ask "does this probe work, and over
//! which path?". The probe and the state machine are the daemon's own
//! (`routerd-health`), so what this prints is what the daemon would see.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::Result;
use chrono::Utc;
use routerd_health::runtime::{NetProber, probe_with_timeout};
use routerd_health::time::rfc3339_nano;
use routerd_health::{
    BindingOverride, CheckConfig, Evidence, FailureKind, HealthState, Phase, ProbeReport,
    derive_source,
};
use routerd_model::GoDuration;
use serde::Serialize;
use serde_json::Value;

use crate::exit::{DATA, Exit, NO, OK, USAGE};
use crate::input;
use crate::output::{Format, out, print_doc};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (`-` for standard input); repeat to combine files.
    #[arg(short = 'f', long = "file", required = true)]
    files: Vec<String>,
    /// HealthCheck name.
    name: String,
    /// Number of probes.
    #[arg(long, default_value_t = 3)]
    count: u32,
    /// Time between probes (Go duration; default the check's interval).
    #[arg(long)]
    interval: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: Format,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultDoc {
    seq: u32,
    time: String,
    result: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_ms: Option<f64>,
    evidence: Value,
    phase: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    transition: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    check: String,
    protocol: &'static str,
    target: String,
    timeout: String,
    binding: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    mark: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_carrier: Option<&'static str>,
    derived_from: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fail_closed: Option<String>,
    results: Vec<ResultDoc>,
    status: routerd_model::Status,
}

/// Addresses per device of this namespace, for the probe source address
/// the daemon derives. `getifaddrs` asks rtnetlink, so it sees the
/// namespace routerctl runs in whatever `/sys` shows.
fn device_addresses() -> BTreeMap<String, Vec<IpAddr>> {
    let mut out: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for a in nix::ifaddrs::getifaddrs().into_iter().flatten() {
        let Some(addr) = a.address else { continue };
        let ip = if let Some(v4) = addr.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        out.entry(a.interface_name).or_default().push(ip);
    }
    out
}

/// The device's carrier as sysfs reports it, for the header: a probe
/// pinned to a device without carrier cannot pass.
fn carrier(dev: &str) -> &'static str {
    match std::fs::read_to_string(format!("/sys/class/net/{dev}/carrier")) {
        Ok(s) if s.trim() == "1" => "up",
        Ok(_) => "down",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "missing",
        // EINVAL: the link is administratively down.
        Err(_) => "down",
    }
}

pub fn run(args: Args) -> Result<i32> {
    let (loaded, diags) = input::load_startup(&args.files)?;
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    if !errors.is_empty() {
        for d in &errors {
            eprintln!("{d}");
        }
        return Err(Exit::new(
            DATA,
            format!("config is invalid: {} error(s)", errors.len()),
        )
        .into());
    }
    let source = derive_source(&loaded.resources, &args.name, &device_addresses());
    let overrides = BindingOverride {
        source_address: source.address,
        ..BindingOverride::default()
    };
    let cfg = CheckConfig::from_resources(&loaded.resources, &args.name, &overrides)
        .map_err(|e| Exit::new(DATA, e.to_string()))?;
    if args.count == 0 {
        return Err(Exit::new(USAGE, "--count must be at least 1").into());
    }
    let interval = match args.interval.as_deref() {
        None => cfg.interval,
        Some(s) => match GoDuration::parse(s) {
            Ok(d) if d.is_positive() => d.to_std(),
            Ok(_) => return Err(Exit::new(USAGE, "--interval must be positive").into()),
            Err(e) => return Err(Exit::new(USAGE, format!("--interval: {e}")).into()),
        },
    };
    if !cfg.enabled {
        eprintln!(
            "note: HealthCheck {} has enabled: false; probing anyway",
            cfg.name
        );
    }

    let b = &cfg.probe.binding;
    let d = &cfg.derivation;
    let mut warnings = Vec::new();
    if !d.conflicting_marks.is_empty() {
        warnings.push(format!(
            "candidates disagree on the mark ({}); the probe gets none",
            d.conflicting_marks
                .iter()
                .map(|m| format!("{m:#x}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !d.conflicting_devices.is_empty() {
        warnings.push(format!(
            "candidates disagree on the device ({}); the probe is not bound",
            d.conflicting_devices.join(", ")
        ));
    }
    if !source.conflicting.is_empty() {
        warnings.push(format!(
            "candidates disagree on the source address ({}); the kernel chooses it",
            source
                .conflicting
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !b.is_pinned() {
        warnings.push("the probe is not pinned: it follows the main routing table".into());
    }
    let mut report = Report {
        check: cfg.name.clone(),
        protocol: cfg.probe.protocol.as_str(),
        target: cfg.probe.endpoint(),
        timeout: GoDuration(i64::try_from(cfg.probe.timeout.as_nanos()).unwrap_or(i64::MAX))
            .to_string(),
        binding: b.describe(),
        mark: b.mark.map(|m| format!("{m:#x}")),
        device: b.device.clone(),
        device_carrier: b.device.as_deref().map(carrier),
        derived_from: d.referenced_by.clone(),
        warnings,
        fail_closed: cfg.fail_closed.clone(),
        results: Vec::new(),
        status: Default::default(),
    };
    let text = args.output == Format::Text;
    if text {
        let mut h = format!(
            "HealthCheck {}: {} {} timeout {} rise {} fall {}\npath: {}",
            report.check,
            report.protocol,
            report.target,
            report.timeout,
            cfg.thresholds.healthy,
            cfg.thresholds.unhealthy,
            report.binding
        );
        if let Some(c) = report.device_carrier {
            h.push_str(&format!(" (carrier {c})"));
        }
        if !report.derived_from.is_empty() {
            h.push_str(&format!(
                "\nderived from: {}",
                report.derived_from.join(", ")
            ));
        }
        for w in &report.warnings {
            h.push_str(&format!("\nwarning: {w}"));
        }
        if let Some(f) = &report.fail_closed {
            h.push_str(&format!("\nfail closed: {f}"));
        }
        out(&(h + "\n"))?;
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut state = HealthState::new(cfg.identity(), cfg.thresholds);
    state.start(Utc::now());
    let prober = NetProber::new();
    for seq in 1..=args.count {
        let r = match &cfg.fail_closed {
            Some(msg) => ProbeReport::failed(msg.clone()).with_evidence(Evidence {
                failure_kind: Some(FailureKind::Other),
                egress_interface: b.device.clone(),
                ..Evidence::default()
            }),
            None => rt.block_on(probe_with_timeout(&prober, &cfg.probe)),
        };
        let now = Utc::now();
        let tr = state.apply(now, &r);
        let doc = ResultDoc {
            seq,
            time: rfc3339_nano(now),
            result: r.outcome.as_str(),
            message: r.message.clone(),
            rtt_ms: r.rtt.map(|d| d.as_secs_f64() * 1000.0),
            evidence: r.evidence.to_json(),
            phase: tr.to.as_str(),
            transition: tr
                .phase_changed()
                .then(|| format!("{} -> {}", tr.from, tr.to)),
        };
        if text {
            let mut line = format!("#{seq} {} {} {}", doc.time, doc.result, doc.message);
            if !r.evidence.is_empty() {
                let ev: Vec<String> = r
                    .evidence
                    .attributes()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                line.push_str(&format!("\n   evidence: {}", ev.join(" ")));
            }
            if let Some(t) = &doc.transition {
                line.push_str(&format!("\n   phase {t}"));
            }
            out(&(line + "\n"))?;
        }
        report.results.push(doc);
        if seq < args.count {
            // The timer must be created inside the runtime.
            let pause = interval.max(Duration::from_millis(1));
            rt.block_on(async { tokio::time::sleep(pause).await });
        }
    }
    report.status = state.status();
    let healthy = matches!(state.phase(), Phase::Healthy | Phase::Passing);
    if text {
        let s = &report.status;
        out(&format!(
            "phase {} (consecutivePassed {}, consecutiveFailed {})\n",
            state.phase(),
            s.get("consecutivePassed").cloned().unwrap_or_default(),
            s.get("consecutiveFailed").cloned().unwrap_or_default()
        ))?;
    } else {
        print_doc(&report, args.output)?;
    }
    Ok(if healthy { OK } else { NO })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(port: u16) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            f.path(),
            format!(
                "apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {{name: local}}
spec: {{target: 127.0.0.1, protocol: tcp, port: {port}, interval: 100ms, timeout: 500ms}}
"
            ),
        )
        .unwrap();
        f
    }

    fn args(f: &tempfile::NamedTempFile, name: &str) -> Args {
        Args {
            files: vec![f.path().to_string_lossy().to_string()],
            name: name.into(),
            count: 2,
            interval: Some("10ms".into()),
            output: Format::Json,
        }
    }

    #[test]
    fn healthy_probe_exits_ok_and_failing_probe_exits_no() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming() {
                drop(s);
            }
        });
        let f = config(port);
        assert_eq!(run(args(&f, "local")).unwrap(), OK);

        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let f = config(port);
        assert_eq!(run(args(&f, "local")).unwrap(), NO, "refused: Failing");
    }

    #[test]
    fn unknown_check_and_bad_flags_have_their_exit_codes() {
        let f = config(1);
        let err = run(args(&f, "nope")).unwrap_err();
        assert_eq!(err.downcast_ref::<Exit>().unwrap().code, DATA);
        let mut a = args(&f, "local");
        a.interval = Some("soon".into());
        let err = run(a).unwrap_err();
        assert_eq!(err.downcast_ref::<Exit>().unwrap().code, USAGE);
    }
}
