"""salmon: SALMON (Self-Alignment with Instructable Reward Models) as a library and CLI.

The pipeline, one module per stage:
  principles -> generate -> pairs -> judge -> aggregate -> reward -> rl
with optional self_align + sft at the start and evaluate / report at the end.
"""

__version__ = "0.1.0"
