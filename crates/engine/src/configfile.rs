//! The configuration files (docs/adr/0008-api-applied-config.md).
//!
//! The startup configuration is the operator's file plus the drop-in
//! directory beside it (`config.yaml` → `config.d/*.yaml`). routerd never
//! writes the operator's file or the operator's drop-ins: resources applied
//! through the control API live in one managed file of the drop-in
//! directory, [`MANAGED_FILE`], which routerd rewrites atomically. A
//! resource id defined both by the operator and in the managed file takes
//! the managed definition; ids the operator's files define twice stay a
//! validation error.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use routerd_model::validate::{Context, validate_with_unmanaged};
use routerd_model::{Diagnostic, Loaded, Resource, UnknownFields, Unmanaged};

/// The managed file's name inside the drop-in directory. Sorted after
/// operator drop-ins named `00-` to `49-`, which only matters to readers:
/// the managed layer wins whatever the order.
pub const MANAGED_FILE: &str = "50-routerctl.yaml";

/// The first lines of the managed file.
const MANAGED_HEADER: &str = "# Managed by routerd: resources applied with `routerctl apply` and removed\n\
# with `routerctl delete`. routerd rewrites this file; a resource defined here\n\
# takes precedence over the same resource in the operator's files.\n";

/// Where the configuration files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The operator's file (`--config`), as given: a symlink stays one.
    pub operator: PathBuf,
    /// The drop-in directory: the operator's file name without its
    /// extension, plus `.d`, in the same directory.
    pub dropin: PathBuf,
    /// `--unknown-fields`: how fields no type declares are reported.
    pub unknown_fields: UnknownFields,
}

impl Layout {
    /// The layout around the operator's file `config`.
    pub fn for_config(config: &Path) -> Layout {
        let stem = config
            .file_stem()
            .map_or_else(|| "config".into(), |s| s.to_string_lossy().into_owned());
        Layout {
            operator: config.to_path_buf(),
            dropin: config.with_file_name(format!("{stem}.d")),
            unknown_fields: UnknownFields::Error,
        }
    }

    /// The same layout, reporting unknown fields per `mode`.
    pub fn with_unknown_fields(mut self, mode: UnknownFields) -> Layout {
        self.unknown_fields = mode;
        self
    }

    /// The managed file.
    pub fn managed(&self) -> PathBuf {
        self.dropin.join(MANAGED_FILE)
    }
}

/// Why the configuration files could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file or the drop-in directory could not be read.
    #[error("read {}: {source}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The configuration is invalid; one located diagnostic per line.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// The managed file could not be written.
    #[error("write {}: {source}", path.display())]
    Write {
        /// The path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A resource could not be serialized.
    #[error("serialize {id}: {message}")]
    Serialize {
        /// Resource id.
        id: String,
        /// Cause.
        message: String,
    },
}

/// The text of every configuration file, as read.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `(name, text)` of the operator's file, then of the operator's
    /// drop-ins in name order.
    pub operator: Vec<(String, String)>,
    /// `(name, text)` of the managed file, when it exists.
    pub managed: Option<(String, String)>,
    /// How fields no type declares are reported.
    pub unknown_fields: UnknownFields,
}

/// The startup configuration assembled from the files.
#[derive(Debug, Clone)]
pub struct Assembled {
    /// The resources, validated together.
    pub resources: Vec<Resource>,
    /// The managed layer.
    pub managed: Vec<Resource>,
    /// Which operator file defines each id (managed overrides included).
    pub defined_in: BTreeMap<String, String>,
    /// Warnings of decoding and validation (unknown fields in `warn` mode,
    /// unmanaged routerd kinds, ...), one located line each.
    pub warnings: Vec<String>,
    /// Resources of routerd kinds kept without being managed.
    pub unmanaged: Vec<Unmanaged>,
    /// The whole configuration as one document: the operator's file verbatim
    /// when nothing else contributes, else its `Router` envelope (metadata,
    /// `spec.reconcile`) around every resource. This is what a generation
    /// stores and what boot falls back to.
    pub text: String,
    /// `spec.reconcile` of the operator's `Router` documents.
    pub reconcile: crate::core::ReconcileSettings,
}

