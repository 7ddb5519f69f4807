"""Zone lookup speed: 10,000 zones, 100,000 lookups, against a linear scan.

.venv/bin/python bench/zone_lookup.py
"""

from __future__ import annotations

import ipaddress
import random
import time

from zfw.zones import Zone, ZoneTable


def main() -> None:
    rng = random.Random(1)
    nets = set()
    while len(nets) < 10_000:
        if rng.random() < 0.8:
            plen = rng.randint(8, 32)
            nets.add(ipaddress.ip_network((rng.getrandbits(32), plen), strict=False))
        else:
            plen = rng.randint(16, 128)
            nets.add(ipaddress.ip_network((rng.getrandbits(128), plen), strict=False))
    zones = [Zone(f"z{i}", (n,)) for i, n in enumerate(sorted(nets, key=str))]
    t0 = time.perf_counter()
    table = ZoneTable.build(zones)
    build = time.perf_counter() - t0
    nets_l = list(nets)
    addrs = []
    for _ in range(100_000):
        n = rng.choice(nets_l)
        if rng.random() < 0.7:
            addrs.append(n.network_address + rng.randrange(n.num_addresses))
        else:
            addrs.append(
                ipaddress.ip_address(
                    rng.getrandbits(32 if n.version == 4 else 128).to_bytes(
                        4 if n.version == 4 else 16, "big"
                    )
                )
            )
    t0 = time.perf_counter()
    hits = sum(1 for a in addrs if table.lookup(a) is not None)
    lookup = time.perf_counter() - t0
    sample = addrs[:1000]
    t0 = time.perf_counter()
    for a in sample:
        max((n.prefixlen for n in nets_l if a in n), default=None)
    linear = (time.perf_counter() - t0) * len(addrs) / len(sample)
    print(f"zones: {len(zones)}, build: {build * 1000:.0f} ms")
    print(
        f"100,000 lookups: {lookup * 1000:.0f} ms ({lookup * 1e6 / len(addrs):.2f} us each, "
        f"{hits} hit a zone)"
    )
    print(
        f"linear scan, same lookups (extrapolated from 1,000): {linear:.1f} s; "
        f"ratio {linear / lookup:.0f}x"
    )


if __name__ == "__main__":
    main()
