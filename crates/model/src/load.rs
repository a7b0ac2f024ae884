//! Loading configuration files: one `Router` document or a stream of bare
//! resources per file, several files combined, every problem located.

use serde::Deserialize;
use serde_yaml::Value;

use crate::compat::{UnknownFields, Unmanaged};
use crate::diag::Diagnostic;
use crate::id::{Kind, ROUTER_API};
use crate::position::PositionIndex;
use crate::resource::{Decoded, Resource, join_path};
use crate::validate::{self, Context};

/// Where a loaded resource came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Index of the file in [`Loaded::files`].
    pub file: usize,
    /// Document number within the file.
    pub doc: usize,
    /// Path of the resource within its document (`spec.resources[3]` or empty).
    pub base: String,
}

/// The `Router` envelope's own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouterInfo {
    /// `metadata.name`.
    pub name: String,
    /// `spec.reconcile.mode`.
    pub reconcile_mode: Option<String>,
    /// `spec.reconcile.protectedInterfaces`: interface names (an Interface
    /// resource's name or a kernel name) routerd never touches.
    pub protected_interfaces: Vec<String>,
    /// `spec.unknownFields`: how this document's own resources treat fields
    /// no type declares (`None`: as the command line says).
    pub unknown_fields: Option<UnknownFields>,
}

/// Everything loaded from a set of files.
#[derive(Debug, Default)]
pub struct Loaded {
    /// File names, in load order.
    pub files: Vec<String>,
    indexes: Vec<PositionIndex>,
    /// Decoded resources, in file order.
    pub resources: Vec<Resource>,
    /// Origin of each resource (parallel to `resources`).
    pub origins: Vec<Origin>,
    /// Router envelopes seen.
    pub routers: Vec<RouterInfo>,
    /// Problems found while decoding (validation adds more).
    pub diagnostics: Vec<Diagnostic>,
    /// How unknown fields are reported (set before adding files; a
    /// `Router` document's `spec.unknownFields: warn` relaxes its own
    /// resources further).
    pub unknown_fields: UnknownFields,
    /// Resources of routerd kinds this daemon does not manage, kept as data.
    pub unmanaged: Vec<Unmanaged>,
    /// Origin of each unmanaged resource (parallel to `unmanaged`).
    pub unmanaged_origins: Vec<Origin>,
    /// Per resource, the field paths decoding already reported (findings
    /// about them are dropped: a removed mistyped field is not "missing").
    decode_paths: Vec<Vec<String>>,
}

impl Loaded {
    /// An empty set.
    pub fn new() -> Self {
        Loaded::default()
    }

    /// An empty set reporting unknown fields per `mode`.
    pub fn with_unknown_fields(mode: UnknownFields) -> Self {
        Loaded {
            unknown_fields: mode,
            ..Loaded::default()
        }
    }

    /// Loads one file's text. Problems are recorded, never returned early.
    pub fn add_file(&mut self, name: &str, text: &str) {
        let file = self.files.len();
        self.files.push(name.to_string());
        self.indexes.push(PositionIndex::build(text));
        for (doc, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let value = match Value::deserialize(de) {
                Ok(v) => v,
                Err(e) => {
                    let mut d = Diagnostic::error(format!("invalid YAML: {e}"));
                    d.file = Some(name.to_string());
                    if let Some(loc) = e.location() {
                        d.line = Some(loc.line());
                        d.column = Some(loc.column());
                    }
                    self.diagnostics.push(d);
                    break;
                }
            };
            self.add_document(file, doc, value);
        }
    }

