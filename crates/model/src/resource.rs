//! The resource envelope and decoding of typed specs by kind.
//!
//! Decoding is two-phase: the envelope is read from a YAML value, then the
//! spec is decoded into the struct its kind selects. Unknown fields are
//! collected (all of them, with their paths) instead of being dropped as
//! routerd does, and removed legacy fields get pointed advice.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml::Value;

use crate::compat::{UnknownFields, Unmanaged};
use crate::diag::Diagnostic;
use crate::id::{Kind, ObjectRef, ResourceId, legacy_kind_advice};
use crate::spec::*;

/// A status object (free-form, written by the daemon).
pub type Status = serde_json::Map<String, serde_json::Value>;

/// Resource metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Resource name; unique per (apiVersion, kind).
    #[serde(default)]
    pub name: String,
    /// Kubernetes namespace, accepted so an OpenShift custom resource loads
    /// unchanged and shown with it; it is not part of the identity (one
    /// host is one namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Owners of generated resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_refs: Vec<ObjectRef>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Provenance and tooling annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

macro_rules! specs {
    ($($kind:ident($ty:ty)),* $(,)?) => {
        /// A typed spec; the variant determines the kind.
        #[derive(Clone, Debug, PartialEq)]
        #[allow(missing_docs)]
        #[non_exhaustive]
        pub enum Spec {
            $($kind($ty),)*
        }

        impl Spec {
            /// The kind this spec belongs to.
            pub fn kind(&self) -> Kind {
                match self { $(Spec::$kind(_) => Kind::$kind,)* }
            }

            fn serialize_inner<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self { $(Spec::$kind(v) => v.serialize(s),)* }
            }

            fn decode(kind: Kind, v: Value, unknown: &mut Vec<String>) -> Result<Spec, (String, String)> {
                match kind {
                    $(Kind::$kind => decode_spec::<$ty>(v, unknown).map(Spec::$kind),)*
                    other => Err((String::new(), format!("{other} is a plugin protocol wire object, not a configuration resource"))),
                }
            }

            /// The JSON schema of a kind's spec.
            pub fn schema_for(kind: Kind) -> Option<schemars::Schema> {
                match kind {
                    $(Kind::$kind => Some(schemars::schema_for!($ty)),)*
                    _ => None,
                }
            }
        }
    };
}

specs! {
    Interface(InterfaceSpec),
    DSLiteTunnel(DSLiteTunnelSpec),
    HealthCheck(HealthCheckSpec),
    EgressRoutePolicy(EgressRoutePolicySpec),
    IPv4Route(IPv4RouteSpec),
    IPv6StaticRoute(IPv6StaticRouteSpec),
    NAT44Rule(NAT44RuleSpec),
    IPAddressSet(IPAddressSetSpec),
    IPv4StaticAddress(IPv4StaticAddressSpec),
    PPPoESession(PPPoESessionSpec),
    DHCPv4Client(DHCPv4ClientSpec),
    DynamicOverridePolicy(DynamicOverridePolicySpec),
    DynamicConfigPart(Box<DynamicConfigPartSpec>),
    Plugin(PluginSpec),
    DynamicConfigSource(DynamicConfigSourceSpec),
    OverlayPeer(OverlayPeerSpec),
    HybridRoute(HybridRouteSpec),
    CloudProviderProfile(CloudProviderProfileSpec),
    TunnelInterface(TunnelInterfaceSpec),
    AddressMobilityDomain(AddressMobilityDomainSpec),
    RemoteAddressClaim(RemoteAddressClaimSpec),
    EgressRouter(EgressRouterSpec),
    Node(NodeSpec),
    ClientGroup(ClientGroupSpec),
    EgressGateway(EgressGatewaySpec),
    EgressGatewayPolicy(EgressGatewayPolicySpec),
    VirtualAddress(VirtualAddressSpec),
}

/// One typed resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// apiVersion as written (validation checks it against the kind's group).
    pub api_version: String,
    /// Metadata.
    pub metadata: Metadata,
    /// Typed spec (determines the kind).
    pub spec: Spec,
    /// Status, when present in a file or snapshot.
    pub status: Option<Status>,
}

