"""Benchmark: today's reward-model recipe against the default (fast) one, side by side.

    salmon bench train-rm --data rm_data/ --pairs 64 --json

Both recipes train on the same first `--pairs` rows of `--data` (same batch size, same
maximum length, one epoch), each in a fresh subprocess so their peak memory is measured
apart, and each trained RM is then scored on the development set (which chooses) and the
test set (which only reports) with `salmon eval-rm`'s code. Prints one JSON object:
- today / new: the recipe's settings, pairs_per_s (training pairs per second of the
  trainer's own runtime), train_seconds, peak_rss_mb (the subprocess's peak resident
  memory after training), and dev / test: n, accuracy, flip_rate, longer_wins;
- speedup: new pairs_per_s / today's;
- dev_accuracy_diff: new minus today's accuracy on the dev set, with a 95% paired
  bootstrap interval over its pairs (`dev_accuracy_diff_ci95`);
- matmul_peak_gflops_per_s: a dense fp32 matmul shaped like the model's MLP, measured in
  this run, so the absolute figures can be compared across machines; and the same in bf16
  (`matmul_bf16_gflops_per_s`: where it is well above the fp32 one, train-rm's
  `--mixed-precision bf16` trains faster).

`--today k=v,...` replaces the old recipe's settings, to measure one setting alone: e.g.
`--today trainable_layers=8,share_prefix=true --new mixed_precision=bf16` is today's
default recipe in fp32 against the same recipe under bf16 autocast.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmon.config import opt
from salmon.errors import SalmonError

# the recipe before this benchmark existed: LoRA on every layer, whole responses, no flip term
TODAY: dict[str, Any] = {"trainable_layers": 0, "max_response_tokens": None, "flip_coefficient": 0.0, "share_prefix": False,
                         "lora": True, "lora_r": 16, "lora_alpha": 32, "mixed_precision": "no"}
TARGETS = {"speedup": 3.0, "peak_rss_mb": 4096}


@dataclass
class BenchTrainRMConfig:
    model: str = opt("default", "Base model: 'default' (embedded SmolLM2-135M-Instruct) or a local folder")
    data: str = opt("rm_data", "Training pairs: a `salmon aggregate` folder or a JSONL file with its columns")
    pairs: int = opt(64, "Training rows each recipe trains on (the first N of --data, the same for both)")
    batch_size: int = opt(4, "Pairs per step (the same for both)")
    max_length: int = opt(448, "Maximum tokens per input (the same for both)")
    dev: str = opt("judge_dev", "Labeled pairs that choose between recipes (path or built-in set)")
    test: str | None = opt("judge_test", "Labeled pairs reported only ('' for none)")
    eval_limit: int | None = opt(None, "Score only the first N pairs of --dev and --test")
    new: str = opt("", "Settings of the new recipe over train-rm's defaults, as k=v,k=v "
                       "(e.g. trainable_layers=4,flip_coefficient=1)")
    today: str = opt("", "Settings that replace the old recipe's, as k=v,k=v: to measure one setting alone, "
                         "e.g. trainable_layers=8,share_prefix=true with --new mixed_precision=bf16")
    out: str | None = opt(None, "Keep the trained RMs and evaluations here (default: a temporary folder)")
    json: bool = opt(False, "Print only the JSON object")

    def validate(self) -> None:
        if self.pairs < 1 or self.batch_size < 1:
            raise SalmonError("--pairs and --batch-size must be at least 1")
        parse_overrides(self.new)
        parse_overrides(self.today, "--today")


def parse_overrides(spec: str, flag: str = "--new") -> dict[str, Any]:
    """'a=1,b=x' -> {'a': 1, 'b': 'x'} (values read as YAML), checked against train-rm's fields."""
    import yaml

    from salmon.reward.train import TrainRMConfig

    fields = {f.name for f in dataclasses.fields(TrainRMConfig)}
    out: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            raise SalmonError(f"{flag} {item!r}: expected name=value with a train-rm setting name")
        out[key] = yaml.safe_load(value)
    return out


