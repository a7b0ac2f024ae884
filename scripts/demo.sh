#!/usr/bin/env bash
# The main job on an embedded default: `routerd demo` builds a lab of network
# namespaces (a router with two uplinks, two upstreams hosting the probe
# target, a LAN client), runs the daemon in it with examples/demo/config.yaml,
# cuts the primary uplink, shows the switch and the failback after the
# hold-down, prints a timeline and removes every namespace it made.
# It needs root; without root it shows the offline plan of the same config.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo build --release -q -p routerd -p routerctl
if [ "$(id -u)" -eq 0 ]; then
  exec ./target/release/routerd demo "$@"
fi
echo "not root: showing the offline plan instead of the namespace demo (run as root for the live demo)" >&2
./target/release/routerctl validate -f examples/demo/config.yaml
exec ./target/release/routerctl plan -f examples/demo/config.yaml