impl Resource {
    /// Builds a resource of `spec`'s kind in its own API group.
    pub fn new(name: impl Into<String>, spec: Spec) -> Self {
        Resource {
            api_version: spec.kind().api_version().to_string(),
            metadata: Metadata {
                name: name.into(),
                ..Metadata::default()
            },
            spec,
            status: None,
        }
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The identity triple.
    pub fn id(&self) -> ResourceId {
        ResourceId::new(&self.api_version, self.kind().as_str(), &self.metadata.name)
    }

    /// Whether this resource has identity (`api_version`, `kind`, `name`).
    pub fn has_id(&self, api_version: &str, kind: &str, name: &str) -> bool {
        self.metadata.name == name
            && self.kind().as_str() == kind
            && self.api_version == api_version
    }

    /// Decodes a resource from a YAML value. Problems go to `out` with the
    /// resource id and field path but no file position (the loader adds it).
    /// Returns the resource when its spec decoded, even if unknown fields were
    /// reported, so cross-resource checks can still run on it.
    pub fn decode(value: Value, out: &mut Vec<Diagnostic>) -> Option<Resource> {
        match Resource::decode_with(value, UnknownFields::Error, out)? {
            Decoded::Managed(r) => Some(r),
            Decoded::Unmanaged(u) => {
                let id = u.id().to_string();
                out.push(
                    Diagnostic::error(format!(
                        "{id} is a routerd kind this daemon does not manage; it is accepted only in configuration files"
                    ))
                    .with_resource(&id)
                    .with_path("kind"),
                );
                None
            }
        }
    }

    /// [`Resource::decode`] for configuration files: unknown fields are
    /// errors or warnings per `mode`, and a kind routerd defines but this
    /// daemon does not manage is kept as [`Unmanaged`] data.
    pub fn decode_with(
        value: Value,
        mode: UnknownFields,
        out: &mut Vec<Diagnostic>,
    ) -> Option<Decoded> {
        let Value::Mapping(mut map) = value else {
            out.push(Diagnostic::error("resource must be a mapping"));
            return None;
        };
        let mut take_str = |key: &str| -> Result<Option<String>, String> {
            match map.remove(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(other) => Err(format!("{key} must be a string, not {}", type_name(&other))),
            }
        };
        let api_version = take_str("apiVersion");
        let kind = take_str("kind");
        let (api_version, kind) = match (api_version, kind) {
            (Ok(a), Ok(k)) => (a.unwrap_or_default(), k.unwrap_or_default()),
            (Err(e), _) | (_, Err(e)) => {
                out.push(Diagnostic::error(format!("resource {e}")));
                return None;
            }
        };
        if api_version.is_empty() {
            out.push(Diagnostic::error("resource apiVersion is required").with_path("apiVersion"));
            return None;
        }
        if kind.is_empty() {
            out.push(Diagnostic::error("resource kind is required").with_path("kind"));
            return None;
        }
        let mut metadata_value = map.remove("metadata").unwrap_or(Value::Null);
        // Only Kubernetes-shaped resources (OpenShift's EgressRouter) have a
        // namespace; for routerd's own groups it stays an unknown field.
        let namespaced = api_version == crate::spec::egress_router::OPENSHIFT_NETWORK_API;
        let hint_id = format!("{api_version}/{kind}");
        if let Value::Mapping(m) = &mut metadata_value {
            let unknown: Vec<Value> = m
                .keys()
                .filter(|k| {
                    let known = matches!(
                        k.as_str(),
                        Some("name" | "ownerRefs" | "labels" | "annotations")
                    );
                    let namespace = namespaced && k.as_str() == Some("namespace");
                    !(known || namespace)
                })
                .cloned()
                .collect();
            if mode == UnknownFields::Warn {
                for k in unknown {
                    m.remove(&k);
                    let path = join_path("metadata", &key_text(&k));
                    out.push(unknown_field(mode, &hint_id, &path, None));
                }
            }
        }
        let metadata: Metadata = if metadata_value.is_null() {
            Metadata::default()
        } else {
            match serde_path_to_error::deserialize(metadata_value) {
                Ok(m) => m,
                Err(e) => {
                    let path = join_path("metadata", &e.path().to_string());
                    let name_hint = format!("{api_version}/{kind}");
                    out.push(
                        Diagnostic::error(format!("{name_hint} {path}: {}", e.inner()))
                            .with_path(path),
                    );
                    return None;
                }
            }
        };
        let mut metadata = metadata;
        if !namespaced && metadata.namespace.take().is_some() {
            // What serde's deny_unknown_fields said before the field
            // existed: the resource is dropped, as for any unknown
            // metadata field in strict mode.
            out.push(
                Diagnostic::error(format!(
                    "{hint_id} metadata: unknown field `namespace`, expected one of `name`, `ownerRefs`, `labels`, `annotations` (only OpenShift's EgressRouter, {}, has a namespace)",
                    crate::spec::egress_router::OPENSHIFT_NETWORK_API
                ))
                .with_path("metadata.namespace"),
            );
            return None;
        }
        if metadata.name.is_empty() {
            out.push(
                Diagnostic::error(format!("{api_version}/{kind} metadata.name is required"))
                    .with_path("metadata.name"),
            );
            return None;
        }
        let id = format!("{api_version}/{kind}/{}", metadata.name);
        let Some(k) = Kind::parse(&kind) else {
            if crate::compat::routerd_kind_api(&kind).is_some()
                && legacy_kind_advice(&kind).is_none()
            {
                let spec = match map.remove("spec") {
                    None | Some(Value::Null) => serde_json::Value::Object(serde_json::Map::new()),
                    Some(v) => match serde_json::to_value(&v) {
                        Ok(j) => j,
                        Err(e) => {
                            out.push(
                                Diagnostic::error(format!("{id} spec: {e}"))
                                    .with_resource(&id)
                                    .with_path("spec"),
                            );
                            return None;
                        }
                    },
                };
                return Some(Decoded::Unmanaged(Unmanaged {
                    api_version,
                    kind,
                    metadata,
                    spec,
                }));
            }
            let msg = match legacy_kind_advice(&kind) {
                Some(advice) => format!("{id} {advice}"),
                None => format!("unsupported resource kind {kind} in {id}"),
            };
            out.push(Diagnostic::error(msg).with_resource(&id).with_path("kind"));
            return None;
        };
        let status = match map.remove("status") {
            None | Some(Value::Null) => None,
            Some(v) => match serde_json::to_value(&v) {
                Ok(serde_json::Value::Object(m)) => Some(m),
                _ => {
                    out.push(
                        Diagnostic::error(format!("{id} status must be a mapping"))
                            .with_resource(&id)
                            .with_path("status"),
                    );
                    None
                }
            },
        };
        let spec_value = match map.remove("spec") {
            None | Some(Value::Null) => Value::Mapping(serde_yaml::Mapping::new()),
            Some(v) => v,
        };
        for (key, _) in map.iter() {
            let key = key_text(key);
            out.push(unknown_field(mode, &id, &key, None));
        }
        let mut unknown = Vec::new();
        let (type_errors, spec) = decode_spec_all(k, spec_value, &mut unknown);
        for path in unknown {
            let full = join_path("spec", &path);
            match removed_field_advice(k, &full) {
                // routerd rejects these itself, so they stay errors.
                Some(msg) => out.push(
                    Diagnostic::error(format!("{id} {msg}"))
                        .with_resource(&id)
                        .with_path(full),
                ),
                None => out.push(unknown_field(mode, &id, &full, Some(k))),
            }
        }
        for (path, msg) in type_errors {
            let full = join_path("spec", &path);
            let text = if path.is_empty() {
                msg
            } else {
                format!("{full}: {msg}")
            };
            out.push(
                Diagnostic::error(format!("{id} {text}"))
                    .with_resource(&id)
                    .with_path(full),
            );
        }
        // With type errors the spec lacks the failing fields. It is still
        // returned so validation can report the other problems; the loader
        // drops findings about the removed fields.
        spec.map(|spec| {
            Decoded::Managed(Resource {
                api_version,
                metadata,
                spec,
                status,
            })
        })
    }

    /// Decodes strictly: any problem is an error listing every problem.
    pub fn from_value(value: Value) -> Result<Resource, DecodeError> {
        let mut out = Vec::new();
        match Resource::decode(value, &mut out) {
            Some(r) if out.iter().all(|d| !d.is_error()) => Ok(r),
            _ => Err(DecodeError(out)),
        }
    }
}

/// What a configuration file's resource decoded to.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Decoded {
    /// A kind this daemon manages.
    Managed(Resource),
    /// A routerd kind kept as data.
    Unmanaged(Unmanaged),
}

