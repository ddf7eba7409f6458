"""memcached access for the kit ([memcached] servers, prefix): one place builds the client."""
from __future__ import annotations


def client_from_config(cfg, ignore_exc: bool = True):
    """A pymemcache client: HashClient over the configured servers (a single one works too)."""
    from pymemcache.client.hash import HashClient
    m = cfg["memcached"]
    servers = []
    for item in m["servers"]:
        host, _, port = item.rpartition(":")
        servers.append((host, int(port)))
    return HashClient(servers, connect_timeout=m["timeout"], timeout=m["timeout"], ignore_exc=ignore_exc,
                      key_prefix=(m["prefix"] + ":").encode(), retry_attempts=1, dead_timeout=1,
                      use_pooling=True)
