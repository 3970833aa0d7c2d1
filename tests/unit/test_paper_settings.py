"""Each setting of configs/paper.yaml (the SALMON reference code's choices) reaches the code
and does what the reference does, checked on hand-computed numbers or by sampling."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from salmon.aggregate import (
    AggregateConfig,
    PairScores,
    build_examples,
    draw_count,
    draw_principles,
    make_example,
    order_variance,
    score_table,
)
from salmon.principles import Principle, boosted_weight, sample_principles
from salmon.rl import shaping as S

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "configs" / "paper.yaml"
P = Principle("Concise", "The response is short.", "The response is long.")
Q = Principle("Thorough", "The response covers everything.", "The response skips things.")


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    from salmon.pipeline import plan

    _, _, stages = plan(str(PAPER), str(tmp_path_factory.mktemp("paper") / "run"))
    return stages


def test_paper_config_resolves_to_the_reference_settings(paper):
    agg, rm, rl = paper["aggregate"], paper["train_rm"], paper["rl"]
    assert (agg.consistency, agg.passes, agg.geometric_p, agg.max_principles, agg.count_policy) == \
        ("strict", 4, 0.2, 8, "redraw")
    assert (agg.scale, agg.label_noise, agg.rule_label_noise, agg.banned_phrase_prob) == ("order_var", 0.1, 0.25, 0.5)
    assert agg.drop_wrong_language and agg.rules == ["banned_phrase", "language_mismatch"] and agg.rule_skip_types == []
    assert rm.templates == ["rm", "rm_judge", "rm_review"]
    assert (rl.type_boost, rl.type_boost_mode, rl.type_boost_types) == (128.0, "add", ["reasoning", "redteam"])
    assert (rl.value_head_init, rl.kl_estimator, rl.kl_clamp, rl.gamma, rl.lam, rl.whiten_rewards) == \
        ("zero", "k1", True, 1.0, 1.0, False)
    assert (rl.reward_scale, rl.normalize_reward) == (10.0, False)
    assert (rl.max_principles, rl.ppo_epochs, rl.kl_coef, rl.length_bonus_coef, rl.length_bonus_cap,
            rl.unfinished_penalty, rl.temperature) == (3, 2, 0.01, 5.0, 0.8, -6.0, 0.7)


# --- aggregation ---------------------------------------------------------------------

def test_principle_count_redraw_is_a_truncated_geometric():
    p, cap, q = 0.2, 8, 0.8
    # E[K | K <= cap] = 1/p - cap q^cap / (1 - q^cap) = 5 - 8 * 0.16777 / 0.83223 = 3.387
    truncated_mean = 1 / p - cap * q**cap / (1 - q**cap)
    assert truncated_mean == pytest.approx(3.387, abs=1e-3)
    rng = np.random.default_rng(0)
    ks = np.array([draw_count(rng, p, cap, "redraw") for _ in range(10_000)])
    assert abs(ks.mean() - 3.4) < 0.1 and ks.mean() == pytest.approx(truncated_mean, abs=0.08)
    assert ks.max() == 8 and np.mean(ks == 8) == pytest.approx(p * q**7 / (1 - q**cap), abs=0.01)  # 5.0%
    clipped = np.array([draw_count(rng, p, cap, "clip") for _ in range(10_000)])
    assert clipped.mean() == pytest.approx((1 - q**cap) / p, abs=0.08)  # 4.16
    assert np.mean(clipped == 8) == pytest.approx(q**7, abs=0.015)  # 21%
    # through the per-example draw with the paper's config, on the 10 judge principles
    cfg = AggregateConfig(count_policy="redraw")
    shown = [len(draw_principles(np.random.default_rng([0, 0, i]), 10, cfg.geometric_p, cfg.max_principles,
                                 cfg.negation_prob, cfg.count_policy)[0]) for i in range(10_000)]
    assert abs(np.mean(shown) - 3.4) < 0.1


def test_order_variance_scale_by_hand():
    pairs = {f"p{i}": {"id": f"p{i}", "prompt": "q", "response_a": "a", "response_b": "b"} for i in range(3)}
    judged = {"p0": {"Concise": (2.0, 1.0, 1.5)}, "p1": {"Concise": (1.0, -3.0, -1.0)},
              "p2": {"Concise": (-2.0, -2.0, -2.0)}}
    of = {pid: {"Concise": P} for pid in judged}
    # single-order scores [2, 1, 1, -3, -2, -2]: mean -0.5, squared deviations sum 21.5, variance 21.5 / 6
    var = 21.5 / 6
    assert order_variance([(2.0, 1.0), (1.0, -3.0), (-2.0, -2.0)]) == pytest.approx(var)
    table, scales, _ = score_table(pairs, judged, of, "strict", True, "order_var")
    assert scales["Concise"] == pytest.approx(var)
    assert table[0].scores == pytest.approx([1.5 / var]) and table[1].scores == [None]  # strict drops p1
    assert table[2].scores == pytest.approx([-2.0 / var])
    assert order_variance([(1.0, 1.0)]) == 1.0  # zero variance: the fallback


def _items(n, rule_response=False):
    a = "As an AI language model, I think so." if rule_response else "Yes, I think so."
    return [PairScores({"id": f"x{i}", "prompt": "Is it?", "response_a": a, "response_b": "Maybe, yes.",
                        "type": "general"}, [P, Q], [2.0, -0.5]) for i in range(n)]


def _noise_share(examples, source):
    rows = [e for e in examples if e["label_source"] == source]
    return sum(e["_noise"] for e in rows) / len(rows), len(rows)


def test_label_noise_rates_per_source():
    cfg = AggregateConfig(label_noise=0.1, rule_label_noise=0.25, rules=["banned_phrase"], passes=4)
    judge_ex, _ = build_examples(_items(1500), cfg)
    share, n = _noise_share(judge_ex, "judge")
    assert n == 6000 and share == pytest.approx(0.1, abs=0.015)
    rule_ex, _ = build_examples(_items(1500, rule_response=True), cfg)
    share, n = _noise_share(rule_ex, "rule")
    assert n == 6000 and share == pytest.approx(0.25, abs=0.02)
    flipped = [e for e in rule_ex if e["_noise"]]
    assert all(e["chosen"].startswith("As an AI") for e in flipped)  # a flip picks the boilerplate


def test_banned_phrase_rule_decides_with_its_probability():
    items = _items(2000, rule_response=True)
    cfg = AggregateConfig(banned_phrase_prob=0.5, rules=["banned_phrase"], passes=1, negation_prob=0.0)
    examples, counts = build_examples(items, cfg)
    by_rule = sum(e["rule"] == "banned_phrase" for e in examples) / len(examples)
    assert counts["rule_fired:banned_phrase"] == 2000 and by_rule == pytest.approx(0.5, abs=0.035)
    always, _ = build_examples(items, AggregateConfig(rules=["banned_phrase"], passes=1))
    assert all(e["rule"] == "banned_phrase" for e in always)


def test_default_rule_probability_draws_nothing_extra():
    # banned_phrase_prob 1 keeps the random stream (and so every default run) unchanged
    item = _items(1, rule_response=True)[0]
    cfg = AggregateConfig(rules=["banned_phrase"])
    rng1, rng2 = np.random.default_rng(3), np.random.default_rng(3)
    make_example(item, ("banned_phrase", -1), rng1, 0, cfg)
    draw_principles(rng2, 2, cfg.geometric_p, cfg.max_principles, cfg.negation_prob)
    rng2.random()
    assert rng1.random() == rng2.random()


def test_pairs_with_both_responses_in_the_wrong_language_are_dropped():
    from salmon.rules import both_wrong_language

    prompt = "What should I pack for a week of hiking in the mountains in early autumn?"
    fr_a = "Prenez des vêtements chauds, une veste imperméable, de bonnes chaussures et une trousse de secours."
    fr_b = "Il faut emporter une tente légère, un sac de couchage chaud et assez de nourriture pour la semaine."
    en = "Bring warm layers, a waterproof jacket, sturdy boots and a small first-aid kit for the trip."
    assert both_wrong_language(prompt, fr_a, fr_b)
    assert not both_wrong_language(prompt, en, fr_b) and not both_wrong_language(prompt, en, en)
    items = [PairScores({"id": "w", "prompt": prompt, "response_a": fr_a, "response_b": fr_b}, [P], [1.0]),
             PairScores({"id": "ok", "prompt": prompt, "response_a": en, "response_b": fr_b}, [P], [1.0])]
    examples, counts = build_examples(items, AggregateConfig(drop_wrong_language=True, passes=2))
    assert {e["pair_id"] for e in examples} == {"ok"} and counts["skipped:both_wrong_language"] == 2
    kept, _ = build_examples(items, AggregateConfig(passes=2))
    assert {e["pair_id"] for e in kept} == {"w", "ok"}


# --- RL ------------------------------------------------------------------------------

def test_additive_type_boost():
    assert boosted_weight(1.5, True, 128, "add") == 129.5 and boosted_weight(1.5, True, 2, "multiply") == 3.0
    assert boosted_weight(1.5, False, 128, "add") == 1.5
    ps = [P, Q, Principle("Safe", "The response is safe.", "The response is unsafe.", tags=("redteam",))]
    rng = np.random.default_rng(0)
    picks = [sample_principles(ps, 1, rng, "redteam", 128, "add")[0].name for _ in range(4000)]
    assert np.mean([n == "Safe" for n in picks]) == pytest.approx(129 / 131, abs=0.01)
    picks = [sample_principles(ps, 1, rng, "redteam", 2, "multiply")[0].name for _ in range(4000)]
    assert np.mean([n == "Safe" for n in picks]) == pytest.approx(2 / 4, abs=0.03)


def test_boost_only_for_the_listed_prompt_types():
    from salmon.rl.rollout import draw_principles as rl_draw

    general = Principle("General", "The response is useful.", "The response is useless.", tags=("general",))
    ps = [P, Q, general]
    hits = [rl_draw(ps, [], 1, "general", 128, 0, s, 0, "add", ["reasoning", "redteam"])[0].name == "General"
            for s in range(3000)]
    assert np.mean(hits) == pytest.approx(1 / 3, abs=0.03)  # general prompts are not boosted
    hits = [rl_draw(ps, [], 1, "general", 128, 0, s, 0, "add", [])[0].name == "General" for s in range(300)]
    assert np.mean(hits) > 0.95


def test_k1_clamped_at_zero():
    logp = torch.tensor([[math.log(0.5), math.log(0.25)]])
    ref = torch.tensor([[math.log(0.25), math.log(0.5)]])
    # k1 = logp - ref = [log 2, -log 2]; clamped: [log 2, 0]
    assert S.kl_per_token(logp, ref, "k1").tolist()[0] == pytest.approx([math.log(2), -math.log(2)])
    assert S.kl_per_token(logp, ref, "k1", clamp=True).tolist()[0] == pytest.approx([math.log(2), 0.0])


def test_gae_with_gamma_and_lambda_one_by_hand():
    rewards = torch.tensor([[0.0, -0.1, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.2, 0.4, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    adv, ret = S.gae(rewards, values, 1.0, 1.0, mask)
    # gamma = lambda = 1: A_t = (sum of rewards from t on) - V_t; the padded step is terminal
    assert adv.tolist()[0] == pytest.approx([0.9 - 0.5, 0.9 - 0.2, 1.0 - 0.4, 0.0])
    assert ret.tolist()[0] == pytest.approx([0.9, 0.9, 1.0, 0.0])


def test_value_head_zero_at_start_and_value_lora_from_the_rm(tiny_model, random_rm, one_torch_thread):
    from salmon.rl.models import LoraSettings, load_rl_models, split_rm_state

    m = load_rl_models(str(tiny_model), str(random_rm), LoraSettings(r=4, alpha=8), device="cpu", value_head="zero")
    head = m.actor_critic.value_head
    assert torch.count_nonzero(head.weight) == 0 and head.weight.requires_grad
    assert head.bias is not None and float(head.bias) == 0.0 and head.bias.requires_grad  # the reference's head has a bias
    lora, rm_head = split_rm_state(random_rm)
    value_state = [v for k, v in m.actor_critic.value_lm.state_dict().items() if ".value." in k and "lora_" in k]
    rm_lora = [v for k, v in lora.items() if "lora_" in k]
    assert value_state and len(value_state) == len(rm_lora)  # the value LoRA is the RM's
    assert sorted(float(v.double().sum()) for v in value_state) == \
        pytest.approx(sorted(float(v.double().sum()) for v in rm_lora))
    assert torch.count_nonzero(rm_head["weight"]) > 0  # the copy default would not be zero
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.count_nonzero(m.actor_critic.values(ids, torch.ones_like(ids), 2)) == 0


# --- reward-model templates ----------------------------------------------------------

def test_rm_templates_rotate_by_pair_id(tiny_model):
    from salmon.models import load_tokenizer
    from salmon.reward.data import tokenize_rows
    from salmon.reward.template import RM_TEMPLATES, split_rm_input, template_for
    from salmon.templates import load_template

    picks = [template_for(f"p{i}", RM_TEMPLATES) for i in range(600)]
    assert {t: picks.count(t) for t in RM_TEMPLATES} == pytest.approx({t: 200 for t in RM_TEMPLATES}, abs=40)
    assert template_for("p7", RM_TEMPLATES) == template_for("p7", RM_TEMPLATES)
    assert template_for("p7", ["rm"]) == "rm"
    for name in RM_TEMPLATES:  # every wording ends with the Yes/No cue the head reads
        assert load_template(name).strip().endswith("Yes or No.")
    tok = load_tokenizer(str(tiny_model))
    rows = [{"pair_id": f"p{i}", "prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away.",
             "principles": ["The response is polite."]} for i in range(6)]
    rotated = tokenize_rows(rows, tok, 256, templates=list(RM_TEMPLATES))
    plain = tokenize_rows(rows, tok, 256)
    for i, r in enumerate(rows):
        name = template_for(r["pair_id"], RM_TEMPLATES)
        _, suffix = split_rm_input(tok, "Hi?", "Hello.", r["principles"], name)
        assert tok.decode(rotated[i]["chosen_ids"]).endswith(tok.decode(tok(suffix, add_special_tokens=False)["input_ids"]))
        _, plain_suffix = split_rm_input(tok, "Hi?", "Hello.", r["principles"])
        assert tok.decode(plain[i]["chosen_ids"]).endswith(tok.decode(tok(plain_suffix, add_special_tokens=False)["input_ids"]))
    assert len({tuple(rotated[i]["chosen_ids"]) for i in range(6)}) > 1


# --- the run records its settings ---------------------------------------------------

def test_metrics_json_records_the_settings(tmp_path):
    from salmon.pipeline import plan
    from salmon.run_settings import record_settings, settings_block

    run, _, stages = plan(str(PAPER), str(tmp_path / "run"))
    assert record_settings(tmp_path / "run", settings_block(str(PAPER), run, stages)) is None  # no metrics yet
    (tmp_path / "run").mkdir(exist_ok=True)
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"rm.accuracy": 0.5}))
    record_settings(tmp_path / "run", settings_block(str(PAPER), run, stages))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["rm.accuracy"] == 0.5
    s = metrics["settings"]
    assert s["config"] == str(PAPER) and s["stages"]["aggregate"]["out"] == "<run>/aggregate"
    assert s["reference_choices"]["aggregate.count_policy"] == "redraw"
    assert s["reference_choices"]["rl.value_head_init"] == "zero"
    assert s["reference_choices"]["train_rm.templates"] == ["rm", "rm_judge", "rm_review"]
