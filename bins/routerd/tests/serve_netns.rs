#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `routerd serve --netns NAME` started from the test's own namespace, so
//! `/sys` is not the namespace's (what `unshare -n` gives too): the
//! daemon must report the namespace's links over netlink, follow address
//! changes by notification, and feed systemd's watchdog through
//! `NOTIFY_SOCKET` while its loop runs. Root only; the namespace is the
//! test's own and deleted on drop.

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use routerd_api::client::Client;
use serde_json::Value;

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Netns(String);

impl Netns {
    fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.0];
        v.extend_from_slice(args);
        sh(&v);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Kills the daemon if the test fails before stopping it.
struct Daemon(Option<Child>);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

const CONFIG: &str = "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: up}
spec: {ifname: rdn-a}
---
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: nocarrier}
spec: {ifname: rdn-c}
---
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: elsewhere}
spec: {ifname: rdn-x}
";

fn status_of(snap: &Value, name: &str) -> Value {
    snap[format!("net.routerd.net/v1alpha1/Interface/{name}")].clone()
}

#[test]
#[ignore = "needs root: network namespaces"]
fn serve_in_a_netns_without_its_sysfs_sees_its_links_and_feeds_the_watchdog() {
    let ns = Netns(format!("rdn-{}", std::process::id()));
    sh(&["ip", "netns", "add", &ns.0]);
    ns.ip(&["link", "set", "lo", "up"]);
    ns.ip(&[
        "link", "add", "rdn-a", "type", "veth", "peer", "name", "rdn-b",
    ]);
    ns.ip(&[
        "link", "add", "rdn-c", "type", "veth", "peer", "name", "rdn-d",
    ]);
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "rdn-a"]);
    for l in ["rdn-a", "rdn-b", "rdn-c"] {
        ns.ip(&["link", "set", l, "up"]);
    }
    assert!(
        !std::path::Path::new("/sys/class/net/rdn-a").exists(),
        "this test's /sys shows the daemon's namespace, so it proves nothing"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let socket = dir.path().join("routerd.sock");
    let child = Command::new(env!("CARGO_BIN_EXE_routerd"))
        .args(["serve", "--netns", &ns.0, "--config"])
        .arg(dir.path().join("config.yaml"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--socket")
        .arg(&socket)
        // No resync within the test: address changes must come by
        // notification.
        .args(["--resync", "1h"])
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("routerd.log")).unwrap())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(Some(child));
    let log = || std::fs::read_to_string(dir.path().join("routerd.log")).unwrap_or_default();

    // READY, then the watchdog notifications of a running loop.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut ready, mut watchdog) = (false, 0);
    let mut buf = [0u8; 512];
    while !(ready && watchdog >= 3) {
        assert!(
            Instant::now() < deadline,
            "ready={ready} watchdog={watchdog}; log:\n{}",
            log()
        );
        if let Ok(n) = notify.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]);
            ready |= msg.lines().any(|l| l == "READY=1");
            if msg.lines().any(|l| l == "WATCHDOG=1") {
                watchdog += 1;
            }
        }
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = Client::new(&socket);
    let snap: Value = rt.block_on(client.get("/get?subject=status")).unwrap();
    let up = status_of(&snap, "up");
    assert_eq!(up["phase"], "Up", "{up}; log:\n{}", log());
    assert_eq!(up["primaryIPv4"], "192.0.2.1", "{up}");
    let nc = status_of(&snap, "nocarrier");
    assert_eq!(
        (&nc["phase"], &nc["reason"]),
        (&"Down".into(), &"NoCarrier".into()),
        "{nc}"
    );
    let gone = status_of(&snap, "elsewhere");
    assert_eq!(gone["reason"], "InterfaceNotFound", "{gone}");

    // An IPv6 address arrives: the status follows without a resync.
    ns.ip(&["addr", "add", "2001:db8::1/64", "dev", "rdn-a", "nodad"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let snap: Value = rt.block_on(client.get("/get?subject=status")).unwrap();
        let v6 = status_of(&snap, "up")["ipv6Addresses"].clone();
        if v6
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "2001:db8::1/64"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "{v6}; log:\n{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut child = daemon.0.take().unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let st = child.wait().unwrap();
    assert!(st.success(), "{st}; log:\n{}", log());
    // stderr is a file here, as under journald: plain text, no colour codes.
    let text = log();
    assert!(text.contains("INFO"), "the daemon logged nothing:\n{text}");
    assert!(
        !text.contains('\x1b'),
        "ANSI escapes in a log file:\n{text}"
    );
}
