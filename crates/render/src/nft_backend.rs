//! The nftables backend port. routerd-render defines it; backends live
//! elsewhere (`linux::NftJson` here, the rustables one in the GPL crate
//! `routerd-nft-rustables`), so this crate never links rustables.

use crate::dataplane::DataplaneError;
use crate::ir::{NftTable, NftTableKey};
use crate::plan::NftSetDelta;

/// Loads and removes whole owned tables, each change in one kernel
/// transaction.
pub trait NftBackend: Send {
    /// Short name for logs and plans (`nft-json`, `rustables`).
    fn name(&self) -> &'static str;

    /// `Ok` when this backend can express every expression of `table`,
    /// otherwise the first thing it cannot.
    fn supports(&self, table: &NftTable) -> Result<(), String>;

    /// Atomically replaces (or creates) the table: `nft -f` of
    /// `add table; delete table; table { ... }`.
    fn replace_table(&mut self, table: &NftTable) -> Result<(), DataplaneError>;

    /// `nft delete table <family> <name>`.
    fn delete_table(&mut self, key: &NftTableKey) -> Result<(), DataplaneError>;

    /// `Ok` when [`NftBackend::update_sets`] can carry these changes; a
    /// backend that cannot leaves the op to the next one (`nft -j` takes
    /// every kind).
    fn supports_set_update(&self, sets: &[NftSetDelta]) -> Result<(), String> {
        let _ = sets;
        Err("no in-place set updates".into())
    }

    /// Deletes and adds set elements of an existing table in one kernel
    /// transaction (deletes first, so a prefix can be replaced by an
    /// overlapping one).
    fn update_sets(
        &mut self,
        key: &NftTableKey,
        sets: &[NftSetDelta],
    ) -> Result<(), DataplaneError> {
        let _ = sets;
        Err(DataplaneError::Unsupported(format!(
            "{}: no in-place set updates (table {key})",
            self.name()
        )))
    }
}

/// The first backend that can carry these element changes.
pub fn choose_for_sets<'b>(
    backends: &'b mut [Box<dyn NftBackend>],
    sets: &[NftSetDelta],
) -> Result<&'b mut Box<dyn NftBackend>, DataplaneError> {
    let mut reasons = Vec::new();
    for b in backends.iter_mut() {
        match b.supports_set_update(sets) {
            Ok(()) => return Ok(b),
            Err(e) => reasons.push(format!("{}: {e}", b.name())),
        }
    }
    Err(DataplaneError::Unsupported(format!(
        "no nft backend updates these set elements ({})",
        reasons.join("; ")
    )))
}

/// Picks, for a table, the first backend that can express it.
pub fn choose<'b>(
    backends: &'b mut [Box<dyn NftBackend>],
    table: &NftTable,
) -> Result<&'b mut Box<dyn NftBackend>, DataplaneError> {
    let mut reasons = Vec::new();
    let mut pick = None;
    for (i, b) in backends.iter().enumerate() {
        match b.supports(table) {
            Ok(()) => {
                pick = Some(i);
                break;
            }
            Err(e) => reasons.push(format!("{}: {e}", b.name())),
        }
    }
    match pick {
        Some(i) => backends
            .get_mut(i)
            .ok_or_else(|| DataplaneError::Unsupported("backend index".into())),
        None => Err(DataplaneError::Unsupported(format!(
            "no nft backend can express table {} {} ({})",
            table.family,
            table.name,
            reasons.join("; ")
        ))),
    }
}
