"""`salmon train-rm --merge`: the reward model as one plain folder (no adapter, no salmon).

The LoRA weights are merged into the base and the trained score head is kept, so
`AutoModelForSequenceClassification.from_pretrained(out/merged)` gives the reward model
anywhere (safetensors), and `InstructableRewardModel.load(out/merged)` reads it in salmon.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from salmon.jsonl import atomic_write_text


def save_merged(rm, out: Path) -> Path:
    """Write `out` (written aside, then renamed into place) from a trained
    InstructableRewardModel; a fully fine-tuned RM is saved as it is."""
    from salmon.reward.model import META_FILE

    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model = rm.model
    if hasattr(model, "merge_and_unload"):
        import copy

        model = copy.deepcopy(model).merge_and_unload()  # the trained RM in memory stays as it is
    model.save_pretrained(str(tmp), safe_serialization=True)
    rm.tokenizer.save_pretrained(str(tmp))
    atomic_write_text(tmp / META_FILE, json.dumps({**rm.meta, "merged": True}, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out
