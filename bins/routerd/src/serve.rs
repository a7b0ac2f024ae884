//! `routerd serve`: the daemon. Builds the adapters (sled store, netlink
//! dataplane, kernel links, health scheduler, control socket, metrics),
//! wires signals and systemd notifications, then hands over to
//! `routerd_engine::daemon::run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use routerd_engine::control::{self, Access};
use routerd_engine::daemon::{self, Handler, Key, Options, Shared, SystemClock};
use routerd_engine::health::RuntimeHealth;
use routerd_engine::links::{self, KernelLinks};
use routerd_render::linux::{LinuxDataplane, netns};
use routerd_render::{Ownership, ReconcileOptions};
use routerd_store::{Store, StoreOptions};

/// Arguments of `routerd serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The operator's startup configuration (only read); the drop-in
    /// directory beside it (`config.d/` for `config.yaml`) is loaded too,
    /// and holds the managed file of `routerctl apply`.
    #[arg(long, default_value = "/etc/routerd/config.yaml")]
    config: PathBuf,
    /// State directory (the store lives here).
    #[arg(long, default_value = "/var/lib/routerd")]
    state_dir: PathBuf,
    /// Control socket.
    #[arg(long, default_value = "/run/routerd/routerd.sock")]
    socket: PathBuf,
    /// Group (name or numeric id) allowed on the control socket besides
    /// root: every verb, `apply` and `delete` included.
    #[arg(long)]
    socket_group: Option<String>,
    /// Group (name or numeric id) allowed the read-only verbs (status, get,
    /// describe, events, explain, dynamic list); other requests are refused
    /// with 403. The socket becomes connectable by everyone (0666) and each
    /// request is authorised by the peer's credentials.
    #[arg(long)]
    socket_read_group: Option<String>,
    /// Serve Prometheus metrics on this address (for example 127.0.0.1:9469).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Full resync period (drift repair even without netlink events).
    #[arg(long, default_value = "30s")]
    resync: String,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
    /// Log filter (tracing env-filter syntax).
    #[arg(long, env = "ROUTERD_LOG", default_value = "info")]
    log: String,
    /// Work inside this network namespace (`ip netns` name or path).
    #[arg(long)]
    netns: Option<String>,
    /// If the state store cannot be opened (damaged, truncated, newer
    /// format), move it aside to `<dir>.broken-<UTC time>` and start with a
    /// fresh one; a store that opens is used as it is.
    #[arg(long)]
    recover_state: bool,
    /// Configuration generations kept in the store (the newest good one is
    /// kept besides, whatever its age).
    #[arg(long, default_value_t = routerd_store::StoreOptions::default().generation_history)]
    generation_history: usize,
    /// The resolver configuration IPAddressSet names are resolved with
    /// (its `nameserver` lines; read again when it changes).
    #[arg(long, env = "ROUTERD_RESOLV_CONF", default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// Events kept in the store (also bounded by --event-bytes).
    #[arg(long, default_value_t = routerd_store::StoreOptions::default().event_capacity)]
    event_history: u64,
    /// Encoded event bytes kept in the store.
    #[arg(long, default_value_t = routerd_store::StoreOptions::default().event_bytes)]
    event_bytes: u64,
    /// What a field no type declares does: `error` rejects the
    /// configuration; `warn` loads it with one logged warning (and a
    /// `routerd.config.warning` event) per field, as routerd, which drops
    /// such fields silently, would. A `Router` document's
    /// `spec.unknownFields: warn` does the same for its own resources.
    #[arg(
        long = "unknown-fields",
        value_name = "error|warn",
        default_value = "error"
    )]
    unknown_fields: routerd_model::UnknownFields,
    /// This instance's Node name in EgressGateway groups (the same
    /// configuration on every member names them all). Defaults to the
    /// hostname when the configuration declares an EgressGateway.
    #[arg(long, env = "ROUTERD_NODE_NAME")]
    node_name: Option<String>,
    /// Runtime directory of keepalived, conntrackd, the notify FIFO and the
    /// suitability files (one per routerd instance).
    #[arg(
        long,
        env = "ROUTERD_GATEWAY_DIR",
        default_value = "/run/routerd/gateway"
    )]
    gateway_dir: PathBuf,
}

