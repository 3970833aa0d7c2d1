"""`salmon merge`: an adapter output (sft, rl) merged into its base, as one portable folder.

An adapter folder names its base model by path (`base_model_name_or_path`), which is
valid only on the machine that wrote it when the base is a local folder such as the
embedded model's cache. The merged folder holds the full weights (safetensors) and the
tokenizer: `AutoModelForCausalLM.from_pretrained(out)` loads it anywhere, no salmon.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from salmon.config import opt
from salmon.errors import SalmonError
from salmon.progress import info


@dataclass
class MergeConfig:
    adapter: str = opt("policy", "A LoRA adapter folder: the output of `salmon sft` or `salmon rl`")
    out: str = opt("merged", "Output folder for the merged model")
    dtype: str = opt("float32", "Weights dtype of the merged model: float32, bfloat16 or float16")


def merge(cfg: MergeConfig) -> Path:
    from salmon.models import is_peft_adapter, load_causal_lm, load_tokenizer

    src, out = Path(cfg.adapter), Path(cfg.out)
    if not is_peft_adapter(src):
        raise SalmonError(f"--adapter {cfg.adapter}: no adapter_config.json there (expected an sft or rl output)")
    if out.exists():
        raise SalmonError(f"--out {out}: already exists; choose another folder or delete it")
    model = load_causal_lm(str(src), dtype=cfg.dtype, device="cpu")
    tok = load_tokenizer(str(src))
    tmp = out.with_name(f".{out.name}.tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    merged = model.merge_and_unload()
    merged.config.name_or_path = out.name
    merged.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    base = json.loads((src / "adapter_config.json").read_text()).get("base_model_name_or_path")
    (tmp / "salmon-merge.json").write_text(json.dumps({"adapter": str(src.resolve()), "base": base}, indent=2))
    os.replace(tmp, out)
    info(f"merged {src} into its base ({base}); wrote {out}")
    return out
