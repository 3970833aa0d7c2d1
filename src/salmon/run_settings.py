"""The settings a run used, recorded in its `metrics.json` (issue 14).

`salmon run` calls `record_settings` after its last stage: the top-level `metrics.json`
(written by the report stage) gains a `settings` block with the config file, the run
section and every stage's resolved config (paths inside the run folder as `<run>`), plus
`reference_choices`, the few settings where salmon's default and the SALMON reference
code differ (see docs/paper-faithful.md), so a reader sees at once which of the two a run followed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from salmon.config import to_dict
from salmon.jsonl import atomic_write_text

# (stage, field) pairs where salmon's default departs from the SALMON reference code.
REFERENCE_FIELDS = {
    "aggregate": ("count_policy", "max_principles", "scale", "consistency", "label_noise", "rule_label_noise",
                  "banned_phrase_prob", "drop_wrong_language", "rule_skip_types", "passes"),
    "train_rm": ("templates", "head_init"),
    "rl": ("type_boost", "type_boost_mode", "type_boost_types", "value_head_init", "kl_estimator", "kl_clamp",
           "gamma", "lam", "whiten_rewards", "reward_scale", "normalize_reward", "length_bonus_coef", "ppo_epochs"),
}


def _plain(value: Any, run_dir: str) -> Any:
    if isinstance(value, str):
        return value.replace(run_dir, "<run>")
    if isinstance(value, list):
        return [_plain(v, run_dir) for v in value]
    return value


def settings_block(config: str | None, run: Any, configs: dict[str, Any]) -> dict[str, Any]:
    """{config, run, stages: {stage: resolved config}, reference_choices: {stage.field: value}}."""
    run_dir = str(run.out)
    stages = {s: {k: _plain(v, run_dir) for k, v in to_dict(c).items()} for s, c in configs.items()}
    chosen = {f"{s}.{f}": stages[s][f] for s, fields in REFERENCE_FIELDS.items() if s in stages
              for f in fields if f in stages[s]}
    return {"config": config, "run": {k: _plain(v, run_dir) for k, v in to_dict(run).items()},
            "stages": stages, "reference_choices": chosen}


def record_settings(run_dir: Path, block: dict[str, Any]) -> Path | None:
    """Add `settings` to `run_dir/metrics.json` (atomically); None when there is no such file."""
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        return None
    metrics = json.loads(path.read_text(encoding="utf-8"))
    metrics["settings"] = block
    atomic_write_text(path, json.dumps(metrics, indent=2) + "\n")
    return path