/// The diagnostic for a field no type declares: an error naming the
/// switch, or (in `warn` mode) a warning saying routerd ignores it too.
fn unknown_field(mode: UnknownFields, id: &str, path: &str, kind: Option<Kind>) -> Diagnostic {
    let what = match kind {
        Some(k) => format!("{path} is not a known field of {k}"),
        None => format!("{path} is not a known field"),
    };
    let d = match mode {
        UnknownFields::Error => {
            Diagnostic::error(format!("{id} {what} {}", crate::compat::UNKNOWN_FIELD_HINT))
        }
        UnknownFields::Warn => {
            Diagnostic::warning(format!("{id} {what}; {}", crate::compat::IGNORED_FIELD))
        }
    };
    d.with_resource(id).with_path(path)
}

/// Problems that prevented strict decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub Vec<Diagnostic>);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msgs: Vec<&str> = self.0.iter().map(|d| d.message.as_str()).collect();
        f.write_str(&msgs.join("; "))
    }
}

impl std::error::Error for DecodeError {}

/// Decodes a spec, collecting every unknown field. A type error is returned
/// with its path; [`Spec::decode`] callers see only the first one, so
/// [`decode_spec_all`] removes the offending field and retries to find the rest.
fn decode_spec<T: DeserializeOwned>(
    v: Value,
    unknown: &mut Vec<String>,
) -> Result<T, (String, String)> {
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(v, &mut track);
    let res = serde_ignored::deserialize(de, |p| unknown.push(ignored_path(&p)));
    res.map_err(|e: serde_yaml::Error| (path_text(&track.path()), e.to_string()))
}

