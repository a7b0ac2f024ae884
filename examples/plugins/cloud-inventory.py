#!/usr/bin/python3
"""cloud-inventory: an example routerd plugin (plugin.routerd.net/v1alpha1).

Reads one PluginRequest (JSON) on stdin and prints one PluginResult (JSON) on
stdout. It stands in for a cloud-inventory plugin: the "inventory" is a small
JSON file (CLOUD_INVENTORY, from the Plugin's spec.env) or the built-in sample
below. For the VPC it finds, it proposes

  * an IPv4Route to the VPC prefix through the overlay gateway, and
  * a mask of the static fallback route the operator wrote for the same
    prefix (allowed by a DynamicOverridePolicy in startup config),

plus one display-only action plan. Standard library only; no network access.
"""

import datetime
import json
import os
import sys

SAMPLE = {
    "vpcs": [
        {"name": "cloud-vpc", "cidr": "10.40.0.0/16", "gateway": "192.0.2.9"},
    ]
}


def load_inventory():
    path = os.environ.get("CLOUD_INVENTORY", "")
    if not path:
        return SAMPLE
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main():
    request = json.load(sys.stdin)
    if request.get("kind") != "PluginRequest":
        print("expected a PluginRequest on stdin", file=sys.stderr)
        return 2
    inventory = load_inventory()
    device = os.environ.get("OVERLAY_DEVICE", "wg0")
    fallback = os.environ.get("FALLBACK_ROUTE", "cloud-fallback")
    resources = []
    for vpc in inventory.get("vpcs", []):
        resources.append({
            "apiVersion": "net.routerd.net/v1alpha1",
            "kind": "IPv4Route",
            "metadata": {
                "name": vpc["name"],
                "annotations": {"routerd.net/dynamic-source": "Plugin/" + request["metadata"]["name"]},
            },
            "spec": {
                "destination": vpc["cidr"],
                "device": device,
                "gateway": vpc["gateway"],
                "metric": 50,
            },
        })
    directives = []
    if resources:
        directives.append({
            "op": "mask",
            "target": {"apiVersion": "net.routerd.net/v1alpha1", "kind": "IPv4Route", "name": fallback},
            "reason": "cloud inventory reports the VPC reachable over the overlay",
        })
    print("cloud-inventory: %d VPC route(s), trigger %s" % (len(resources), request["spec"]["trigger"]["type"]),
          file=sys.stderr)
    result = {
        "apiVersion": "plugin.routerd.net/v1alpha1",
        "kind": "PluginResult",
        "status": {
            "observedAt": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ttl": os.environ.get("PLUGIN_TTL", "5m"),
            "resources": resources,
            "directives": directives,
            "actionPlans": [{
                "name": "enable-forwarding",
                "provider": "aws",
                "action": "ensure-forwarding-enabled",
                "mode": "dry-run",
                "description": "source/destination check must be off on the router's ENI",
            }],
            "events": [{"type": "inventory.observed", "message": "%d VPC(s)" % len(resources)}],
        },
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
