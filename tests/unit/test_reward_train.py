"""train-rm on the tiny model: what trains, what is written, exact resume, the zero-shot
head, bad data, preference-model pre-training, and eval-rm on the result."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from salmon.errors import SalmonError
from salmon.reward.data import split_by_pair_id, tokenize_rows
from salmon.reward.train import TrainRMConfig, train_rm
from salmon.reward.trainer import build_rm_model, run_phase

SHORT = "The response is short and to the point."
LONG = "The response is long and detailed."


def rm_rows(n: int = 16) -> list[dict]:
    """Pairs (short vs long answer) under a principle or its negation (the label flips)."""
    rows = []
    for i in range(n):
        short, long = f"Answer {i}.", f"Answer {i}. " + "More words here. " * (2 + i % 3)
        negated = i % 2 == 1
        rows.append({"pair_id": f"p{i // 2}", "prompt": f"Question {i // 2}?",
                     "chosen": long if negated else short, "rejected": short if negated else long,
                     "principles": [LONG if negated else SHORT], "dominant_principle": "", "rule": "",
                     "pass": 0, "label_source": "judge"})
    return rows


def save_rm_data(rows: list[dict], folder) -> str:
    """An rm_data folder as `salmon aggregate` writes it."""
    from datasets import Dataset

    Dataset.from_list(rows).save_to_disk(str(folder / "dataset"))
    (folder / "summary.json").write_text("{}")
    return str(folder)


def small_cfg(tiny_model, data, out, **kw) -> TrainRMConfig:
    base = dict(model=str(tiny_model), data=data, out=str(out), batch_size=2, max_length=192, learning_rate=1e-3,
                save_steps=2, eval_steps=2, logging_steps=1, eval_fraction=0.25, progress=False, norm_samples=4)
    base.update(kw)
    return TrainRMConfig(**base)


def test_training_changes_every_lora_and_score_weight_and_no_base_weight(tiny_model, tmp_path):
    from transformers import set_seed

    from salmon.models import load_tokenizer

    cfg = small_cfg(tiny_model, "unused", tmp_path / "rm", max_steps=3)
    tok = load_tokenizer(cfg.model)
    set_seed(0)
    model = build_rm_model(cfg, tok)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    run_phase(model, tok, tokenize_rows(rm_rows(8), tok, cfg.max_length), None, tmp_path / "rm", cfg, 1.0)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("score" in n for n in trainable) and any("lora_A" in n for n in trainable)
    for name, p in model.named_parameters():
        changed = not (p.detach() == before[name]).all()
        assert changed == (name in trainable), name


def read_adapter(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def losses(ckpt):
    history = json.loads((ckpt / "trainer_state.json").read_text())["log_history"]
    return [h["loss"] for h in history if "loss" in h]


def test_train_rm_writes_the_folder_and_resumes_exactly(tiny_model, tmp_path, cli):
    data = save_rm_data(rm_rows(), tmp_path)
    straight = tmp_path / "straight"
    code, stdout, stderr = cli("train-rm", "--model", tiny_model, "--data", data, "--out", straight,
                               "--max-steps", "4", "--batch-size", "2", "--max-length", "192", "--learning-rate", "1e-3",
                               "--save-steps", "2", "--eval-steps", "2", "--logging-steps", "1",
                               "--eval-fraction", "0.25", "--norm-samples", "4", "--save-total-limit", "2", "--no-progress")
    assert code == 0, stderr
    assert stdout.strip().splitlines() == [str(straight)]  # the trainer's logs stay off stdout
    names = {p.name for p in straight.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "salmon_rm.json", "config.yaml", "summary.json",
            "tokenizer.json", "tb"} <= names
    meta = json.loads((straight / "salmon_rm.json").read_text())
    assert meta["base_model"] == str(tiny_model) and meta["template"] == "rm" and meta["max_length"] == 192
    assert meta["reward_std"] > 0
    summary = json.loads((straight / "summary.json").read_text())
    train_idx, held_idx = split_by_pair_id([r["pair_id"] for r in rm_rows()], 0.25)
    assert held_idx and summary["train_pairs"] == len(train_idx)
    assert summary["steps"] == 4 and 0 <= summary["heldout_accuracy"] <= 1

    # the same run, interrupted after step 2 and resumed
    resumed = tmp_path / "resumed"
    cfg = small_cfg(tiny_model, data, resumed, max_steps=4, save_total_limit=2, stop_after=2)
    train_rm(cfg)
    assert (resumed / "checkpoint-2").exists() and not (resumed / "summary.json").exists()
    cfg.stop_after = None
    train_rm(cfg)
    a, b = read_adapter(straight), read_adapter(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] == b[k]).all(), k
    assert losses(straight / "checkpoint-4") == losses(resumed / "checkpoint-4")
    assert len(losses(straight / "checkpoint-4")) == 4

    # eval-rm on the trained model
    labeled = tmp_path / "labeled.jsonl"
    labeled.write_text("".join(json.dumps({
        "prompt": f"Q{i}?", "chosen": "Yes.", "rejected": "Well, " * 10 + "yes.", "split": split,
        "principle": {"name": "Concise", "definition": SHORT, "negation": LONG}}) + "\n"
        for i, split in enumerate(["train_principle", "train_principle", "heldout_principle"])))
    code, stdout, stderr = cli("eval-rm", "--rm", straight, "--labeled", labeled, "--out", tmp_path / "ev",
                               "--judge-model", tiny_model, "--no-progress")
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["n"] == 3 and set(metrics["by_split"]) == {"train_principle", "heldout_principle"}
    assert metrics["longer_wins"] == 0.0
    assert "negation flip rate" in stderr and "self-judge" in stderr
    assert metrics["judge"]["n"] == 3 and 0 <= metrics["judge"]["accuracy"] <= 1
    assert len((tmp_path / "ev" / "scores.jsonl").read_text().splitlines()) == 3


def test_untrained_rm_reads_the_models_yes_no_log_odds(tiny_model, tmp_path):
    import torch

    from salmon.models import load_causal_lm
    from salmon.reward import InstructableRewardModel
    from salmon.reward.template import encode_rm_input

    out = train_rm(small_cfg(tiny_model, str(save_rm_data(rm_rows(4), tmp_path)), tmp_path / "rm0", max_steps=0))
    rm = InstructableRewardModel.load(out)
    lm = load_causal_lm(str(tiny_model))
    yes, no = (rm.tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in ("Yes", "No"))
    ids = encode_rm_input(rm.tokenizer, "Q?", "A.", [SHORT], 192)
    with torch.no_grad():
        logits = lm(torch.tensor([ids])).logits[0, -1]
    assert rm.score(["Q?"], ["A."], [[SHORT]])[0] == pytest.approx((logits[yes] - logits[no]).item(), abs=1e-4)


def test_full_finetuning_writes_a_plain_model_folder(tiny_model, tmp_path):
    from salmon.reward import InstructableRewardModel

    out = train_rm(small_cfg(tiny_model, save_rm_data(rm_rows(8), tmp_path), tmp_path / "rm", max_steps=1,
                             lora=False))
    assert (out / "config.json").exists() and not (out / "adapter_config.json").exists()
    rm = InstructableRewardModel.load(out)
    assert rm.meta["max_length"] == 192
    assert len(rm.score(["Q?"], ["A."], [[SHORT]])) == 1


def test_contrastive_objective_trains_on_twins_and_scores_against_the_negation(tiny_model, tmp_path):
    from salmon.reward import InstructableRewardModel

    rows = []
    for r in rm_rows(4):  # each row and its negated twin: sides swapped, the other principle
        rows += [r, {**r, "chosen": r["rejected"], "rejected": r["chosen"],
                     "principles": [LONG if r["principles"] == [SHORT] else SHORT]}]
    rows.append({**rm_rows(1)[0], "pair_id": "lonely"})  # a row without a twin is dropped
    out = train_rm(small_cfg(tiny_model, save_rm_data(rows, tmp_path), tmp_path / "rm", max_steps=2,
                             objective="contrastive", eval_fraction=0.0))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_pairs"] == 8 and summary["twin_units"] == 4
    rm = InstructableRewardModel.load(out)
    assert rm.meta["scoring"] == "contrastive" and rm.contrastive
    under_short = rm.score(["Q?", "Q?"], ["A.", "A. More."], [[SHORT]] * 2, negations=[[LONG]] * 2)
    raw = rm.raw_score(["Q?"] * 4, ["A.", "A. More."] * 2, [[SHORT]] * 2 + [[LONG]] * 2)
    assert under_short == pytest.approx([raw[0] - raw[2], raw[1] - raw[3]], abs=1e-5)
    under_long = rm.score(["Q?", "Q?"], ["A.", "A. More."], [[LONG]] * 2, negations=[[SHORT]] * 2)
    assert under_long == pytest.approx([-x for x in under_short], abs=1e-5)  # negating flips exactly
    # no held-out rows: reward_std comes from the first norm_samples (4) training rows, two twin units
    firsts = [rows[0], rows[2]]
    rewards = []
    for r in firsts:
        neg = [LONG if r["principles"] == [SHORT] else SHORT]
        rewards += rm.score([r["prompt"]] * 2, [r["chosen"], r["rejected"]], [r["principles"]] * 2,
                            negations=[neg] * 2)
    rewards += [-x for x in rewards]  # the twins: the same responses under the negation
    assert summary["reward_mean"] == pytest.approx(0.0, abs=1e-6)
    assert summary["reward_std"] == pytest.approx(statistics.pstdev(rewards), rel=1e-4)
    with pytest.raises(SalmonError, match="negated twin"):
        train_rm(small_cfg(tiny_model, save_rm_data([rows[-1]], tmp_path / "single"), tmp_path / "rm2",
                           max_steps=1, objective="contrastive", eval_fraction=0.0))


def test_contrastive_heldout_accuracy_is_that_of_the_contrastive_reward(tiny_model, tmp_path):
    from salmon.reward import InstructableRewardModel
    from salmon.reward.data import split_by_pair_id

    rows = []
    for n, r in enumerate(rm_rows(12)):  # rows 2k and 2k+1 are twins (sides swapped, SHORT <-> LONG)
        r = {**r, "pair_id": f"q{n}"}
        rows += [r, {**r, "chosen": r["rejected"], "rejected": r["chosen"],
                     "principles": [LONG if r["principles"] == [SHORT] else SHORT]}]
    out = train_rm(small_cfg(tiny_model, save_rm_data(rows, tmp_path), tmp_path / "rm", max_steps=1,
                             objective="contrastive", eval_fraction=0.5))
    summary = json.loads((out / "summary.json").read_text())
    _, held = split_by_pair_id([r["pair_id"] for r in rows], 0.5)
    firsts = [rows[i] for i in held if i % 2 == 0]
    assert firsts, "the split must hold out at least one twin unit"
    rm = InstructableRewardModel.load(out)
    right, rewards = [], []
    for r in firsts:  # under P, against the twin's principle as the negation
        neg = [LONG if r["principles"] == [SHORT] else SHORT]
        c, j = rm.score([r["prompt"]] * 2, [r["chosen"], r["rejected"]], [r["principles"]] * 2, negations=[neg] * 2)
        right.append(1.0 if c > j else 0.0)
        rewards += [c, j, -c, -j]  # and the twin's, under the negation
    assert summary["heldout_scoring"] == "raw"
    assert summary["heldout_contrastive_accuracy"] == pytest.approx(sum(right) / len(right))
    # the reward statistics come from the held-out rewards, not from a sample of the training rows
    assert summary["reward_mean"] == pytest.approx(0.0, abs=1e-6)
    assert summary["reward_std"] == pytest.approx(statistics.pstdev(rewards), rel=1e-4)


def test_preference_model_pretraining_runs_first(tiny_model, tmp_path):
    pmp = tmp_path / "pmp.jsonl"
    pmp.write_text("".join(json.dumps({"prompt": f"Q{i}?", "chosen": "Good answer.", "rejected": "Bad."}) + "\n"
                           for i in range(6)))
    out = train_rm(small_cfg(tiny_model, save_rm_data(rm_rows(8), tmp_path), tmp_path / "rm", max_steps=2,
                             pmp_data=str(pmp)))
    assert (out / "pmp" / "final" / "done.json").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pmp"]["steps"] == 2 and summary["steps"] == 2


def test_bad_training_data_is_a_clear_error(tiny_model, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(SalmonError, match="no training pairs"):
        train_rm(small_cfg(tiny_model, str(empty), tmp_path / "a"))
    no_principles = tmp_path / "np.jsonl"
    no_principles.write_text(json.dumps({"prompt": "Q", "chosen": "a", "rejected": "b"}) + "\n")
    with pytest.raises(SalmonError, match="missing column 'principles'"):
        train_rm(small_cfg(tiny_model, str(no_principles), tmp_path / "b"))
    unfinished = tmp_path / "unfinished"
    save_rm_data(rm_rows(4), unfinished.mkdir() or unfinished)
    (unfinished / "summary.json").unlink()
    with pytest.raises(SalmonError, match="unfinished"):
        train_rm(small_cfg(tiny_model, str(unfinished), tmp_path / "c"))
    rows = rm_rows(4)
    rows[2]["principles"] = []
    with pytest.raises(SalmonError, match="training row .*non-empty list"):
        train_rm(small_cfg(tiny_model, str(save_rm_data(rows, tmp_path)), tmp_path / "d"))


def _row(pid, chosen, rejected, principles):
    return {"pair_id": pid, "prompt": "q", "chosen": chosen, "rejected": rejected, "principles": principles}


def test_twin_units_pair_each_row_with_its_negated_copy():
    from salmon.reward.data import twin_units

    rows = [_row("a", "x", "y", ["P"]),       # 0: twin of 2
            _row("b", "u", "v", ["P"]),       # 1: no twin (3 has the same order, 4 another pair_id)
            _row("a", "y", "x", ["not P"]),   # 2
            _row("b", "u", "v", ["not P"]),   # 3: same order as 1, so not a twin
            _row("c", "v", "u", ["not P"]),   # 4: swapped texts but another pair_id
            _row("a", "y", "x", ["not P"]),   # 5: a second copy; 2 is taken, so alone
            _row("d", "s", "t", ["P"]),       # 6: twin of 7
            _row("d", "t", "s", ["P", "Q"])]  # 7
    assert twin_units(rows) == [[0, 2], [1], [3], [4], [5], [6, 7]]
    # the same list under the same pair_id is a duplicate, not a twin
    assert twin_units([_row("a", "x", "y", ["P"]), _row("a", "y", "x", ["P"])]) == [[0], [1]]


def test_twin_units_follow_explicit_twin_ids():
    from salmon.reward.data import twin_units

    def r(pid, chosen, rejected, principles, twin):
        return {**_row(pid, chosen, rejected, principles), "twin": twin}

    rows = [r("a", "x", "y", ["P"], "t1"),       # 0: twin of 3 (same id), not of 1 (another id)
            r("a", "y", "x", ["not Q"], "t2"),   # 1: swapped texts, another id: no twin (2's id differs too)
            r("a", "y", "x", ["not P"], ""),     # 2: no id: a unit of its own although it swaps 0's sides
            r("a", "y", "x", ["not P"], "t1"),   # 3
            r("b", "x", "y", ["P"], "t1"),       # 4: the id under another pair_id is another group
            r("b", "y", "x", ["not P"], "t1")]   # 5: twin of 4
    assert twin_units(rows) == [[0, 3], [1], [2], [4, 5]]


def test_twin_units_without_ids_pair_only_within_one_source_and_pass():
    from salmon.reward.data import twin_units

    def r(chosen, rejected, principles, source, pas):
        return {**_row("a", chosen, rejected, principles), "label_source": source, "pass": pas}

    rows = [r("x", "y", ["P"], "judge", 0),     # 0: pass 1's draw (1) swaps its sides: not a twin
            r("y", "x", ["Q"], "judge", 1),     # 1
            r("y", "x", ["not P"], "verify", 0),  # 2: same pass, another source: not a twin of 0
            r("x", "y", ["Q", "R"], "verify", 0),  # 3: twin of 2
            r("x", "y", ["not Q"], "judge", 1)]  # 4: twin of 1
    assert twin_units(rows) == [[0], [1, 4], [2, 3]]


def test_pack_units_never_splits_a_twin_across_batches():
    from salmon.reward.data import pack_units

    units = [[0, 1], [2], [3, 4], [5, 6], [7], [8, 9], [10]]
    for seed in range(20):
        for bs in (2, 4, 6):
            order = pack_units(units, bs, seed)
            assert sorted(order) == list(range(11))
            batches = [set(order[i:i + bs]) for i in range(0, len(order), bs)]
            for a, b in ([0, 1], [3, 4], [5, 6], [8, 9]):
                assert any({a, b} <= batch for batch in batches), (seed, bs, order)
    # hand-checked: batch size 4, seed 0
    assert pack_units([[0, 1], [2], [3, 4], [5, 6], [7]], 4, 0) == [3, 4, 5, 6, 2, 7, 0, 1]
    # odd batch size and no single rows: a split is unavoidable, and later batches stay aligned
    order = pack_units([[0, 1], [2, 3], [4, 5]], 3, 0)
    assert sorted(order) == list(range(6))
    # a different seed (epoch) gives another order
    assert len({tuple(pack_units(units, 4, s)) for s in range(5)}) > 1


def test_twin_sampler_is_used_and_reshuffles_per_epoch():
    from salmon.reward.data import TwinBatchSampler, pack_units

    units = [[0, 1], [2, 3], [4, 5], [6, 7]]
    s = TwinBatchSampler(units, 4, seed=3)
    assert len(s) == 8
    first = list(s)
    assert first == pack_units(units, 4, 3 * 1_000_003)
    s.set_epoch(1)
    assert sorted(list(s)) == list(range(8))


def test_trainer_uses_twin_batches_and_a_faster_head(tiny_model, tmp_path):
    from transformers import set_seed

    from salmon.models import load_tokenizer
    from salmon.reward.data import TwinBatchSampler, twin_units
    from salmon.reward.trainer import make_trainer_class

    rows = rm_rows(8)  # rows 2k and 2k+1 share a pair_id but not swapped texts: make them twins
    for i in range(1, 8, 2):
        rows[i].update(chosen=rows[i - 1]["rejected"], rejected=rows[i - 1]["chosen"])
    units = twin_units(rows)
    assert units == [[0, 1], [2, 3], [4, 5], [6, 7]]
    cfg = small_cfg(tiny_model, "unused", tmp_path / "rm", max_steps=1, head_lr_mult=5.0)
    tok = load_tokenizer(cfg.model)
    set_seed(0)
    model = build_rm_model(cfg, tok)
    from trl import RewardConfig

    args = RewardConfig(output_dir=str(tmp_path / "o"), per_device_train_batch_size=2, learning_rate=1e-3,
                        use_cpu=True, report_to=[], max_length=None, gradient_checkpointing=False)
    cls = make_trainer_class(units, 2, 0, 5.0)
    trainer = cls(model=model, args=args, train_dataset=tokenize_rows(rows, tok, 192), processing_class=tok)
    assert isinstance(trainer._get_train_sampler(), TwinBatchSampler)
    opt = trainer.create_optimizer()
    lrs = sorted(g["lr"] for g in opt.param_groups)
    assert lrs == [pytest.approx(1e-3), pytest.approx(5e-3)]
    head = [g for g in opt.param_groups if g["lr"] > 2e-3][0]["params"]
    assert len(head) == 1 and head[0].shape[0] == 1  # the score weight only
    plain = make_trainer_class(None, 2, 0, 1.0)(model=model, args=args, train_dataset=tokenize_rows(rows, tok, 192),
                                                 processing_class=tok)
    assert not isinstance(plain._get_train_sampler(), TwinBatchSampler)


def test_final_eval_reuses_the_evaluation_logged_at_the_last_step():
    from salmon.reward.trainer import final_eval

    history = [{"loss": 0.7, "step": 2}, {"eval_loss": 0.6, "eval_accuracy": 0.5, "step": 2},
               {"loss": 0.5, "step": 4}]
    assert final_eval(history, 4) == {}  # the last evaluation was at step 2: run one at 4
    history.append({"eval_loss": 0.4, "eval_accuracy": 0.75, "step": 4})
    assert final_eval(history, 4) == {"eval_loss": 0.4, "eval_accuracy": 0.75, "step": 4}
    assert final_eval([], 0) == {}


def test_held_out_evaluation_once_per_step_and_only_at_the_end_with_eval_steps_0(tiny_model, tmp_path, monkeypatch):
    import salmon.reward.trainer as trainer_mod

    calls: list[int] = []
    real = trainer_mod.make_trainer_class

    def counting(*args, **kw):
        class Counting(real(*args, **kw)):
            def evaluate(self, *a, **k):
                calls.append(self.state.global_step)
                return super().evaluate(*a, **k)
        return Counting

    monkeypatch.setattr(trainer_mod, "make_trainer_class", counting)
    data = save_rm_data(rm_rows(), tmp_path)
    summaries = {}
    for every, expected, precision in ((2, [2, 4], "no"), (4, [4], "no"), (0, [], "no"), (0, [], "bf16")):
        calls.clear()
        out = train_rm(small_cfg(tiny_model, data, tmp_path / f"rm{every}{precision}", max_steps=4, eval_steps=every,
                                 mixed_precision=precision))
        assert calls == expected  # eval_steps 0: no trainer evaluation; train-rm scores the held-out rows itself
        summary = summaries[every, precision] = json.loads((out / "summary.json").read_text())
        assert 0 <= summary["heldout_accuracy"] <= 1 and summary["mixed_precision"] == precision
    # the held-out loss and accuracy train-rm computes are the trainer's evaluation at the last step
    # (the trainer averages its batches' accuracies: equal here, where every held-out batch is full)
    logged, computed = summaries[4, "no"], summaries[0, "no"]
    assert computed["heldout_loss"] == pytest.approx(logged["heldout_loss"], rel=1e-4)
    assert computed["heldout_accuracy"] == logged["heldout_accuracy"]


def test_heldout_raw_metrics_by_hand():
    from salmon.reward.train import heldout_raw_metrics

    m = heldout_raw_metrics([1.0, 0.0, 2.0, 800.0], [0.0, 0.0, 5.0, 0.0])  # margins 1, 0 (a tie), -3, 800
    assert m["heldout_accuracy"] == 0.5  # 1 and 800; the tie counts as wrong
    by_hand = (math.log(1 + math.exp(-1)) + math.log(2) + math.log(1 + math.exp(3)) + 0.0) / 4
    assert m["heldout_loss"] == pytest.approx(by_hand)
    with pytest.raises(SalmonError, match="held-out"):
        heldout_raw_metrics([], [])


def test_bad_evaluation_and_precision_settings_are_clear_errors():
    for kw, flag in ((dict(eval_steps=-1), "--eval-steps"), (dict(mixed_precision="fp8"), "--mixed-precision")):
        with pytest.raises(SalmonError, match=flag):
            TrainRMConfig(**kw).validate()
    TrainRMConfig(eval_steps=0).validate()