/// How many type errors one resource may report before decoding gives up.
const MAX_TYPE_ERRORS: usize = 32;

/// Decodes `v` as `kind`, reporting every type error: each failing field is
/// removed and decoding retried, so one pass shows all of a resource's
/// problems. Returns the type errors and, if the rest decoded, the spec
/// (which is then incomplete and must not be used when errors exist).
fn decode_spec_all(
    kind: Kind,
    mut v: Value,
    unknown: &mut Vec<String>,
) -> (Vec<(String, String)>, Option<Spec>) {
    let mut errors = Vec::new();
    for _ in 0..MAX_TYPE_ERRORS {
        let mut u = Vec::new();
        match Spec::decode(kind, v.clone(), &mut u) {
            Ok(spec) => {
                if errors.is_empty() {
                    *unknown = u;
                } else {
                    merge_unknown(unknown, u);
                }
                return (errors, Some(spec));
            }
            Err((path, msg)) => {
                merge_unknown(unknown, u);
                let removed = !path.is_empty() && remove_path(&mut v, &path);
                errors.push((path, msg));
                if !removed {
                    return (errors, None);
                }
            }
        }
    }
    (errors, None)
}

fn merge_unknown(into: &mut Vec<String>, more: Vec<String>) {
    for m in more {
        if !into.contains(&m) {
            into.push(m);
        }
    }
}

/// Removes the node at a `a.b[2].c` path; an element of a sequence is
/// removed together with its whole sequence (indices would shift otherwise).
fn remove_path(v: &mut Value, path: &str) -> bool {
    let mut segs: Vec<String> = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                segs.push(rest[..i].to_string());
            }
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                segs.push(rest[..=end].to_string());
                rest = &rest[end + 1..];
            }
        } else {
            segs.push(rest.to_string());
        }
    }
    while segs.last().is_some_and(|s| s.starts_with('[')) {
        segs.pop();
    }
    let Some(last) = segs.pop() else { return false };
    let mut cur = v;
    for s in &segs {
        cur = if let Some(idx) = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
            match (cur, idx.parse::<usize>()) {
                (Value::Sequence(seq), Ok(i)) if i < seq.len() => &mut seq[i],
                _ => return false,
            }
        } else {
            match cur {
                Value::Mapping(m) => match m.get_mut(s.as_str()) {
                    Some(x) => x,
                    None => return false,
                },
                _ => return false,
            }
        };
    }
    match cur {
        Value::Mapping(m) => m.remove(last.as_str()).is_some(),
        _ => false,
    }
}