    fn add_document(&mut self, file: usize, doc: usize, value: Value) {
        let Value::Mapping(map) = &value else {
            if !value.is_null() {
                self.push_doc(
                    file,
                    doc,
                    "",
                    Diagnostic::error("document must be a mapping"),
                );
            }
            return;
        };
        let kind = map.get("kind").and_then(Value::as_str);
        if kind != Some("Router") {
            // Only Router lives in the Router group: `kind: router` is a
            // misspelt envelope, not an unknown resource kind. A known kind
            // in the wrong group is a resource (`must use apiVersion ...`).
            if map.get("apiVersion").and_then(Value::as_str) == Some(ROUTER_API)
                && kind.is_none_or(|k| {
                    Kind::parse(k).is_none()
                        && crate::compat::routerd_kind_api(k) != Some(ROUTER_API)
                })
            {
                self.push_doc(
                    file,
                    doc,
                    "kind",
                    Diagnostic::error("router kind must be Router"),
                );
                return;
            }
            let mode = self.unknown_fields;
            self.add_resource(file, doc, String::new(), value, mode);
            return;
        }
        let Value::Mapping(mut map) = value else {
            return;
        };
        let api = map.remove("apiVersion");
        if api.as_ref().and_then(Value::as_str) != Some(ROUTER_API) {
            self.push_doc(
                file,
                doc,
                "apiVersion",
                Diagnostic::error("router apiVersion must be routerd.net/v1alpha1"),
            );
        }
        map.remove("kind");
        let name = map
            .remove("metadata")
            .and_then(|m| m.get("name").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        if name.is_empty() {
            self.push_doc(
                file,
                doc,
                "metadata",
                Diagnostic::error("router metadata.name is required"),
            );
        }
        let mut spec = match map.remove("spec") {
            Some(Value::Mapping(m)) => m,
            _ => serde_yaml::Mapping::new(),
        };
        let own_mode = match spec.remove("unknownFields") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_str().map(str::parse::<UnknownFields>) {
                Some(Ok(m)) => Some(m),
                _ => {
                    self.push_doc(
                        file,
                        doc,
                        "spec.unknownFields",
                        Diagnostic::error("router spec.unknownFields must be error or warn"),
                    );
                    None
                }
            },
        };
        let mode = self
            .unknown_fields
            .or(own_mode.unwrap_or(UnknownFields::Error));
        for (k, _) in map.iter() {
            let k = k.as_str().unwrap_or("?").to_string();
            self.unknown_router_field(file, doc, &k, mode);
        }
        let mut info = RouterInfo {
            name,
            reconcile_mode: None,
            protected_interfaces: Vec::new(),
            unknown_fields: own_mode,
        };
        if let Some(Value::Mapping(rec)) = spec.remove("reconcile") {
            for (k, v) in rec.iter() {
                let key = k.as_str().unwrap_or("?");
                match key {
                    "mode" => {
                        let m = v.as_str().unwrap_or("").to_string();
                        if !matches!(m.as_str(), "" | "strict" | "progressive") {
                            self.push_doc(
                                file,
                                doc,
                                "spec.reconcile.mode",
                                Diagnostic::error(
                                    "spec.reconcile.mode must be strict or progressive",
                                ),
                            );
                        }
                        info.reconcile_mode = Some(m);
                    }
                    "protectedInterfaces" | "protectedZones" => {
                        if key == "protectedInterfaces"
                            && let Some(seq) = v.as_sequence()
                        {
                            info.protected_interfaces = seq
                                .iter()
                                .filter_map(|x| x.as_str())
                                .filter(|x| !x.is_empty())
                                .map(str::to_string)
                                .collect();
                        }
                        let empty = v.as_sequence().is_some_and(|s| {
                            s.iter().any(|x| x.as_str().is_none_or(str::is_empty))
                        });
                        if empty {
                            self.push_doc(
                                file,
                                doc,
                                &format!("spec.reconcile.{key}"),
                                Diagnostic::error(format!(
                                    "spec.reconcile.{key} must not contain empty names"
                                )),
                            );
                        }
                    }
                    "autoTuneConntrack" => {
                        if v.as_bool() == Some(true) {
                            self.push_doc(
                                file,
                                doc,
                                "spec.reconcile.autoTuneConntrack",
                                Diagnostic::error(
                                    "spec.reconcile.autoTuneConntrack is not supported: routerd never changes conntrack sysctls; remove the field or set it to false",
                                ),
                            );
                        }
                    }
                    other => self.unknown_router_field(
                        file,
                        doc,
                        &format!("spec.reconcile.{other}"),
                        mode,
                    ),
                }
            }
        }
        self.routers.push(info);
        let resources = spec.remove("resources");
        for (k, _) in spec.iter() {
            let k = k.as_str().unwrap_or("?").to_string();
            self.unknown_router_field(file, doc, &format!("spec.{k}"), mode);
        }
        match resources {
            Some(Value::Sequence(items)) => {
                for (i, item) in items.into_iter().enumerate() {
                    self.add_resource(file, doc, format!("spec.resources[{i}]"), item, mode);
                }
            }
            None | Some(Value::Null) => {}
            Some(_) => self.push_doc(
                file,
                doc,
                "spec.resources",
                Diagnostic::error("router spec.resources must be a list"),
            ),
        }
    }

    /// A field of the `Router` envelope itself that routerd does not define.
    fn unknown_router_field(&mut self, file: usize, doc: usize, path: &str, mode: UnknownFields) {
        let d = match mode {
            UnknownFields::Error => Diagnostic::error(format!(
                "router {path} is not a known field {}",
                crate::compat::UNKNOWN_FIELD_HINT
            )),
            UnknownFields::Warn => Diagnostic::warning(format!(
                "router {path} is not a known field; {}",
                crate::compat::IGNORED_FIELD
            )),
        };
        self.push_doc(file, doc, path, d);
    }

