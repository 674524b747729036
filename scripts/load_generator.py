"""The devices the benchmarks drive: the kit's device client (``device.simulate``) in processes of their own.

A manifest is dealt into shards, one a generator process; the processes start together (a barrier) so
that the run is timed from one moment, and share neither a process nor a GIL with the emulator.
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
from pathlib import Path

from emulator_process import EmulatorProcess


def _generator(
    shard: str, endpoint: str, root_ca: str, messages: int, concurrency: int, topic_root: str, barrier, results
) -> None:
    from device.simulate import simulate_manifest

    barrier.wait()
    started, cpu = time.monotonic(), time.process_time()
    summary = simulate_manifest(
        Path(shard), endpoint, root_ca=Path(root_ca), concurrency=concurrency, messages=messages, topic_root=topic_root
    )
    results.put(
        {
            "cpu": time.process_time() - cpu,
            "ended": time.monotonic(),
            "started": started,
            "summary": summary.to_dict(),
            "times": summary.first_publish_times,
        }
    )


def shard_manifest(manifest: Path, count: int, parts: int, out: Path) -> list[Path]:
    """The first ``count`` devices of ``manifest`` dealt round-robin into ``parts`` manifests."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(manifest.with_name("ca.pem"), out / "ca.pem")  # manifest paths are relative to its folder
    shards = [out / f"shard-{i}.jsonl" for i in range(min(parts, count))]
    sinks = [path.open("w") for path in shards]
    try:
        with manifest.open() as lines:
            for index, line in zip(range(count), lines, strict=False):
                sinks[index % len(sinks)].write(line)
    finally:
        for sink in sinks:
            sink.close()
    return shards


def run_devices(
    emu: EmulatorProcess, shards: list[Path], *, messages: int, concurrency: int, topic_root: str = "devices"
) -> dict:
    """Run every shard in its own process, started together; the merged summary, timed from the start.
    The devices publish under ``topic_root`` (a stack's devices: its DeviceTopicRoot output)."""
    from device.simulate import nearest_rank

    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(len(shards) + 1), context.Queue()
    root_ca = emu.info["endpoint_ca"]
    workers = [
        context.Process(
            target=_generator,
            args=(str(s), emu.endpoint, root_ca, messages, concurrency, topic_root, barrier, results),
        )
        for s in shards
    ]
    for worker in workers:
        worker.start()
    barrier.wait()
    go, go_wall = time.monotonic(), time.time()
    emulator_cpu, children_cpu = emu.cpu_seconds(), emu.children_cpu_seconds()
    parts = [results.get() for _ in workers]
    emulator_cpu = emu.cpu_seconds() - emulator_cpu
    children_cpu = emu.children_cpu_seconds() - children_cpu  # Lambda workers (those still alive)
    for worker in workers:
        worker.join()
    times = sorted(t for part in parts for t in part["times"])
    failures: dict[str, int] = {}
    for part in parts:
        for reason, n in part["summary"]["failuresByReason"].items():
            failures[reason] = failures.get(reason, 0) + n
    return {
        "go": go,
        "goWall": go_wall,
        "seconds": max(part["ended"] for part in parts) - go,
        "devices": sum(part["summary"]["devices"] for part in parts),
        "succeeded": sum(part["summary"]["succeeded"] for part in parts),
        "messages": sum(part["summary"]["messagesSent"] for part in parts),
        "attempts": sum(part["summary"]["attempts"] for part in parts),
        "p50": nearest_rank(times, 50),
        "p95": nearest_rank(times, 95),
        "failures": failures,
        "emulatorCpu": round(emulator_cpu, 2),
        "workerCpu": round(children_cpu, 2),
        "generatorCpu": round(sum(part["cpu"] for part in parts), 2),
    }
