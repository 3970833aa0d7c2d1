"""The RL models on one base: reward matches the standalone RM, the value starts from the
RM, a PPO step trains exactly what it should, and the fallbacks work."""

from __future__ import annotations

import pytest
import torch

from salmon.rl.bench import make_untrained_rm
from salmon.rl.checkpoint import save_policy_adapter
from salmon.rl.models import (
    POLICY,
    REWARD,
    VALUE,
    LoraSettings,
    Role,
    hidden_states,
    load_rl_models,
    response_logits,
)

LORA = LoraSettings(r=4, alpha=8)
PROMPTS = ["Say hi", "What is two plus two? Explain."]
RESPONSES = ["Hi there!", "Four, because 2 + 2 = 4."]
PRINCIPLES = [["The response is brief."], ["The response is kind.", "The response is correct."]]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_shared_reward_matches_standalone_rm(tiny_model, random_rm):
    from salmon.reward.model import InstructableRewardModel

    m = load_rl_models(str(tiny_model), str(random_rm), LORA, device="cpu")
    assert m.shared
    ours = m.reward.score(PROMPTS, RESPONSES, PRINCIPLES)
    theirs = InstructableRewardModel.load(random_rm, device="cpu").score(PROMPTS, RESPONSES, PRINCIPLES)
    assert ours == pytest.approx(theirs, abs=1e-5)
    assert len(set(ours)) == 2


def test_contrastive_rm_scores_the_same_on_the_shared_base(tiny_model, random_rm, tmp_path):
    import json
    import shutil

    from salmon.reward.contrastive import negate_list
    from salmon.reward.model import InstructableRewardModel

    rm_dir = shutil.copytree(random_rm, tmp_path / "rm")
    meta = json.loads((rm_dir / "salmon_rm.json").read_text())
    (rm_dir / "salmon_rm.json").write_text(json.dumps({**meta, "scoring": "contrastive"}))
    m = load_rl_models(str(tiny_model), str(rm_dir), LORA, device="cpu")
    ours = m.reward.score(PROMPTS, RESPONSES, PRINCIPLES)
    rm = InstructableRewardModel.load(rm_dir, device="cpu")
    assert ours == pytest.approx(rm.score(PROMPTS, RESPONSES, PRINCIPLES), abs=1e-5)
    raw = rm.raw_score(PROMPTS * 2, RESPONSES * 2, PRINCIPLES + [negate_list(ps) for ps in PRINCIPLES])
    assert ours == pytest.approx([raw[0] - raw[2], raw[1] - raw[3]], abs=1e-5)


