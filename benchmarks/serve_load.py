"""Load benchmark for `salmon serve`: N concurrent clients on loopback, bounded requests.

    python benchmarks/serve_load.py [--rm runs/default/train_rm] [--clients 32] [--requests 1000]

Runs the same load twice in one process, side by side: dynamic batching (up to
--max-batch items per forward) and one-at-a-time (--max-batch 1). Prints one JSON object
with throughput, p50 / p99 latency and error count for each, and the throughput ratio.
Without --rm it builds an untrained reward model on a tiny random base (the ratio, not
the absolute speed, is the point there). Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def tiny_rm(folder: Path) -> Path:
    from salmon.models import build_tiny_model, load_tokenizer
    from salmon.reward import InstructableRewardModel
    from salmon.reward.train import TrainRMConfig, build_rm_model

    base = build_tiny_model(folder / "base")
    tok = load_tokenizer(str(base))
    model = build_rm_model(TrainRMConfig(model=str(base)), tok)
    meta = {"base_model": str(base), "template": "rm", "max_length": 256, "reward_mean": 0.0, "reward_std": 1.0}
    return InstructableRewardModel(model, tok, meta).save(folder / "rm")


def start_server(rm, max_batch: int):
    import uvicorn

    from salmon.serve import ChatMarkers, ServeConfig, create_app

    cfg = ServeConfig(max_batch_size=max_batch, batch_wait_ms=5 if max_batch > 1 else 0)
    app = create_app(rm.score, cfg, ChatMarkers.from_tokenizer(rm.tokenizer), ["The response is helpful."])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, server.servers[0].sockets[0].getsockname()[1]


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
    ap.add_argument("--rm", help="reward model folder (default: an untrained tiny one)")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--max-batch", type=int, default=16)
    args = ap.parse_args()
    from salmon.reward import InstructableRewardModel

    with tempfile.TemporaryDirectory() as tmp:
        rm = InstructableRewardModel.load(args.rm or tiny_rm(Path(tmp)))
        result = {"clients": args.clients, "rm": args.rm or "tiny random"}
        for name, batch in (("dynamic_batching", args.max_batch), ("one_at_a_time", 1)):
            server, thread, port = start_server(rm, batch)
            try:
                result[name] = asyncio.run(load(port, args.clients, args.requests))
            finally:
                server.should_exit = True
                thread.join(10)
        result["throughput_ratio"] = round(result["dynamic_batching"]["throughput_rps"]
                                           / result["one_at_a_time"]["throughput_rps"], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