/// The node name of this instance, if it takes part in gateway groups:
/// `--node-name`, else the hostname when the startup file mentions an
/// EgressGateway.
fn gateway_node(args: &Args) -> Option<String> {
    if let Some(n) = args
        .node_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        return Some(n.to_string());
    }
    let text = std::fs::read_to_string(&args.config).ok()?;
    if !text.contains("EgressGateway") {
        return None;
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

fn group_id(g: &str) -> Result<u32> {
    if let Ok(n) = g.parse() {
        return Ok(n);
    }
    let text = std::fs::read_to_string("/etc/group").context("read /etc/group")?;
    text.lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(g))
                .then(|| f.nth(1))
                .flatten()
                .and_then(|id| id.parse().ok())
        })
        .with_context(|| format!("unknown group {g:?}"))
}

/// Opens the store, or with `--recover-state` replaces one that cannot be
/// opened. The error of a store that cannot be opened is one paragraph
/// naming the directory and the remedy, printed as it is.
fn open_store(args: &Args) -> Result<Store> {
    let dir = args.state_dir.join("store");
    let options = StoreOptions {
        generation_history: args.generation_history.max(1),
        event_capacity: args.event_history.max(1),
        event_bytes: args.event_bytes,
        ..StoreOptions::default()
    };
    if !args.recover_state {
        return Ok(Store::open_sled_with(&dir, options)?);
    }
    let (store, recovery) = Store::open_or_recover_sled(&dir, options, chrono::Utc::now())?;
    match recovery {
        Some(r) => tracing::warn!(
            moved_to = %r.moved_to.display(),
            cause = %r.cause,
            "--recover-state: the state store could not be opened; it was moved aside and a fresh one started"
        ),
        None => tracing::info!(
            dir = %dir.display(),
            "--recover-state: the state store opens; nothing to recover"
        ),
    }
    Ok(store)
}

/// Colour codes only reach a terminal: under journald or a pipe they are
/// noise in every line an operator greps.
fn init_logging(args: &Args) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if args.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub(crate) fn run(args: Args) -> Result<i32> {
    init_logging(&args);
    if let Some(ns) = &args.netns {
        netns::enter(ns).with_context(|| format!("enter network namespace {ns}"))?;
    }
    let resync = routerd_model::GoDuration::parse(&args.resync)
        .map_err(|e| anyhow::anyhow!("--resync: {e}"))?
        .to_std();
    let group = args.socket_group.as_deref().map(group_id).transpose()?;
    let read_group = args
        .socket_read_group
        .as_deref()
        .map(group_id)
        .transpose()?;
    let access = Access { group, read_group };
    // Two workers: the loop plus probes and the control socket.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(args, resync.max(Duration::from_secs(1)), access))
}