def paired_bootstrap_ci(a: list[float], b: list[float], n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of mean(b) - mean(a) by resampling the pairs (a[i], b[i]) together."""
    import random

    if not a or len(a) != len(b):
        raise ValueError("paired_bootstrap_ci needs two equal, non-empty lists")
    rng, n = random.Random(seed), len(a)
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot))
    return means[int(0.025 * n_boot)], means[min(n_boot - 1, int(0.975 * n_boot))]


def recipe_config(cfg: BenchTrainRMConfig, settings: dict[str, Any], out: Path) -> dict[str, Any]:
    """The train-rm settings of one recipe run (a plain dict, sent to the subprocess)."""
    return {"model": cfg.model, "data": cfg.data, "out": str(out), "limit": cfg.pairs, "epochs": 1.0,
            "batch_size": cfg.batch_size, "max_length": cfg.max_length, "eval_fraction": 0.0,
            "save_steps": 10**9, "eval_steps": 10**9, "logging_steps": 5, "norm_samples": 8, "progress": False,
            "resume": False, **settings}


def run_recipe(train: dict[str, Any], sets: dict[str, str], eval_limit: int | None, work: Path) -> dict[str, Any]:
    """Train and evaluate one recipe in a fresh Python process; its result dict."""
    spec = work / "spec.json"
    spec.write_text(json.dumps({"train": train, "sets": sets, "eval_limit": eval_limit}))
    proc = subprocess.run([sys.executable, "-m", "salmon.reward.bench", str(spec)], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise SalmonError(f"bench train-rm: the recipe run failed: {tail[0]}")
    return json.loads((work / "result.json").read_text())


def _child(spec_path: str) -> None:
    """Inside the subprocess: train, note the peak memory, then evaluate."""
    import resource

    from salmon.reward.evaluate import EvalRMConfig, eval_rm
    from salmon.reward.train import TrainRMConfig, train_rm

    spec = json.loads(Path(spec_path).read_text())
    out = Path(train_rm(TrainRMConfig(**spec["train"])))
    summary = json.loads((out / "summary.json").read_text())
    result: dict[str, Any] = {"pairs_per_s": summary["pairs_per_s"], "train_seconds": summary["runtime_s"],
                              "steps": summary["steps"], "train_loss": summary["train_loss"],
                              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    for name, labeled in spec["sets"].items():
        ev = Path(eval_rm(EvalRMConfig(rm=str(out), labeled=labeled, out=str(out.parent / f"eval_{name}"),
                                       limit=spec["eval_limit"], progress=False)))
        m = json.loads((ev / "metrics.json").read_text())
        scores = [json.loads(line) for line in (ev / "scores.jsonl").read_text().splitlines()]
        result[name] = {k: m[k] for k in ("n", "accuracy", "flip_rate", "longer_wins")}
        result[name]["correct"] = [1.0 if s["rc"] > s["rr"] else 0.5 if s["rc"] == s["rr"] else 0.0 for s in scores]
    (Path(spec_path).parent / "result.json").write_text(json.dumps(result))


def measure_train_rm(cfg: BenchTrainRMConfig) -> dict[str, Any]:
    from salmon.machine import PROBE_SHAPE, matmul_peak
    from salmon.reward.train import TrainRMConfig

    defaults = {f.name: getattr(TrainRMConfig(), f.name) for f in dataclasses.fields(TrainRMConfig)}
    today = TODAY | parse_overrides(cfg.today, "--today")
    new = {k: defaults[k] for k in today} | parse_overrides(cfg.new)
    sets = {"dev": cfg.dev, **({"test": cfg.test} if cfg.test else {})}
    result: dict[str, Any] = {"model": cfg.model, "data": cfg.data, "pairs": cfg.pairs, "batch_size": cfg.batch_size,
                              "max_length": cfg.max_length}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(cfg.out) if cfg.out else Path(tmp)
        for name, settings in (("today", today), ("new", new)):
            work = root / name
            work.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            run = run_recipe(recipe_config(cfg, settings, work / "rm"), sets, cfg.eval_limit, work)
            result[name] = {"settings": settings, **run, "wall_seconds": round(time.perf_counter() - started, 1)}
    result["matmul_peak_gflops_per_s"] = round(matmul_peak(*PROBE_SHAPE, seconds=1.0), 1)
    result["matmul_bf16_gflops_per_s"] = round(matmul_peak(*PROBE_SHAPE, seconds=0.5, dtype="bfloat16"), 1)
    return summarize(result)


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """Add speedup, the dev accuracy difference with its interval, and the targets."""
    old, new = result["today"], result["new"]
    result["speedup"] = round(new["pairs_per_s"] / old["pairs_per_s"], 3)
    result["dev_accuracy_diff"] = round(new["dev"]["accuracy"] - old["dev"]["accuracy"], 4)
    lo, hi = paired_bootstrap_ci(old["dev"]["correct"], new["dev"]["correct"])
    result["dev_accuracy_diff_ci95"] = [round(lo, 4), round(hi, 4)]
    for run in (old, new):
        for name in ("dev", "test"):
            run.get(name, {}).pop("correct", None)
    result["targets_met"] = {"speedup": result["speedup"] >= TARGETS["speedup"],
                             "peak_rss_mb": new["peak_rss_mb"] < TARGETS["peak_rss_mb"],
                             "dev_accuracy_not_lower": result["dev_accuracy_diff"] >= 0}
    return result


def bench_train_rm(cfg: BenchTrainRMConfig) -> None:
    """Print the benchmark's JSON object (with --json, nothing else)."""
    result = measure_train_rm(cfg)
    if not cfg.json:
        for name in ("today", "new"):
            r = result[name]
            print(f"{name:<6} {r['pairs_per_s']:.3f} pairs/s  peak {r['peak_rss_mb']:.0f} MB  "
                  f"dev {r['dev']['accuracy']:.3f}" + (f"  test {r['test']['accuracy']:.3f}" if "test" in r else ""))
        print(f"speedup {result['speedup']}  matmul peak {result['matmul_peak_gflops_per_s']} GFLOP/s")
    print(json.dumps(result))


if __name__ == "__main__":
    _child(sys.argv[1])
