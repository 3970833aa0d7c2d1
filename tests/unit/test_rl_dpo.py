"""`salmon rl --algo dpo`: TRL's DPOTrainer on aggregate output, both variants, tiny model."""

import json
import subprocess
import sys

import pytest

from salmon.errors import SalmonError
from salmon.rl.ppo import RLConfig, rl

from .test_preferences import ROWS, save_aggregate


def dpo_cfg(tiny_model, data, out, **kw) -> RLConfig:
    base = dict(algo="dpo", policy=str(tiny_model), preferences=data, out=str(out), steps=2, batch_size=2,
                max_new_tokens=16, max_prompt_tokens=64, learning_rate=1e-3, save_steps=1, progress=False,
                device="cpu", report_to="none", lora_r=4, lora_alpha=8)
    base.update(kw)
    return RLConfig(**base)


@pytest.mark.parametrize("in_system", [False, True])
def test_dpo_trains_an_adapter_that_plain_peft_loads(tiny_model, tmp_path, in_system):
    from safetensors.torch import load_file

    data = save_aggregate(ROWS, tmp_path / "agg")
    out = rl(dpo_cfg(tiny_model, data, tmp_path / "dpo", principles_in_system=in_system, save_total_limit=0))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["principles_in_system"] == in_system
    assert summary["pairs"] == (len(ROWS) if in_system else 2)
    assert summary["conversational"]  # text rows go through the tiny model's chat template too
    lora_b = [v for k, v in load_file(str(out / "adapter_model.safetensors")).items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: training moved every one
    assert not list(out.glob("checkpoint-*"))  # save_total_limit 0: removed at the end
    assert len((out / "log.jsonl").read_text().splitlines()) >= 2
    base = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert base == str(tiny_model)
    code = ("from peft import AutoPeftModelForCausalLM; import sys; "
            "m = AutoPeftModelForCausalLM.from_pretrained(sys.argv[1]); print(type(m).__name__)")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "PeftModelForCausalLM" in proc.stdout, proc.stderr[-800:]


def test_dpo_needs_preferences_and_a_full_model(tiny_model, tmp_path):
    with pytest.raises(SalmonError, match="needs --preferences"):
        rl(dpo_cfg(tiny_model, None, tmp_path / "x"))
    assert not (tmp_path / "x").exists()


def test_dpo_from_exported_preferences_via_cli(cli, tiny_model, tmp_path):
    data = save_aggregate(ROWS, tmp_path / "agg")
    code, _, err = cli("export-preferences", "--data", data, "--out", tmp_path / "prefs")
    assert code == 0, err
    code, out, err = cli("rl", "--algo", "dpo", "--policy", tiny_model, "--preferences", tmp_path / "prefs",
                         "--out", tmp_path / "dpo", "--steps", "1", "--batch-size", "2", "--max-new-tokens", "16",
                         "--max-prompt-tokens", "64", "--no-progress", "--device", "cpu", "--report-to", "none")
    assert code == 0, err
    assert (tmp_path / "dpo" / "adapter_model.safetensors").exists()
    code, _, err = cli("rl", "--algo", "dpo", "--policy", tiny_model, "--preferences", tmp_path / "prefs",
                       "--principles-in-system", "--out", tmp_path / "dpo2", "--device", "cpu")
    assert code == 2 and "--principles-in-system" in err and not (tmp_path / "dpo2").exists()


@pytest.mark.parametrize("in_system", [False, True])
def test_exported_data_trains_with_the_plain_trl_example(tiny_model, tmp_path, in_system):
    from pathlib import Path

    from salmon.preferences import ExportPreferencesConfig, export_preferences

    prefs = export_preferences(ExportPreferencesConfig(data=save_aggregate(ROWS, tmp_path / "agg"),
                                                       out=str(tmp_path / "prefs"), principles_in_system=in_system))
    script = Path(__file__).resolve().parents[2] / "examples" / "dpo_plain_trl.py"
    data = prefs / ("dataset" if in_system else "preferences.jsonl")
    proc = subprocess.run([sys.executable, str(script), "--data", str(data), "--model", str(tiny_model),
                           "--out", str(tmp_path / "plain"), "--steps", "2", "--batch-size", "2",
                           "--max-length", "96"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1500:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["steps"] == 2 and result["rows"] == (len(ROWS) if in_system else 2)
    assert (tmp_path / "plain" / "adapter_model.safetensors").exists()