fn ignored_path(p: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match p {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => join_path(&ignored_path(parent), key),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

fn path_text(p: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut s = String::new();
    for seg in p.iter() {
        match seg {
            Segment::Seq { index } => s.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    s
}

/// Joins a dotted path; `base` may be empty and `rest` may start with `[`.
pub fn join_path(base: &str, rest: &str) -> String {
    if base.is_empty() {
        rest.to_string()
    } else if rest.is_empty() {
        base.to_string()
    } else if rest.starts_with('[') {
        format!("{base}{rest}")
    } else {
        format!("{base}.{rest}")
    }
}

fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a sequence",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Pointed messages for fields routerd removed (the path is `spec.…`).
fn removed_field_advice(kind: Kind, path: &str) -> Option<String> {
    let last = path.rsplit('.').next().unwrap_or(path);
    match kind {
        Kind::HealthCheck
            if path.matches('.').count() == 1
                && matches!(
                    last,
                    "daemon"
                        | "socketSource"
                        | "fwmark"
                        | "fwMark"
                        | "sourceInterface"
                        | "sourceAddress"
                        | "sourceAddressFrom"
                        | "via"
                ) =>
        {
            Some(format!("{path} is not supported; routerd derives health-check daemon, source binding, and fwmark from referenced route/interface resources"))
        }
        Kind::EgressRoutePolicy if last == "ready_when" && path.starts_with("spec.candidates[") => {
            let base = path.trim_end_matches(".ready_when");
            Some(format!("{base}.ready_when was removed; use dependsOn"))
        }
        Kind::IPv4Route if path == "spec.ready_when" => {
            Some("spec.ready_when was removed; use spec.dependsOn".to_string())
        }
        Kind::DSLiteTunnel if path == "spec.aftrSource" => {
            Some("spec.aftrSource was removed; use spec.aftrFrom, spec.aftrFQDN, spec.aftrIPv6, or spec.remoteAddress".to_string())
        }
        Kind::DSLiteTunnel if path == "spec.ready_when" => {
            Some("spec.ready_when was removed; use spec.dependsOn".to_string())
        }
        _ => None,
    }
}

impl Serialize for Resource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct SpecRef<'a>(&'a Spec);
        impl Serialize for SpecRef<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize_inner(s)
            }
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("apiVersion", &self.api_version)?;
        m.serialize_entry("kind", self.kind().as_str())?;
        m.serialize_entry("metadata", &self.metadata)?;
        m.serialize_entry("spec", &SpecRef(&self.spec))?;
        if let Some(st) = &self.status {
            m.serialize_entry("status", st)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Resource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Resource::from_value(v).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Resource {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Resource".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "required": ["apiVersion", "kind", "metadata"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {"type": "object"},
                "status": {"type": "object"}
            }
        })
    }
}

macro_rules! accessors {
    ($($fn_name:ident => $kind:ident($ty:ty)),* $(,)?) => {
        impl Resource {
            $(
                /// The spec, if the resource is of this kind.
                pub fn $fn_name(&self) -> Option<&$ty> {
                    match &self.spec { Spec::$kind(s) => Some(s), _ => None }
                }
            )*
        }
    };
}

accessors! {
    as_interface => Interface(InterfaceSpec),
    as_dslite => DSLiteTunnel(DSLiteTunnelSpec),
    as_health_check => HealthCheck(HealthCheckSpec),
    as_egress_policy => EgressRoutePolicy(EgressRoutePolicySpec),
    as_ipv4_route => IPv4Route(IPv4RouteSpec),
    as_ipv6_static_route => IPv6StaticRoute(IPv6StaticRouteSpec),
    as_nat44 => NAT44Rule(NAT44RuleSpec),
    as_address_set => IPAddressSet(IPAddressSetSpec),
    as_static_address => IPv4StaticAddress(IPv4StaticAddressSpec),
    as_pppoe => PPPoESession(PPPoESessionSpec),
    as_dhcpv4_client => DHCPv4Client(DHCPv4ClientSpec),
    as_override_policy => DynamicOverridePolicy(DynamicOverridePolicySpec),
    as_plugin => Plugin(PluginSpec),
    as_dynamic_source => DynamicConfigSource(DynamicConfigSourceSpec),
    as_overlay_peer => OverlayPeer(OverlayPeerSpec),
    as_hybrid_route => HybridRoute(HybridRouteSpec),
    as_cloud_profile => CloudProviderProfile(CloudProviderProfileSpec),
    as_tunnel_interface => TunnelInterface(TunnelInterfaceSpec),
    as_egress_router => EgressRouter(EgressRouterSpec),
    as_node => Node(NodeSpec),
    as_client_group => ClientGroup(ClientGroupSpec),
    as_egress_gateway => EgressGateway(EgressGatewaySpec),
    as_egress_gateway_policy => EgressGatewayPolicy(EgressGatewayPolicySpec),
    as_virtual_address => VirtualAddress(VirtualAddressSpec),
}

impl Resource {
    /// The spec of a DynamicConfigPart.
    pub fn as_dynamic_part(&self) -> Option<&DynamicConfigPartSpec> {
        match &self.spec {
            Spec::DynamicConfigPart(s) => Some(s),
            _ => None,
        }
    }
}