    fn add_resource(
        &mut self,
        file: usize,
        doc: usize,
        base: String,
        value: Value,
        mode: UnknownFields,
    ) {
        let mut found = Vec::new();
        let decoded = Resource::decode_with(value, mode, &mut found);
        let decode_paths: Vec<String> = found.iter().filter_map(|d| d.path.clone()).collect();
        for d in found {
            let path = join_path(&base, d.path.as_deref().unwrap_or(""));
            self.push_at(file, doc, &path, d);
        }
        match decoded {
            Some(Decoded::Managed(r)) => {
                self.resources.push(r);
                self.origins.push(Origin { file, doc, base });
                self.decode_paths.push(decode_paths);
            }
            Some(Decoded::Unmanaged(u)) => {
                let id = u.id().to_string();
                let d = Diagnostic::warning(u.warning_text())
                    .with_resource(&id)
                    .with_path("kind");
                let path = join_path(&base, "kind");
                self.push_at(file, doc, &path, d);
                self.unmanaged.push(u);
                self.unmanaged_origins.push(Origin { file, doc, base });
            }
            None => {}
        }
    }

    /// A problem of the document itself (not of a resource): its path is
    /// the document path.
    fn push_doc(&mut self, file: usize, doc: usize, path: &str, d: Diagnostic) {
        self.push_at(file, doc, path, d.with_path(path));
    }

    fn push_at(&mut self, file: usize, doc: usize, full_path: &str, mut d: Diagnostic) {
        self.locate_in(file, doc, full_path, &mut d);
        self.diagnostics.push(d);
    }

    fn locate_in(&self, file: usize, doc: usize, full_path: &str, d: &mut Diagnostic) {
        d.file = self.files.get(file).cloned();
        if let Some((line, col)) = self
            .indexes
            .get(file)
            .and_then(|i| i.lookup(doc, full_path))
        {
            d.line = Some(line);
            d.column = Some(col);
        }
    }

    /// Adds file positions to a diagnostic about resource `index`.
    pub fn locate(&self, index: usize, d: &mut Diagnostic) {
        if let Some(o) = self.origins.get(index) {
            let path = join_path(&o.base, d.path.as_deref().unwrap_or(""));
            self.locate_in(o.file, o.doc, &path, d);
        }
    }

    /// Whether decoding already reported a problem at or above `path` of resource `index`.
    pub fn already_reported(&self, index: usize, path: Option<&str>) -> bool {
        let (Some(paths), Some(path)) = (self.decode_paths.get(index), path) else {
            return false;
        };
        paths.iter().any(|p| {
            path == p
                || path
                    .strip_prefix(p.as_str())
                    .is_some_and(|r| r.starts_with(['.', '[']))
        })
    }

    /// Validates the loaded resources and returns every diagnostic (decode
    /// problems first, then validation findings), each located.
    pub fn validate(&self, ctx: Context) -> Vec<Diagnostic> {
        let mut out = self.diagnostics.clone();
        out.extend(self.validate_unmanaged());
        for f in validate::validate_with_unmanaged(&self.resources, &self.unmanaged, ctx) {
            let mut d = f.diagnostic;
            if let Some(i) = f.index {
                if self.already_reported(i, d.path.as_deref()) {
                    continue;
                }
                self.locate(i, &mut d);
            }
            out.push(d);
        }
        let order = |d: &Diagnostic| {
            let file = d
                .file
                .as_ref()
                .and_then(|f| self.files.iter().position(|x| x == f));
            (file, d.line, d.column)
        };
        out.sort_by_key(order);
        out
    }
}

impl Loaded {
    /// What routerd itself checks of an unmanaged resource that does not
    /// need its spec: its group and that its id is unique.
    fn validate_unmanaged(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (u, o) in self.unmanaged.iter().zip(&self.unmanaged_origins) {
            let id = u.id().to_string();
            let mut found = Vec::new();
            if let Some(api) = crate::compat::routerd_kind_api(&u.kind)
                && api != u.api_version
            {
                found.push(
                    Diagnostic::error(format!("{id} must use apiVersion {api}"))
                        .with_resource(&id)
                        .with_path("apiVersion"),
                );
            }
            if !seen.insert(id.clone()) {
                found
                    .push(Diagnostic::error(format!("duplicate resource {id}")).with_resource(&id));
            }
            for mut d in found {
                let path = join_path(&o.base, d.path.as_deref().unwrap_or(""));
                self.locate_in(o.file, o.doc, &path, &mut d);
                out.push(d);
            }
        }
        out
    }
}

/// Loads and validates `files` (name, text) as startup configuration.
pub fn load_and_validate(files: &[(&str, &str)]) -> (Loaded, Vec<Diagnostic>) {
    let mut l = Loaded::new();
    for (n, t) in files {
        l.add_file(n, t);
    }
    let diags = l.validate(Context::Startup);
    (l, diags)
}

/// [`load_and_validate`] with unknown fields reported per `mode`.
pub fn load_and_validate_with(
    files: &[(&str, &str)],
    mode: UnknownFields,
) -> (Loaded, Vec<Diagnostic>) {
    let mut l = Loaded::with_unknown_fields(mode);
    for (n, t) in files {
        l.add_file(n, t);
    }
    let diags = l.validate(Context::Startup);
    (l, diags)
}
