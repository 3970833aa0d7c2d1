"""DPO on salmon's exported preferences with plain TRL: no salmon import anywhere.

    salmon export-preferences --data runs/default/aggregate --out prefs/
    python examples/dpo_plain_trl.py --data prefs/preferences.jsonl \
        --model ~/.cache/salmon/models/SmolLM2-135M-Instruct --out dpo_plain/ --steps 20

`--data` is the JSONL (read with `load_dataset("json", ...)`) or the `dataset/` folder
(read with `load_from_disk`); `--model` any causal LM folder or hub id. A LoRA adapter is
trained (the reference is the model with the adapter off) and saved to `--out`; the
first and last logged loss and reward accuracy are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def load_preferences(path: str):
    from datasets import load_dataset, load_from_disk

    if Path(path).is_dir():
        return load_from_disk(path)
    return load_dataset("json", data_files=path, split="train")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="preferences.jsonl or the exported dataset/ folder")
    ap.add_argument("--model", required=True, help="causal LM folder or hub id")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--learning-rate", type=float, default=5e-5)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    data = load_preferences(args.data).select_columns(["prompt", "chosen", "rejected"])
    tok = AutoTokenizer.from_pretrained(args.model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if isinstance(data[0]["prompt"], str) and tok.chat_template:
        # text rows: as chat messages, so TRL renders them with the model's template
        data = data.map(lambda r: {"prompt": [{"role": "user", "content": r["prompt"]}],
                                   "chosen": [{"role": "assistant", "content": r["chosen"]}],
                                   "rejected": [{"role": "assistant", "content": r["rejected"]}]})
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    config = DPOConfig(output_dir=args.out, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
                       learning_rate=args.learning_rate, beta=args.beta, max_length=args.max_length,
                       logging_steps=1, save_strategy="no", report_to=[], seed=args.seed,
                       use_cpu=not torch.cuda.is_available(), disable_tqdm=True, gradient_checkpointing=False)
    lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = DPOTrainer(model=model, args=config, train_dataset=data, processing_class=tok, peft_config=lora)
    trainer.train()
    trainer.save_model(args.out)
    logs = [h for h in trainer.state.log_history if "loss" in h]
    keys = ("loss", "rewards/accuracies", "rewards/margins")
    print(json.dumps({"rows": len(data), "steps": trainer.state.global_step,
                      "first": {k: logs[0].get(k) for k in keys}, "last": {k: logs[-1].get(k) for k in keys},
                      "mean_last_5": {k: sum(h.get(k, 0.0) for h in logs[-5:]) / len(logs[-5:]) for k in keys}}))


if __name__ == "__main__":
    main()
