"""Load benchmark for `salmon serve`: N concurrent clients on loopback, bounded requests.

    python benchmarks/serve_load.py [--rm runs/default/train_rm] [--clients 32] [--requests 1000]

Starts `salmon serve` twice as a separate process (so the clients in this process do not
compete with the server for Python's GIL) and sends the same load to each, side by side:
dynamic batching (up to --max-batch items per forward) and one-at-a-time (--max-batch 1).
Prints one JSON object with throughput, p50 / p99 latency and error count for each, and
the throughput ratio. Without --rm it serves an untrained reward model on --base (the
embedded model by default: the size the server really runs; `tiny` for a quick check).
Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def untrained_rm(base: str, folder: Path) -> Path:
    from salmon.models import build_tiny_model
    from salmon.rl.bench import make_untrained_rm

    base = str(build_tiny_model(folder / "base")) if base == "tiny" else base
    return make_untrained_rm(base, folder / "rm")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(rm: Path, max_batch: int, wait_ms: float) -> tuple[subprocess.Popen, int]:
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "salmon.cli", "serve", "--rm", str(rm), "--port", str(port),
           "--max-batch-size", str(max_batch), "--batch-wait-ms", str(wait_ms if max_batch > 1 else 0)]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"salmon serve exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("salmon serve did not come up in 300 s")


async def load(port: int, clients: int, requests: int) -> dict:
    import httpx

    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))

    async def client(http):
        nonlocal errors
        for i in counter:
            prompt = f"Question {i}: name one colour."
            body = {"query": [prompt + f" Answer {i}: blue."], "prompts": [prompt]}
            t0 = time.perf_counter()
            try:
                r = await http.post(f"http://127.0.0.1:{port}/get_reward", json=body)
                ok = r.status_code == 200 and len(r.json()["rewards"]) == 1
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - t0)
            errors += not ok

    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=120) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    wall = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=100)
    return {"requests": len(latencies), "errors": errors, "wall_s": round(wall, 2),
            "throughput_rps": round(len(latencies) / wall, 1),
            "p50_ms": round(1000 * q[49], 1), "p99_ms": round(1000 * q[98], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rm", help="reward model folder (default: an untrained one on --base)")
    ap.add_argument("--base", default="default", help="base model for the untrained RM: default (embedded) or tiny")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--batch-wait-ms", type=float, default=5.0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        rm = Path(args.rm) if args.rm else untrained_rm(args.base, Path(tmp))
        result = {"clients": args.clients, "rm": args.rm or f"untrained on {args.base}"}
        for name, batch in (("dynamic_batching", args.max_batch), ("one_at_a_time", 1)):
            proc, port = start_server(rm, batch, args.batch_wait_ms)
            try:
                result[name] = asyncio.run(load(port, args.clients, args.requests))
            finally:
                proc.terminate()
                proc.wait(30)
        result["throughput_ratio"] = round(result["dynamic_batching"]["throughput_rps"]
                                           / result["one_at_a_time"]["throughput_rps"], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
