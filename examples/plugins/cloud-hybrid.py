#!/usr/bin/python3
"""cloud-hybrid: an example routerd plugin for CloudEdge L3 (issue #16).

Reads one PluginRequest (JSON) on stdin and prints one PluginResult (JSON) on
stdout. For the cloud prefixes in its inventory (CLOUD_PREFIXES, comma
separated; default 10.40.0.0/16) it proposes

  * one HybridRoute (hybrid.routerd.net/v1alpha1) through the OverlayPeer
    named by OVERLAY_PEER (default `cloud`), checked by the HealthCheck named
    by HEALTH_CHECK (optional), which routerd lowers to one IPv4Route per
    prefix, and
  * a mask of the static fallback route the operator wrote for the same
    prefix (FALLBACK_ROUTE, default `cloud-fallback`), allowed by a
    DynamicOverridePolicy in startup config: the seed's "selective
    suppression of static fallback resources while a dynamic cloud resource
    is healthy".

When the plugin stops answering its part expires (PLUGIN_TTL, default 5m):
the HybridRoute and its lowered routes go, the mask lifts and the fallback
returns. Standard library only; no network access.
"""

import datetime
import json
import os
import sys


def main():
    request = json.load(sys.stdin)
    if request.get("kind") != "PluginRequest":
        print("expected a PluginRequest on stdin", file=sys.stderr)
        return 2
    prefixes = [p.strip() for p in os.environ.get("CLOUD_PREFIXES", "10.40.0.0/16").split(",") if p.strip()]
    peer = os.environ.get("OVERLAY_PEER", "cloud")
    fallback = os.environ.get("FALLBACK_ROUTE", "cloud-fallback")
    health = os.environ.get("HEALTH_CHECK", "")
    spec = {"peerRef": peer, "destinationCIDRs": prefixes, "install": {"metric": 50}}
    if health:
        spec["healthCheckRef"] = health
    resources = []
    directives = []
    if prefixes:
        resources.append({
            "apiVersion": "hybrid.routerd.net/v1alpha1",
            "kind": "HybridRoute",
            "metadata": {"name": os.environ.get("HYBRID_ROUTE", "cloud-vpc")},
            "spec": spec,
        })
        directives.append({
            "op": "mask",
            "target": {"apiVersion": "net.routerd.net/v1alpha1", "kind": "IPv4Route", "name": fallback},
            "reason": "the cloud prefixes are routed over the overlay",
        })
    print("cloud-hybrid: %d prefix(es) via OverlayPeer/%s, trigger %s"
          % (len(prefixes), peer, request["spec"]["trigger"]["type"]), file=sys.stderr)
    result = {
        "apiVersion": "plugin.routerd.net/v1alpha1",
        "kind": "PluginResult",
        "status": {
            "observedAt": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ttl": os.environ.get("PLUGIN_TTL", "5m"),
            "resources": resources,
            "directives": directives,
        },
    }
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
