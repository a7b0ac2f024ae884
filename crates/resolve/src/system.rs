//! The daemon's resolver: hickory's stub resolver over the servers of a
//! `resolv.conf` (docs/adr/0014-dns-resolver.md).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::ResolverOpts;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};

use crate::{Answer, Family, ResolveError, ResolveFuture, Resolver};

/// Where the resolver configuration is read from by default.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Resolves through the name servers of a `resolv.conf` (`/etc/resolv.conf`
/// unless another file is given: `routerd serve --resolv-conf`).
///
/// The file is read again before every resolution and the resolver rebuilt
/// when its contents changed, so a DHCP client or resolvconf rewriting it
/// takes effect without a restart. hickory's own cache is off: routerd
/// schedules its own refreshes from the TTLs and must see a changed answer
/// when it asks.
pub struct SystemResolver {
    path: PathBuf,
    current: Mutex<Option<(Vec<u8>, Arc<TokioResolver>)>>,
}

impl std::fmt::Debug for SystemResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemResolver")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SystemResolver {
    /// A resolver reading `resolv_conf` (or [`RESOLV_CONF`]).
    pub fn new(resolv_conf: Option<PathBuf>) -> SystemResolver {
        SystemResolver {
            path: resolv_conf.unwrap_or_else(|| PathBuf::from(RESOLV_CONF)),
            current: Mutex::new(None),
        }
    }

    /// The configuration file in use.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn resolver(&self, name: &str) -> Result<Arc<TokioResolver>, ResolveError> {
        let failed = |message: String| ResolveError::Failed {
            name: name.to_string(),
            message,
        };
        let data = std::fs::read(&self.path)
            .map_err(|e| failed(format!("read {}: {e}", self.path.display())))?;
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((seen, r)) = current.as_ref()
            && *seen == data
        {
            return Ok(r.clone());
        }
        let (config, mut opts): (_, ResolverOpts) =
            hickory_resolver::system_conf::parse_resolv_conf(&data)
                .map_err(|e| failed(format!("{}: {e}", self.path.display())))?;
        opts.cache_size = 0;
        let r = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| failed(format!("resolver: {e}")))?;
        let r = Arc::new(r);
        *current = Some((data, r.clone()));
        Ok(r)
    }
}

impl Resolver for SystemResolver {
    fn resolve<'a>(&'a self, name: &'a str, family: Family) -> ResolveFuture<'a> {
        Box::pin(async move {
            let r = self.resolver(name)?;
            let rtype = match family {
                Family::V4 => RecordType::A,
                Family::V6 => RecordType::AAAA,
            };
            // A trailing dot: the exact name, no search domains.
            let fqdn = format!("{}.", name.trim_end_matches('.'));
            let lookup = match r.lookup(fqdn.as_str(), rtype).await {
                Ok(l) => l,
                Err(e) if e.is_no_records_found() || e.is_nx_domain() => {
                    return Err(ResolveError::NoRecords {
                        name: name.to_string(),
                        family,
                    });
                }
                Err(e) => {
                    return Err(ResolveError::Failed {
                        name: name.to_string(),
                        message: e.to_string(),
                    });
                }
            };
            let mut answer = Answer::default();
            for rec in lookup.answers() {
                let addr = match &rec.data {
                    RData::A(a) if family == Family::V4 => std::net::IpAddr::V4(a.0),
                    RData::AAAA(a) if family == Family::V6 => std::net::IpAddr::V6(a.0),
                    _ => continue,
                };
                let ttl = std::time::Duration::from_secs(u64::from(rec.ttl));
                answer.ttl = Some(answer.ttl.map_or(ttl, |t| t.min(ttl)));
                if !answer.addresses.contains(&addr) {
                    answer.addresses.push(addr);
                }
            }
            if answer.addresses.is_empty() {
                return Err(ResolveError::NoRecords {
                    name: name.to_string(),
                    family,
                });
            }
            Ok(answer)
        })
    }
}
