#!/usr/bin/env bash
# Installs the system packages the build and the tests need, only when missing.
# Sourced by scripts/test.sh and scripts/demo.sh; safe to run again.
set -euo pipefail

ROUTERD_APT_PACKAGES=(
  libclang-dev   # rustables runs bindgen over the kernel nf_tables headers
  clang
  nftables       # nft: the JSON backend, and inspection in namespace tests
  iproute2       # ip netns, veth, ip route/rule checks
  iputils-ping
  conntrack      # conntrack -L in the failover tests
  procps
  curl          # control-socket tests run a non-root client
  python3        # examples/plugins are Python
  dnsmasq-base   # a DNS server inside the lab for IPAddressSet names (e2e_names)
  keepalived     # VRRP election and virtual IPs of EgressGateway groups (docs/adr/0017)
  conntrackd     # connection-state sync between gateway members (docs/adr/0017)
  iputils-arping # ARP requests in the address-capture tests (output parsed: not the Habets arping)
  tcpdump        # VRRP advert inspection while debugging gateway tests
)

missing=()
for p in "${ROUTERD_APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing missing packages: ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (install Rust with rustup)" >&2
  exit 1
fi
