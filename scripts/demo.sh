#!/usr/bin/env bash
# The main job on an embedded default: plans the example router offline.
# (`routerd demo`, the namespace lab, replaces this once the daemon exists.)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo build --release -q -p routerctl
./target/release/routerctl validate -f examples/dslite-static-egress.yaml
./target/release/routerctl plan -f examples/dslite-static-egress.yaml --state examples/state/dslite-static-egress.state.yaml
