"""Do principles alone steer the policy? Two PPO runs, same RM and prompts, one with the
`brevity` principles and one with `thoroughness`; response length and RM score before
and after each.

    python benchmarks/steer.py --rm rm/ --json        # same as `salmon bench steer --rm rm/ --json`
    python benchmarks/steer.py --rm rm/ --steps 40 --sets my_a.yaml,my_b.yaml

See `salmon.rl.steer_bench.steer`.
"""

import typer

from salmon.cli_build import stage_command
from salmon.rl.steer_bench import SteerBenchConfig, steer

if __name__ == "__main__":
    typer.run(stage_command(SteerBenchConfig, steer))
