//! The `nft -j` backend: every table it is given goes through the nftables
//! JSON interface of the `nft` tool, one transaction per call.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::dataplane::{DataplaneError, ObservedNftTable};
use crate::ir::{NftTable, NftTableKey};
use crate::nft_backend::NftBackend;
use crate::nft_json;
use crate::nft_text;
use crate::plan::NftSetDelta;

/// Runs `nft`; it can express everything routerd renders.
///
/// A child process inherits the network namespace of the *thread* that
/// spawns it, so the backend remembers the namespace it was created in and
/// refuses to run from a thread in another one: a dataplane built for a test
/// namespace can never touch the host's ruleset.
#[derive(Clone, Debug)]
pub struct NftJson {
    program: String,
    netns: Option<std::path::PathBuf>,
}

impl Default for NftJson {
    fn default() -> Self {
        Self::new("nft")
    }
}

use super::netns::current as current_netns;

impl NftJson {
    /// Uses the `nft` at `program` (a path or a name on `PATH`), bound to
    /// the calling thread's network namespace.
    pub fn new(program: impl Into<String>) -> Self {
        NftJson {
            program: program.into(),
            netns: current_netns(),
        }
    }

    fn check_netns(&self, context: &str) -> Result<(), DataplaneError> {
        if self.netns.is_some() && current_netns() != self.netns {
            return Err(DataplaneError::Io {
                context: context.to_string(),
                message: format!(
                    "refusing to run nft from another network namespace ({:?}, created in {:?})",
                    current_netns(),
                    self.netns
                ),
            });
        }
        Ok(())
    }

    /// `nft -j -f -` with `doc` on stdin: one atomic transaction.
    pub fn run(&self, doc: &Value, context: &str) -> Result<(), DataplaneError> {
        let body = serde_json::to_vec(doc).map_err(|e| DataplaneError::Nft {
            context: context.to_string(),
            message: e.to_string(),
        })?;
        self.feed(&["-j", "-f", "-"], &body, context)
    }

    /// `nft -f -` with an nft script on stdin: one atomic transaction.
    pub fn run_text(&self, script: &str, context: &str) -> Result<(), DataplaneError> {
        self.feed(&["-f", "-"], script.as_bytes(), context)
    }

    fn feed(&self, args: &[&str], body: &[u8], context: &str) -> Result<(), DataplaneError> {
        self.check_netns(context)?;
        let err = |message: String| DataplaneError::Nft {
            context: context.to_string(),
            message,
        };
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| err(format!("cannot run {}: {e}", self.program)))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(body)
                .map_err(|e| err(format!("writing to nft: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| err(format!("waiting for nft: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()))
        }
    }

    /// `nft -j list ruleset`, reduced to routerd's tables.
    pub fn list_owned(&self) -> Result<Vec<ObservedNftTable>, DataplaneError> {
        self.check_netns("nft -j list ruleset")?;
        let out = Command::new(&self.program)
            .args(["-j", "list", "ruleset"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| DataplaneError::Io {
                context: format!("{} -j list ruleset", self.program),
                message: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(DataplaneError::Nft {
                context: "nft -j list ruleset".into(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        nft_json::parse_listing(&text).map_err(|e| DataplaneError::Nft {
            context: "nft -j list ruleset".into(),
            message: e.to_string(),
        })
    }
}

/// From this size of a table's text on, [`NftJson`] loads it as text.
const TEXT_BATCH_BYTES: usize = 32 * 1024;

impl NftBackend for NftJson {
    fn name(&self) -> &'static str {
        "nft-json"
    }

    fn supports(&self, _table: &NftTable) -> Result<(), String> {
        Ok(())
    }

    fn replace_table(&mut self, table: &NftTable) -> Result<(), DataplaneError> {
        // A large table goes to nft as text: its JSON front end takes about
        // twice as long as the text one to parse and evaluate the same
        // table (1,000 EgressRouter redirects, docs/performance.md), and
        // that, not the kernel's commit, is what a big replacement costs.
        // Small tables keep JSON: the fixed cost dominates there. Both
        // forms of every golden shape are checked against the kernel
        // (crates/render/tests/golden.rs).
        let text = nft_text::replace_batch(table);
        if text.len() >= TEXT_BATCH_BYTES {
            return self.run_text(
                &text,
                &format!("nft -f - (replace table {} {})", table.family, table.name),
            );
        }
        self.run(
            &nft_json::replace_document(table),
            &format!(
                "nft -j -f - (replace table {} {})",
                table.family, table.name
            ),
        )
    }

    fn delete_table(&mut self, key: &NftTableKey) -> Result<(), DataplaneError> {
        self.run(
            &nft_json::delete_document(key),
            &format!("nft delete table {key}"),
        )
    }

    fn supports_set_update(&self, _sets: &[NftSetDelta]) -> Result<(), String> {
        Ok(())
    }

    fn update_sets(
        &mut self,
        key: &NftTableKey,
        sets: &[NftSetDelta],
    ) -> Result<(), DataplaneError> {
        self.run(
            &nft_json::update_sets_document(key, sets),
            &format!("nft -j -f - (update sets of table {key})"),
        )
    }
}
