"""An RM folder's `salmon_rm.json`: what scoring needs besides the weights (base model,
input template, length limit, reward scale, contrastive or raw scoring, ensemble members)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from salmon.errors import SalmonError
from salmon.reward.template import TEMPLATE

META_FILE = "salmon_rm.json"
DEFAULT_META = {"base_model": None, "template": TEMPLATE, "max_length": 512,
                "reward_mean": 0.0, "reward_std": 1.0}


def read_meta(path: Path) -> dict[str, Any]:
    meta = dict(DEFAULT_META)
    f = path / META_FILE
    if f.exists():
        try:
            meta.update(json.loads(f.read_text(encoding="utf-8")))
        except json.JSONDecodeError as e:
            raise SalmonError(f"{f}: not valid JSON ({e.msg})") from None
    if meta["template"] != TEMPLATE:
        raise SalmonError(f"{f}: unknown reward-model template {meta['template']!r} (this version reads {TEMPLATE!r})")
    return meta
