#!/usr/bin/env python3
"""What the JITR burst's latency would be if activations ran at a given rate: a model of the devices' backoff.

The burst (``bench_emulator.py --scenarios jitr-burst``) switches 100 JITR devices on at once. Each device's
first connection is dropped (JITR), then it reconnects after the kit's default backoff (``base.backoff``:
full jitter, the n-th wait uniform in [0, 2**n] seconds, as AWS IoT allows one CONNECT a second per client
id), and it publishes on the first reconnect after its certificate is ACTIVE. This model draws those waits
with the kit's own :class:`~base.backoff.Backoff` and lets activations land one after another at ``rate``
a second from ``--start`` seconds on, in random order, and reports the medians over ``--trials`` of the
p50 and p95 from switch-on to first publish. It says which activation rate the target (p50 <= 1 s, p95 <= 2 s)
needs, whatever runs the activations; ``bench_emulator.py`` measures the rate the emulator reaches.

    .venv/bin/python scripts/model_jitr_burst.py --rates 50,100,200,300,1000

Times of the model, measured with ``bench_emulator.py --scenarios jitr-burst,jitr-floor``: a first
connection is dropped 0.1-0.5 s after switch-on, a dropped reconnect takes 0.03 s, an accepted one and its
publish 0.05 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from base.backoff import Backoff  # noqa: E402  (after the path)
from device.simulate import nearest_rank  # noqa: E402

FIRST_DROP = (0.1, 0.5)  # seconds from switch-on to the first connection's drop
DROPPED_RECONNECT = 0.03
ACCEPTED_AND_PUBLISHED = 0.05


def burst(rate: float, *, devices: int, start: float, rand: random.Random) -> list[float]:
    """Seconds from switch-on to each device's first publish, activations landing at ``rate`` from ``start``."""
    backoff = Backoff(attempts=64)
    order = list(range(devices))
    rand.shuffle(order)
    active_at = {device: start + (place + 1) / rate for place, device in enumerate(order)}
    published = []
    for device in range(devices):
        at = rand.uniform(*FIRST_DROP)
        for wait in backoff.delays(rand.random):
            at += wait
            if at >= active_at[device]:
                published.append(at + ACCEPTED_AND_PUBLISHED)
                break
            at += DROPPED_RECONNECT
    return sorted(published)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="25,50,100,200,300,500,1000", help="activations a second, comma-separated")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--start", type=float, default=0.3, help="seconds from switch-on to the first activation")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rand = random.Random(args.seed)
    print(f"{args.devices} devices, activations from {args.start} s, medians of {args.trials} trials")
    print("activations/s   p50 s   p95 s   target met")
    for rate in (float(text) for text in args.rates.split(",")):
        runs = [burst(rate, devices=args.devices, start=args.start, rand=rand) for _ in range(args.trials)]
        p50 = statistics.median(nearest_rank(run, 50) or 0.0 for run in runs)
        p95 = statistics.median(nearest_rank(run, 95) or 0.0 for run in runs)
        met = "yes" if p50 <= 1.0 and p95 <= 2.0 else "no"
        print(f"{rate:13.0f}   {p50:5.2f}   {p95:5.2f}   {met}")


if __name__ == "__main__":
    main()
