"""Outputs load with plain PEFT / transformers in a fresh process, without salmon."""

import json
import subprocess
import sys
from pathlib import Path

from salmon.models import is_embedded_cache_path

LOAD = ("import sys\nfrom peft import AutoPeftModelForCausalLM\n"
        "m = AutoPeftModelForCausalLM.from_pretrained(sys.argv[1])\n"
        "print(type(m).__name__, m.peft_config['default'].base_model_name_or_path)\n")


def load_in_fresh_process(folder: Path) -> str:
    proc = subprocess.run([sys.executable, "-c", LOAD, str(folder)], capture_output=True, text=True, timeout=180,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})  # no salmon on the path
    assert proc.returncode == 0, proc.stderr[-1500:]
    return proc.stdout


def sft_data(path: Path) -> str:
    rows = [{"messages": [{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i}."}]}
            for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_sft_adapter_names_a_real_folder_and_loads_with_plain_peft(cli, tmp_path):
    out = tmp_path / "sft"
    code, _, err = cli("sft", "--model", "tiny", "--data", sft_data(tmp_path / "d.jsonl"), "--out", out,
                       "--max-steps", "1", "--batch-size", "2", "--lora-r", "4", "--no-progress",
                       "--device", "cpu", "--report-to", "none", "--save-total-limit", "0")
    assert code == 0, err
    base = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert Path(base).is_absolute() and (Path(base) / "config.json").exists()  # not "tiny" / "default"
    assert not (out / "checkpoints").exists()
    assert load_in_fresh_process(out).startswith("PeftModelForCausalLM")


def test_ppo_adapter_loads_with_plain_peft(tiny_model, random_rm, tmp_path):
    from salmon.rl.ppo import RLConfig, rl

    out = rl(RLConfig(policy=str(tiny_model), rm=str(random_rm), out=str(tmp_path / "ppo"), steps=1, batch_size=2,
                      max_new_tokens=4, ppo_epochs=1, progress=False, device="cpu", report_to="none",
                      save_total_limit=0))
    assert not list(out.glob("checkpoint-*"))
    assert str(tiny_model) in load_in_fresh_process(out)


def test_merge_writes_a_plain_model_with_the_adapters_outputs(tiny_model, tmp_path, cli):
    """`salmon merge`: plain AutoModelForCausalLM, same logits as base + adapter (a random,
    non-zero adapter, so the base alone would not pass)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from salmon.models import load_causal_lm

    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_model)), lora).save_pretrained(tmp_path / "ad")
    adapter, merged = tmp_path / "ad", tmp_path / "merged"
    code, _, err = cli("merge", "--adapter", adapter, "--out", merged)
    assert code == 0, err
    assert not (merged / "adapter_config.json").exists() and (merged / "model.safetensors").exists()
    ids = torch.tensor([[1, 5, 9, 200, 31]])
    with torch.no_grad():
        a = load_causal_lm(str(adapter), device="cpu", dtype="float32")(ids).logits
        b = AutoModelForCausalLM.from_pretrained(str(merged))(ids).logits
        base = AutoModelForCausalLM.from_pretrained(str(tiny_model))(ids).logits
    assert (a - b).abs().max() < 1e-4 and (a - base).abs().max() > 1e-3
    assert cli("merge", "--adapter", adapter, "--out", merged)[0] == 2  # never overwrites


def test_an_adapter_from_another_machine_finds_the_embedded_model_here():
    assert is_embedded_cache_path("/home/someone/.cache/salmon/models/SmolLM2-135M-Instruct")
    assert not is_embedded_cache_path("models/SmolLM2-135M-Instruct")
    assert not is_embedded_cache_path("/data/SmolLM2-135M-Instruct")