def test_one_base_copy_and_value_starts_from_the_rm(tiny_model, random_rm):
    m = load_rl_models(str(tiny_model), str(random_rm), LORA, device="cpu")
    ac = m.actor_critic
    assert ac.policy_lm is ac.value_lm is m.reference.lm is m.reward.role.lm
    assert set(ac.policy_lm.peft_config) == {POLICY, VALUE, REWARD}
    assert torch.equal(ac.value_head.weight, m.reward.head.weight)
    ids = torch.tensor([[5, 6, 7, 8]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        h_value = hidden_states(ac.value, ids, mask)
        h_reward = hidden_states(m.reward.role, ids, mask)
        h_base = hidden_states(m.reference, ids, mask)
        policy = response_logits(ac.policy, ids, mask, 2)
        ref = response_logits(m.reference, ids, mask, 2)
    assert torch.allclose(h_value, h_reward)
    assert not torch.allclose(h_value, h_base)  # the RM adapter is not a no-op here
    assert torch.allclose(policy, ref)  # LoRA B starts at zero: the policy starts as the reference


def _ppo_step(models, cfg):
    from accelerate import Accelerator

    from salmon.principles import load_principles
    from salmon.rl.ppo import experience, ppo_update
    from salmon.rl.rollout import PromptPool
    from salmon.sources import load_prompts

    acc = Accelerator(cpu=True)
    params = [p for p in models.actor_critic.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    pool = PromptPool.build(models.tokenizer, load_prompts("builtin", limit=8), cfg.max_prompt_tokens)
    exp, record = experience(models, pool, load_principles("rl"), load_principles("intervention"), cfg, 0, acc)
    record.update(ppo_update(models.actor_critic, opt, exp, cfg, acc, 0))
    return record


def test_ppo_step_changes_every_trainable_parameter_and_no_frozen_one(tiny_model, random_rm):
    from salmon.rl.ppo import RLConfig

    m = load_rl_models(str(tiny_model), str(random_rm), LORA, device="cpu")
    named = dict(m.actor_critic.named_parameters())
    before = {k: p.detach().clone() for k, p in named.items()}
    head_before = m.reward.head.weight.detach().clone()
    trainable = {k for k, p in named.items() if p.requires_grad}
    assert trainable and all(("lora_" in k and (".policy." in k or ".value." in k)) or k.startswith("value_head")
                             for k in trainable)
    cfg = RLConfig(batch_size=4, mini_batches=2, ppo_epochs=2, max_new_tokens=8, rm=str(random_rm))
    record = _ppo_step(m, cfg)
    assert record["value_loss"] > 0 and len(record["principles_drawn"]) == 4
    unchanged = [k for k in trainable if torch.equal(before[k], named[k])]
    assert not unchanged, unchanged[:3]
    changed_frozen = [k for k in named if k not in trainable and not torch.equal(before[k], named[k])]
    assert not changed_frozen, changed_frozen[:3]
    assert any(".reward." in k for k in named if k not in trainable)
    assert torch.equal(head_before, m.reward.head.weight)


def test_separate_copies_when_not_sharing(tiny_model, random_rm):
    m = load_rl_models(str(tiny_model), str(random_rm), LORA, device="cpu", share_base=False)
    ac = m.actor_critic
    assert not m.shared and ac.policy_lm is not ac.value_lm and m.reference.lm is not ac.policy_lm
    assert set(ac.value_lm.peft_config) == {VALUE} and set(ac.policy_lm.peft_config) == {POLICY}
    from salmon.reward.model import InstructableRewardModel

    theirs = InstructableRewardModel.load(random_rm, device="cpu").score(PROMPTS, RESPONSES, PRINCIPLES)
    assert m.reward.score(PROMPTS, RESPONSES, PRINCIPLES) == pytest.approx(theirs, abs=1e-5)


def test_rm_with_another_tokenizer_falls_back_to_text(tiny_model, tmp_path):
    """An RM on another base with a different vocabulary: scored from decoded text, and
    the value model starts fresh on the policy's base."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from salmon.models import build_tiny_model
    from salmon.rl.ppo import RLConfig

    other = build_tiny_model(tmp_path / "other", seed=1)
    tok = AutoTokenizer.from_pretrained(other)
    tok.add_tokens(["<extra_token_for_test>"])
    model = AutoModelForCausalLM.from_pretrained(other)
    model.resize_token_embeddings(len(tok))
    model.save_pretrained(other)
    tok.save_pretrained(other)
    rm = make_untrained_rm(str(other), tmp_path / "rm")
    m = load_rl_models(str(tiny_model), str(rm), LORA, device="cpu")
    assert not m.shared and REWARD not in m.actor_critic.policy_lm.peft_config
    assert torch.count_nonzero(m.actor_critic.value_head.weight) == 0
    record = _ppo_step(m, RLConfig(batch_size=2, ppo_epochs=1, max_new_tokens=6, rm=str(rm)))
    assert record["rm_score"] == record["rm_score"]  # a number, not NaN


def test_policy_stacked_on_sft_adapter_saves_as_one_exact_adapter(tiny_model, random_rm, tmp_path):
    from peft import LoraConfig, get_peft_model

    from salmon.models import load_causal_lm

    base = load_causal_lm(str(tiny_model), device="cpu")
    sft = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                          task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in sft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    sft.save_pretrained(tmp_path / "sft")
    m = load_rl_models(str(tmp_path / "sft"), str(random_rm), LORA, device="cpu")
    ac = m.actor_critic
    assert ac.policy_adapters == ["sft", POLICY] and m.reference.adapters == ["sft"]
    with torch.no_grad():
        for name, p in ac.policy_lm.named_parameters():
            if "lora_B.policy" in name:
                p.normal_(0, 0.1)
    ids, mask = torch.tensor([[5, 6, 7, 8, 9]]), torch.ones(1, 5, dtype=torch.long)
    with torch.no_grad():
        stacked = response_logits(ac.policy, ids, mask, 1)
        sft_only = response_logits(m.reference, ids, mask, 1)
    save_policy_adapter(ac, tmp_path / "out", m.base_path)
    loaded = load_causal_lm(str(tmp_path / "out"), device="cpu")
    with torch.no_grad():
        again = response_logits(Role(loaded, list(loaded.peft_config)), ids, mask, 1)
    assert not torch.allclose(stacked, sft_only, atol=1e-4)
    assert torch.allclose(stacked, again, atol=1e-4)
