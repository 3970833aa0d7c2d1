"""Peak RSS of one PPO step: one shared base vs separate policy/reference/value/reward copies.

    python benchmarks/rl_memory.py --json            # same as `salmon bench rl-memory --json`
    python benchmarks/rl_memory.py --model /path/to/model --rm rm/ --batch-size 4

Each configuration runs in a fresh process; see `salmon.rl.bench.rl_memory`.
"""

import typer

from salmon.cli_build import stage_command
from salmon.rl.bench import MemoryBenchConfig, rl_memory

if __name__ == "__main__":
    typer.run(stage_command(MemoryBenchConfig, rl_memory))