async fn serve(args: Args, resync: Duration, access: Access) -> Result<i32> {
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("create {}", args.state_dir.display()))?;
    let store = Arc::new(open_store(&args)?);
    let options = Options {
        config_path: args.config.clone(),
        resync,
        unknown_fields: args.unknown_fields,
    };
    let shared = Shared::new(options, store, Arc::new(SystemClock))?;
    shared.set_resolver(Arc::new(routerd_resolve::system::SystemResolver::new(
        Some(args.resolv_conf.clone()),
    )));
    // Plugins forked by a previous routerd that was killed mid-run would
    // otherwise live on; kill them before any plugin of ours starts.
    let groups = args.state_dir.join("plugin-groups");
    match shared.plugins().track_groups(groups.clone()) {
        Ok(swept) => {
            for g in &swept.killed {
                tracing::warn!(plugin = %g.plugin, pgid = g.pgid, executable = %g.executable, "killed the process group of a plugin run left behind by a previous routerd");
            }
            for (file, reason) in &swept.skipped {
                tracing::debug!(file = %file.display(), %reason, "stale plugin process-group record removed");
            }
        }
        Err(e) => {
            tracing::warn!(dir = %groups.display(), error = %e, "cannot sweep or record plugin process groups; plugins left behind by a killed routerd are not cleaned up")
        }
    }
    crate::memory::release_free_heap();

    // EgressGateway groups: keepalived and conntrackd under routerd.
    if let Some(node) = gateway_node(&args) {
        tracing::info!(node = %node, dir = %args.gateway_dir.display(), "egress gateway agent");
        shared.set_gateway(Arc::new(routerd_engine::gateway::GatewayAgent::spawn(
            node,
            routerd_keepalived::plan::Paths::new(&args.gateway_dir),
            routerd_keepalived::supervise::SystemEffects::default(),
        )));
    }

    // Conntrack access for `flushOnFailover: deadPath`, in this namespace.
    // Without it routerd still runs; a flush it cannot do is reported.
    match routerd_conntrack::NetlinkFlusher::open() {
        Ok(f) => shared.set_conntrack_flusher(Arc::new(f)).await,
        Err(e) => {
            tracing::warn!(error = %e, "no conntrack access; flushOnFailover cannot delete connections")
        }
    }

    let ownership = Ownership::default();
    let dataplane = LinuxDataplane::new(crate::apply::backends(), ownership.clone())
        .context("open the netlink dataplane")?;

    // Netlink notifications (drift, carrier) wake the loop.
    let (dp_tx, dp_rx) = tokio::sync::mpsc::channel::<()>(64);
    let dp_tx_nft = dp_tx.clone();
    match routerd_render::linux::events::EventStream::spawn(None) {
        Ok(rx) => {
            std::thread::Builder::new()
                .name("routerd-events-bridge".into())
                .spawn(move || {
                    while rx.recv().is_ok() {
                        // Coalesce bursts: a full queue already means "look again".
                        let _ = dp_tx.try_send(());
                    }
                })?;
        }
        Err(e) => {
            tracing::warn!(error = %e, "no netlink event stream; drift is repaired on resync only")
        }
    }

    // Links and addresses over rtnetlink, in the namespace this process
    // runs in (sysfs may belong to another one). Address changes of either
    // family refresh the link statuses at once.
    let kernel_links = KernelLinks::open().context("open netlink for links")?;
    let links_shared = shared.clone();
    let _link_watch = match links::watch(move || links_shared.trigger(Key::Links)) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "no link notifications; link statuses follow on resync only");
            None
        }
    };

    if let Err(e) = routerd_engine::nftwatch::spawn(dp_tx_nft) {
        tracing::warn!(error = %e, "no nftables notifications; nft drift is repaired on resync only");
    }

    let listener = control::bind_with(&args.socket, access)
        .with_context(|| format!("bind control socket {}", args.socket.display()))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut stop_ctl = stop_rx.clone();
    let ctl = tokio::spawn(control::serve(
        listener,
        Arc::new(Handler(shared.clone())),
        access,
        async move {
            let _ = stop_ctl.wait_for(|s| *s).await;
        },
    ));
    if let Some(addr) = args.metrics_listen {
        let shared = shared.clone();
        let mut stop_m = stop_rx.clone();
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind metrics {addr}"))?;
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let shared = shared.clone();
                async move { shared.metrics().await }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_m.wait_for(|s| *s).await;
                })
                .await;
        });
    }

    // SIGHUP reloads the configuration; SIGTERM/SIGINT drain and exit.
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let reload_shared = shared.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading configuration");
            reload_shared.trigger(Key::Reload);
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = int.recv() => tracing::info!("SIGINT: draining"),
        }
    };

    // systemd: READY after the first step, WATCHDOG while the loop comes
    // round (a loop wedged in a step starves it and systemd restarts us).
    let ready = std::sync::atomic::AtomicBool::new(false);
    let commit_shared = shared.clone();
    let on_step = move |r: &routerd_engine::core::StepReport| {
        if r.full {
            crate::memory::release_free_heap();
        }
        if r.dataplane_error.is_none() && !ready.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            let s = commit_shared.clone();
            tokio::spawn(async move { daemon::commit_generation(&s).await });
            tracing::info!("ready");
        }
    };
    let watchdog = match sd_notify::watchdog_enabled() {
        Some(timeout) => Some(
            routerd_engine::watchdog::Feeder::spawn(
                shared.heartbeat().clone(),
                timeout / 2,
                || {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                },
            )
            .context("start the watchdog feeder")?,
        ),
        None => None,
    };

    let _ = ReconcileOptions::default();
    daemon::run(
        shared.clone(),
        dataplane,
        kernel_links,
        RuntimeHealth::default(),
        Some(dp_rx),
        on_step,
        shutdown,
    )
    .await;
    // The loop is gone; the feeder would only report it wedged.
    drop(watchdog);
    // keepalived releases the gateway addresses on the way out, so a peer
    // takes the role at once instead of after the advert timeout.
    if let Some(g) = shared.gateway() {
        g.shutdown();
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), ctl).await;
    let _ = std::fs::remove_file(&args.socket);
    tracing::info!("stopped; kernel state left in place");
    Ok(0)
}