/// Reads the operator's file, the operator's drop-ins and the managed file.
/// A missing drop-in directory or managed file is an empty one.
pub fn read(layout: &Layout) -> Result<Sources, ConfigError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConfigError::Read { path, source }
    };
    let text = std::fs::read_to_string(&layout.operator).map_err(read_err(&layout.operator))?;
    let mut operator = vec![(layout.operator.display().to_string(), text)];
    let mut names: Vec<PathBuf> = Vec::new();
    match std::fs::read_dir(&layout.dropin) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(read_err(&layout.dropin)(e)),
        Ok(dir) => {
            for entry in dir {
                let entry = entry.map_err(read_err(&layout.dropin))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
                if yaml && !name.starts_with('.') && name != MANAGED_FILE {
                    names.push(entry.path());
                }
            }
        }
    }
    names.sort();
    for path in names {
        // Follows symlinks; a directory named *.yaml is an error worth seeing.
        let text = std::fs::read_to_string(&path).map_err(read_err(&path))?;
        operator.push((path.display().to_string(), text));
    }
    let managed_path = layout.managed();
    let managed = match std::fs::read_to_string(&managed_path) {
        Ok(t) => Some((managed_path.display().to_string(), t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(read_err(&managed_path)(e)),
    };
    Ok(Sources {
        operator,
        managed,
        unknown_fields: layout.unknown_fields,
    })
}

/// Decodes one document set without validating it as a whole: the
/// resources, and whether it carried a `Router` envelope.
pub fn decode(name: &str, text: &str) -> Result<(Vec<Resource>, bool), ConfigError> {
    let mut l = Loaded::new();
    l.add_file(name, text);
    let errors: Vec<String> = l
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    if errors.is_empty() {
        Ok((l.resources, !l.routers.is_empty()))
    } else {
        Err(ConfigError::Invalid(errors))
    }
}

/// Where a resource of the assembled list came from.
enum Origin {
    /// Operator file `file`, resource `index` of that file.
    Operator(usize, usize),
    /// The managed layer (from the file when it was decoded from it).
    Managed(Option<usize>),
}

impl Sources {
    /// The managed file's resources (none when it does not exist).
    pub fn managed_resources(&self) -> Result<Vec<Resource>, ConfigError> {
        match &self.managed {
            Some((name, text)) => decode(name, text).map(|(r, _)| r),
            None => Ok(Vec::new()),
        }
    }

    /// The resources the operator's files define, by id, with the file
    /// that defines each (decoding only).
    pub fn operator_ids(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (name, text) in &self.operator {
            let mut l = Loaded::new();
            l.add_file(name, text);
            for r in &l.resources {
                out.entry(r.id().to_string())
                    .or_insert_with(|| name.clone());
            }
        }
        out
    }

    /// Assembles and validates the configuration, with `managed` as the
    /// managed layer (`None`: the managed file's content).
    pub fn assemble(&self, managed: Option<Vec<Resource>>) -> Result<Assembled, ConfigError> {
        let mut errors: Vec<String> = Vec::new();
        let mut warnings = Vec::new();
        let mode = self.unknown_fields;
        // Decodes one file, collecting its decode errors and warnings.
        let mut load = |name: &str, text: &str| {
            let mut l = Loaded::with_unknown_fields(mode);
            l.add_file(name, text);
            for d in &l.diagnostics {
                if d.is_error() {
                    errors.push(d.to_string());
                } else {
                    warnings.push(d.to_string());
                }
            }
            l
        };
        let files: Vec<Loaded> = self
            .operator
            .iter()
            .map(|(name, text)| load(name, text))
            .collect();
        let managed_file = match (&managed, &self.managed) {
            (None, Some((name, text))) => Some(load(name, text)),
            _ => None,
        };
        let managed: Vec<Resource> = match (managed, &managed_file) {
            (Some(m), _) => m,
            (None, Some(l)) => l.resources.clone(),
            (None, None) => Vec::new(),
        };
        let overridden: HashMap<String, ()> =
            managed.iter().map(|r| (r.id().to_string(), ())).collect();

        let mut resources: Vec<Resource> = Vec::new();
        let mut origins: Vec<Origin> = Vec::new();
        let mut defined_in = BTreeMap::new();
        for (fi, l) in files.iter().enumerate() {
            for (ri, r) in l.resources.iter().enumerate() {
                let id = r.id().to_string();
                defined_in
                    .entry(id.clone())
                    .or_insert_with(|| l.files.first().cloned().unwrap_or_default());
                if !overridden.contains_key(&id) {
                    resources.push(r.clone());
                    origins.push(Origin::Operator(fi, ri));
                }
            }
        }
        for (mi, r) in managed.iter().enumerate() {
            resources.push(r.clone());
            origins.push(Origin::Managed(managed_file.as_ref().map(|_| mi)));
        }

        // Unmanaged resources are operator-only: the managed layer holds
        // what the control API applied, which never includes them.
        let unmanaged: Vec<Unmanaged> = files.iter().flat_map(|l| l.unmanaged.clone()).collect();
        let mut seen = std::collections::HashSet::new();
        for u in &unmanaged {
            if !seen.insert(u.id()) {
                errors.push(format!("duplicate resource {}", u.id()));
            }
        }
        for f in validate_with_unmanaged(&resources, &unmanaged, Context::Startup) {
            let mut d: Diagnostic = f.diagnostic;
            let located = match f.index.and_then(|i| origins.get(i)) {
                Some(Origin::Operator(fi, ri)) => files.get(*fi).map(|l| (l, *ri)),
                Some(Origin::Managed(Some(mi))) => managed_file.as_ref().map(|l| (l, *mi)),
                _ => None,
            };
            if let Some((l, i)) = located {
                if l.already_reported(i, d.path.as_deref()) {
                    continue;
                }
                l.locate(i, &mut d);
            }
            if d.is_error() {
                errors.push(d.to_string());
            } else {
                warnings.push(d.to_string());
            }
        }
        if !errors.is_empty() {
            return Err(ConfigError::Invalid(errors));
        }
        let text = match self.operator.as_slice() {
            [(_, only)] if managed.is_empty() => only.clone(),
            _ => envelope(
                self.operator.first().map_or("", |(_, t)| t.as_str()),
                &resources,
                &unmanaged,
            )?,
        };
        let reconcile =
            crate::core::ReconcileSettings::from_routers(files.iter().flat_map(|l| &l.routers));
        Ok(Assembled {
            resources,
            managed,
            defined_in,
            warnings,
            unmanaged,
            text,
            reconcile,
        })
    }
}

fn to_value(r: &Resource) -> Result<serde_yaml::Value, ConfigError> {
    serde_yaml::to_value(r).map_err(|e| ConfigError::Serialize {
        id: r.id().to_string(),
        message: e.to_string(),
    })
}

/// `resources` as a YAML stream of bare resources.
pub fn to_stream(resources: &[Resource]) -> Result<String, ConfigError> {
    let mut out = String::new();
    for r in resources {
        out.push_str("---\n");
        out.push_str(
            &serde_yaml::to_string(r).map_err(|e| ConfigError::Serialize {
                id: r.id().to_string(),
                message: e.to_string(),
            })?,
        );
    }
    Ok(out)
}

/// One document holding `resources`: inside the first `Router` envelope of
/// `operator_text` (its metadata and `spec.reconcile` kept) when it has
/// one, else a stream of bare resources.
fn envelope(
    operator_text: &str,
    resources: &[Resource],
    unmanaged: &[Unmanaged],
) -> Result<String, ConfigError> {
    use serde::Deserialize as _;
    let router = serde_yaml::Deserializer::from_str(operator_text)
        .filter_map(|de| serde_yaml::Value::deserialize(de).ok())
        .find(|v| v.get("kind").and_then(serde_yaml::Value::as_str) == Some("Router"));
    let unmanaged_values = unmanaged
        .iter()
        .map(|u| {
            serde_yaml::to_value(u).map_err(|e| ConfigError::Serialize {
                id: u.id().to_string(),
                message: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let Some(mut router) = router else {
        let mut out = to_stream(resources)?;
        for v in &unmanaged_values {
            out.push_str("---\n");
            out.push_str(
                &serde_yaml::to_string(v).map_err(|e| ConfigError::Serialize {
                    id: "unmanaged".into(),
                    message: e.to_string(),
                })?,
            );
        }
        return Ok(out);
    };
    let mut list = resources
        .iter()
        .map(to_value)
        .collect::<Result<Vec<_>, _>>()?;
    list.extend(unmanaged_values);
    if let serde_yaml::Value::Mapping(m) = &mut router {
        let spec = m
            .entry("spec".into())
            .or_insert_with(|| serde_yaml::Value::Mapping(serde_yaml::Mapping::new()));
        if !spec.is_mapping() {
            *spec = serde_yaml::Value::Mapping(serde_yaml::Mapping::new());
        }
        if let serde_yaml::Value::Mapping(spec) = spec {
            spec.insert("resources".into(), serde_yaml::Value::Sequence(list));
        }
    }
    serde_yaml::to_string(&router).map_err(|e| ConfigError::Serialize {
        id: "Router".into(),
        message: e.to_string(),
    })
}

/// The managed file's text for `resources`.
pub fn managed_text(resources: &[Resource]) -> Result<String, ConfigError> {
    Ok(format!("{MANAGED_HEADER}{}", to_stream(resources)?))
}

/// Writes the managed file (creating the drop-in directory when needed).
/// A new file takes the mode, owner and group of the operator's file, since
/// it holds the same kind of content; an existing one keeps its own.
pub fn write_managed(layout: &Layout, text: &str) -> Result<(), ConfigError> {
    let path = layout.managed();
    let write_err = |source| ConfigError::Write {
        path: path.clone(),
        source,
    };
    if !layout.dropin.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(&layout.dropin)
            .map_err(write_err)?;
        if let Some(parent) = layout.dropin.parent() {
            sync_dir(parent).map_err(write_err)?;
        }
    }
    let like = std::fs::metadata(&layout.operator).ok();
    write_atomic(&path, text.as_bytes(), like.as_ref()).map_err(write_err)
}

/// Replaces the file at `path` with `bytes` so that a crash leaves either
/// the old or the new content: a uniquely named temporary file in the same
/// directory, fsync, rename, fsync of the directory. When `path` is a
/// symlink its target is replaced and the link stays. The file keeps its
/// mode, owner and group; a new file takes those of `like`.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    like: Option<&std::fs::Metadata>,
) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
    let target = resolve_links(path)?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let existing = std::fs::metadata(&target).ok();
    let model = existing.as_ref().or(like);
    let mode = model.map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let tmp = dir.join(format!(".{name}.{}.tmp", unique()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed the mode.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        if let Some(m) = model {
            let me = f.metadata()?;
            if (me.uid(), me.gid()) != (m.uid(), m.gid()) {
                std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()))?;
            }
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &target)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Follows symlinks at `path` (a dangling link resolves to where it points).
fn resolve_links(path: &Path) -> std::io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..32 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&p)?;
                p = match p.parent() {
                    Some(parent) if to.is_relative() => parent.join(to),
                    _ => to,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(std::io::Error::other(format!(
        "too many levels of symbolic links at {}",
        path.display()
    )))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// A name part no other writer in this or another process uses at the
/// same time.
fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}.{}.{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const OPERATOR: &str = "# the operator's comment\napiVersion: routerd.net/v1alpha1\nkind: Router\nmetadata: {name: edge}\nspec:\n  reconcile: {protectedInterfaces: [mgmt0]}\n  resources:\n    - apiVersion: net.routerd.net/v1alpha1\n      kind: IPv4Route\n      metadata: {name: a}\n      spec: {type: blackhole, destination: 10.1.0.0/16}\n";

    fn route(name: &str, dst: &str) -> Resource {
        let text = format!(
            "apiVersion: net.routerd.net/v1alpha1\nkind: IPv4Route\nmetadata: {{name: {name}}}\nspec: {{type: blackhole, destination: {dst}}}\n"
        );
        decode("t", &text).unwrap().0.remove(0)
    }

    #[test]
    fn the_drop_in_directory_is_named_after_the_file() {
        let l = Layout::for_config(Path::new("/etc/routerd/config.yaml"));
        assert_eq!(l.dropin, Path::new("/etc/routerd/config.d"));
        assert_eq!(
            l.managed(),
            Path::new("/etc/routerd/config.d/50-routerctl.yaml")
        );
    }

    #[test]
    fn the_operator_file_alone_is_stored_verbatim() {
        let s = Sources {
            operator: vec![("c.yaml".into(), OPERATOR.into())],
            managed: None,
            unknown_fields: UnknownFields::Error,
        };
        let a = s.assemble(None).unwrap();
        assert_eq!(a.text, OPERATOR);
        assert_eq!(a.resources.len(), 1);
    }

    #[test]
    fn the_managed_layer_wins_and_the_envelope_is_kept() {
        let s = Sources {
            operator: vec![("c.yaml".into(), OPERATOR.into())],
            managed: None,
            unknown_fields: UnknownFields::Error,
        };
        let a = s
            .assemble(Some(vec![
                route("a", "10.9.0.0/16"),
                route("b", "10.2.0.0/16"),
            ]))
            .unwrap();
        assert_eq!(a.resources.len(), 2);
        assert_eq!(
            a.defined_in["net.routerd.net/v1alpha1/IPv4Route/a"],
            "c.yaml"
        );
        // The generation text reloads to the same resources, envelope included.
        let mut l = Loaded::new();
        l.add_file("gen", &a.text);
        assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
        assert_eq!(l.resources, a.resources);
        assert_eq!(l.routers[0].name, "edge");
        assert!(a.text.contains("protectedInterfaces"), "{}", a.text);
        assert!(a.text.contains("10.9.0.0/16"));
        assert!(!a.text.contains("10.1.0.0/16"));
    }

    #[test]
    fn operator_duplicates_stay_an_error_and_are_located() {
        let dup = "apiVersion: net.routerd.net/v1alpha1\nkind: IPv4Route\nmetadata: {name: a}\nspec: {type: blackhole, destination: 10.3.0.0/16}\n";
        let s = Sources {
            operator: vec![
                ("c.yaml".into(), OPERATOR.into()),
                ("config.d/10-x.yaml".into(), dup.into()),
            ],
            managed: None,
            unknown_fields: UnknownFields::Error,
        };
        let err = s.assemble(None).unwrap_err().to_string();
        assert!(err.contains("duplicate resource"), "{err}");
        assert!(err.starts_with("config.d/10-x.yaml:"), "{err}");
    }

    #[test]
    fn warn_mode_keeps_unmanaged_kinds_and_reports_warnings() {
        let text = "apiVersion: routerd.net/v1alpha1\nkind: Router\nmetadata: {name: edge}\nspec:\n  resources:\n    - apiVersion: net.routerd.net/v1alpha1\n      kind: Interface\n      metadata: {name: wan}\n      spec: {ifname: eth0, role: untrust}\n    - apiVersion: firewall.routerd.net/v1alpha1\n      kind: FirewallZone\n      metadata: {name: z}\n      spec: {interfaces: [wan]}\n";
        let mut s = Sources {
            operator: vec![("c.yaml".into(), text.into())],
            managed: None,
            unknown_fields: UnknownFields::Error,
        };
        let err = s.assemble(None).unwrap_err().to_string();
        assert!(err.contains("--unknown-fields=warn"), "{err}");
        s.unknown_fields = UnknownFields::Warn;
        let a = s.assemble(None).unwrap();
        assert_eq!(a.resources.len(), 1);
        assert_eq!(a.unmanaged.len(), 1);
        assert_eq!(a.warnings.len(), 2, "{:?}", a.warnings);
        assert!(a.warnings[0].starts_with("c.yaml:9:"), "{:?}", a.warnings);
        // With a managed layer the stored text is rebuilt; it keeps the
        // unmanaged resource.
        let a = s.assemble(Some(vec![route("b", "10.2.0.0/16")])).unwrap();
        assert!(a.text.contains("FirewallZone"), "{}", a.text);
    }

    #[test]
    fn the_managed_text_loads_back() {
        let text = managed_text(&[route("x", "10.4.0.0/16")]).unwrap();
        assert!(text.starts_with("# Managed by routerd"));
        let (r, router) = decode("m", &text).unwrap();
        assert_eq!(r, vec![route("x", "10.4.0.0/16")]);
        assert!(!router);
        let (empty, _) = decode("m", &managed_text(&[]).unwrap()).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn atomic_writes_keep_links_mode_and_owner_and_leave_no_temp_files() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.yaml");
        std::fs::write(&real, "old\n").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link.yaml");
        std::os::unix::fs::symlink("real.yaml", &link).unwrap();
        write_atomic(&link, b"new\n", None).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new\n");
        let m = std::fs::metadata(&real).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // A new file takes the model's mode.
        let fresh = dir.path().join("fresh.yaml");
        write_atomic(&fresh, b"x", Some(&m)).unwrap();
        let f = std::fs::metadata(&fresh).unwrap();
        assert_eq!(f.permissions().mode() & 0o777, 0o600);
        assert_eq!((f.uid(), f.gid()), (m.uid(), m.gid()));
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("dangling.yaml");
        std::os::unix::fs::symlink("missing-dir/x.yaml", &link).unwrap();
        assert!(write_atomic(&link, b"x", None).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
