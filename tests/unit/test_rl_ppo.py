"""The `rl` stage end to end on a tiny model: exact resume, bad input, GRPO/RLOO steps."""

from __future__ import annotations

import json

import pytest
import torch

from salmon.config import from_dict
from salmon.rl.bench import make_untrained_rm
from salmon.rl.ppo import RLConfig, rl

TINY = dict(batch_size=2, mini_batches=2, ppo_epochs=2, max_new_tokens=6, lora_r=4, lora_alpha=8,
            save_steps=10, progress=False, device="cpu", prompts="builtin")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cfg(tiny_model, random_rm, out, **kw):
    return from_dict(RLConfig, {**TINY, "policy": str(tiny_model), "rm": str(random_rm), "out": str(out), **kw}, "test")


def _log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_resume_reproduces_uninterrupted_losses(tiny_model, random_rm, tmp_path):
    from safetensors.torch import load_file

    rl(_cfg(tiny_model, random_rm, tmp_path / "a", steps=4))
    rl(_cfg(tiny_model, random_rm, tmp_path / "b", steps=4, stop_after=2))
    assert not (tmp_path / "b" / "summary.json").exists()
    assert (tmp_path / "b" / "checkpoint-2" / "state.json").exists()
    rl(_cfg(tiny_model, random_rm, tmp_path / "b", steps=4))
    a, b = _log(tmp_path / "a"), _log(tmp_path / "b")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for key in ("policy_loss", "value_loss", "rm_score", "kl", "entropy"):
        assert [r[key] for r in a] == [r[key] for r in b], key
    wa = load_file(tmp_path / "a" / "adapter_model.safetensors")
    wb = load_file(tmp_path / "b" / "adapter_model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["shared_base"] is True and summary["steps"] == 4


def test_gradient_checkpointing_gives_the_same_losses(tiny_model, random_rm, tmp_path):
    rl(_cfg(tiny_model, random_rm, tmp_path / "plain", steps=1))
    rl(_cfg(tiny_model, random_rm, tmp_path / "ckpt", steps=1, gradient_checkpointing=True))
    plain, ckpt = _log(tmp_path / "plain")[0], _log(tmp_path / "ckpt")[0]
    for key in ("policy_loss", "value_loss", "entropy", "grad_norm"):
        assert plain[key] == pytest.approx(ckpt[key], rel=1e-5), key


def test_output_is_a_loadable_adapter_with_logs(tiny_model, random_rm, tmp_path):
    from salmon.models import load_causal_lm

    out = rl(_cfg(tiny_model, random_rm, tmp_path / "p", steps=1))
    model = load_causal_lm(str(out), device="cpu")
    assert hasattr(model, "peft_config")
    record = _log(out)[0]
    for key in ("rm_score", "shaped_score", "kl", "response_length", "stop_rate", "entropy", "value_loss",
                "policy_loss", "clip_frac", "principles_drawn"):
        assert key in record
    assert list((out / "tb").glob("events.out.tfevents.*"))


def test_missing_rm_is_one_line_error(cli, tmp_path):
    code, _, err = cli("rl", "--rm", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert code == 2
    assert err.strip().count("\n") == 0 and "--rm" in err and "not found" in err


def test_few_principles_and_long_prompts(cli, tiny_model, random_rm, tmp_path):
    principles = tmp_path / "two.yaml"
    principles.write_text("principles:\n  - name: Short\n    definition: The response is short.\n"
                          "  - name: Kind\n    definition: The response is kind.\n")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "long", "prompt": "tell me about it " * 200}) + "\n"
                       + json.dumps({"id": "short", "prompt": "Hi"}) + "\n")
    out = tmp_path / "o"
    code, _, err = cli("rl", "--policy", tiny_model, "--rm", random_rm, "--out", out, "--steps", "1",
                       "--batch-size", "2", "--ppo-epochs", "1", "--max-new-tokens", "4", "--lora-r", "2",
                       "--principles", principles, "--intervention", "", "--prompts", prompts,
                       "--max-prompt-tokens", "48", "--device", "cpu", "--no-progress")
    assert code == 0, err
    assert "fewer than --max-principles" in err
    drawn = _log(out)[0]["principles_drawn"]
    assert all(d["principles"] == ["Short", "Kind"] for d in drawn)
    assert json.loads((out / "summary.json").read_text())["truncated_prompts"] == 1


@pytest.mark.parametrize("algo", ["grpo", "rloo"])
def test_trl_algo_step_with_rm_reward(algo, tiny_model, random_rm, tmp_path):
    out = rl(_cfg(tiny_model, random_rm, tmp_path / algo, algo=algo, steps=1, num_generations=2,
                  ppo_epochs=1, save_steps=1))
    record = _log(out)[0]
    assert "rewards/instructable_rm/mean" in record and "rewards/unfinished_penalty/mean" in record
    assert (out / "adapter_model.safetensors").exists() and (out / "summary.json").exists()
    assert list((out / "tb").rglob("events.out.tfevents.*"))  # --report-to tensorboard, as PPO writes it
    drawn = [json.loads(line) for line in (out / "principles_drawn.jsonl").read_text().splitlines()]
    assert len(drawn) >= 2 and all(len(d["principles"]) == 3 + 4 for d in drawn)


def test_principles_too_long_for_the_rm_fail_at_start(cli, tiny_model, tmp_path):
    short_rm = make_untrained_rm(str(tiny_model), tmp_path / "short_rm", max_length=128)
    code, _, err = cli("rl", "--policy", tiny_model, "--rm", short_rm, "--out", tmp_path / "o", "--steps", "1",
                       "--device", "cpu", "--no-progress")
    assert code == 2 and "--max-principles" in err and err.strip().count("\n") == 0
    assert not (tmp_path / "o" / "log.jsonl").exists()
