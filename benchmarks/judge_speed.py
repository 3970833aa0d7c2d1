"""Prefix-shared self-judge vs the full-prompt reference: verdicts/s, speedup, score
agreement, and achieved GFLOP/s against a dense matmul measured in the same run.

    python benchmarks/judge_speed.py --pairs 16 --principles 8 --json   # = `salmon bench judge --json`
    python benchmarks/judge_speed.py --response-tokens 0                 # the short dev-set pairs as they are

See `salmon.judge.bench` for what each figure means.
"""

import typer

from salmon.cli_build import stage_command
from salmon.judge.bench import BenchJudgeConfig, bench_judge

if __name__ == "__main__":
    typer.run(stage_command(BenchJudgeConfig, bench_judge))
