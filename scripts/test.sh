#!/usr/bin/env bash
# The whole test suite. As root, the network-namespace tests run too; as any
# other user they are listed as ignored (never as passed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

args=(--workspace --no-fail-fast)
extra=()
if [ "$(id -u)" -eq 0 ]; then
  extra+=(--include-ignored)
else
  echo "not root: namespace tests are reported as ignored" >&2
fi
cargo test "${args[@]}" -- "${extra[@]}"
