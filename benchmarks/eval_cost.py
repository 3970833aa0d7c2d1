"""What each part of `salmon eval` costs per item on the embedded model, in one process.

    python benchmarks/eval_cost.py /tmp/eval_cost            # a heavy job: ~1-2 minutes
    python benchmarks/eval_cost.py /tmp/eval_cost --items 16

Times, on the same `--items` prompts: greedy answers at batch 16 and batch 8 (64 tokens)
and red-team answers at batch 16 (48 tokens), each including its model load; scoring
`--items` labelled pairs under principle and negation (eval-rm's four inputs per pair);
scoring `--items` answers under the held-out principle set. The RM is an untrained one on
the embedded base (same cost as a trained one). Prints one JSON object with the machine's
matmul peak before and after, so the times can be normalised (salmon/machine.py).
Used to choose the default run's evaluation sizes (docs/evaluation.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    import torch

    from salmon.evaluate import EvalConfig, answer, labeled_path
    from salmon.machine import PROBE_SHAPE, matmul_peak
    from salmon.principles import load_principles
    from salmon.reward import InstructableRewardModel
    from salmon.reward.evaluate import read_labeled, score_labeled
    from salmon.rl.bench import make_untrained_rm

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="scratch folder")
    ap.add_argument("--items", type=int, default=16)
    args = ap.parse_args()
    out, n = Path(args.out), args.items
    out.mkdir(parents=True, exist_ok=True)
    rm_dir = out / "rm"
    if not (rm_dir / "salmon_rm.json").exists():
        make_untrained_rm("default", rm_dir)
    res = {"items": n, "threads": torch.get_num_threads(), "matmul_gflops_before": matmul_peak(*PROBE_SHAPE, 1.0)}
    for batch, tokens, prompts in ((16, 64, "eval"), (8, 64, "eval"), (16, 48, "redteam")):
        cfg = EvalConfig(rm=str(rm_dir), batch_size=batch, progress=False)
        t = time.time()
        recs = answer("default", prompts, out / f"gen_{prompts}_{batch}_{tokens}.jsonl", cfg, n, tokens)
        res[f"answer_{prompts}_batch{batch}_tokens{tokens}_s"] = round(time.time() - t, 1)
        res[f"answer_{prompts}_batch{batch}_tokens{tokens}_new_tokens"] = sum(r["num_tokens"][0] for r in recs)
    rm = InstructableRewardModel.load(str(rm_dir))
    t = time.time()
    score_labeled(rm, read_labeled(labeled_path("judge_test"), n), 8)
    res["rm_labelled_pairs_s"] = round(time.time() - t, 1)
    heldout = [p.definition for p in load_principles("heldout")]
    t = time.time()
    rm.score([r["prompt"] for r in recs], [r["responses"][0] for r in recs], [heldout] * len(recs))
    res["rm_answers_heldout_s"] = round(time.time() - t, 1)
    res["matmul_gflops_after"] = matmul_peak(*PROBE_SHAPE, 1.0)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
