//! `routerctl completions SHELL` and `routerctl man DIR`: generated from the
//! same clap definition as the parser, so they never drift from it.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::exit::OK;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// Shell to generate for.
    shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Directory to write routerctl.1 and one page per subcommand into.
    #[arg(default_value = ".")]
    dir: PathBuf,
}

pub fn completions(a: CompletionsArgs) -> Result<i32> {
    let mut cmd = crate::cli_command();
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "routerctl", &mut buf);
    crate::output::out(&String::from_utf8_lossy(&buf))?;
    Ok(OK)
}

pub fn man(a: ManArgs) -> Result<i32> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("create {}", a.dir.display()))?;
    clap_mangen::generate_to(crate::cli_command(), &a.dir)
        .with_context(|| format!("write man pages to {}", a.dir.display()))?;
    Ok(OK)
}

#[cfg(test)]
mod tests {
    #[test]
    fn completions_and_man_pages_cover_every_subcommand() {
        let cmd = crate::cli_command();
        let mut buf = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut cmd.clone(),
            "routerctl",
            &mut buf,
        );
        let bash = String::from_utf8(buf).unwrap();
        for sub in [
            "validate", "plan", "schema", "status", "get", "events", "explain",
        ] {
            assert!(bash.contains(sub), "bash completion lacks {sub}");
        }
        let dir = tempfile::tempdir().unwrap();
        clap_mangen::generate_to(cmd, dir.path()).unwrap();
        assert!(dir.path().join("routerctl.1").exists());
        assert!(dir.path().join("routerctl-plan.1").exists());
    }
}
