"""The reward model's faster recipe and learning options: top-layer training (LoRA or
full), the response cap, the twin column and the flip term (hand-computed numbers)."""

from __future__ import annotations

import math

import pytest

from salmon.errors import SalmonError
from salmon.reward.data import tokenize_rows, twin_ids, twin_units
from salmon.reward.losses import flip_loss
from salmon.reward.train import TrainRMConfig
from salmon.reward.trainer import build_rm_model, run_phase, top_layers
from tests.unit.test_reward_train import rm_rows, small_cfg


def test_flip_loss_on_hand_computed_margins():
    import torch

    # one twin pair (rows 0, 1: m_a + m_b = 3) and a row without a twin
    got = flip_loss(torch.tensor([1.0, 2.0, 0.5]), torch.tensor([0, 0, -1]))
    assert got.item() == pytest.approx(math.log(1 + math.exp(-3)), abs=1e-6)
    # two pairs: sums 0 and 2 -> mean of log 2 and log(1 + e^-2)
    got = flip_loss(torch.tensor([1.0, 4.0, -1.0, -2.0]), torch.tensor([3, 5, 3, 5]))
    assert got.item() == pytest.approx((math.log(2) + math.log(1 + math.exp(-2))) / 2, abs=1e-6)


def test_flip_loss_without_pairs_is_zero_and_keeps_the_graph():
    import torch

    m = torch.tensor([1.0, 2.0], requires_grad=True)
    got = flip_loss(m, torch.tensor([-1, 7]))  # unit 7 has only one row in this batch
    assert got.item() == 0.0 and got.requires_grad


def test_flip_loss_gradient_pushes_both_margins_up():
    import torch

    m = torch.tensor([0.0, 0.0], requires_grad=True)
    flip_loss(m, torch.tensor([0, 0])).backward()
    assert m.grad.tolist() == pytest.approx([-0.5, -0.5])  # d/dx -log sigmoid(x) at 0


def test_top_layers():
    assert top_layers(30, 4) == [26, 27, 28, 29]
    assert top_layers(30, 0) is None and top_layers(30, 30) is None and top_layers(2, 5) is None


def test_twin_ids_mark_each_twin_unit():
    assert twin_ids([[0, 2], [1], [3, 4]], 5) == [0, -1, 0, 2, 2]


def test_tokenize_rows_caps_responses_and_carries_twins(tiny_model):
    from salmon.models import load_tokenizer

    tok = load_tokenizer(str(tiny_model))
    rows = rm_rows(4)
    rows[0]["chosen"] = "word " * 200
    full = tokenize_rows(rows, tok, 512)
    capped = tokenize_rows(rows, tok, 512, max_response_tokens=16, twins=[0, 0, -1, -1])
    assert len(capped[0]["chosen_ids"]) < len(full[0]["chosen_ids"]) - 150
    assert capped[2]["chosen_ids"] == full[2]["chosen_ids"]  # short responses are not touched
    assert capped["twin"] == [0, 0, -1, -1] and "twin" not in full.column_names
    tail = tok.decode(capped[0]["chosen_ids"][-40:])
    assert rows[0]["principles"][0] in tail  # the principles are never cut


@pytest.mark.parametrize("lora", [True, False])
def test_top_layer_training_changes_only_the_top_layer(tiny_model, tmp_path, lora):
    from transformers import set_seed

    from salmon.models import load_tokenizer

    cfg = small_cfg(tiny_model, "unused", tmp_path / "rm", max_steps=3, trainable_layers=1, lora=lora,
                    flip_coefficient=1.0, max_response_tokens=8)
    tok = load_tokenizer(cfg.model)
    set_seed(0)
    model = build_rm_model(cfg, tok)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("layers.0." not in n for n in trainable)
    assert any("layers.1." in n for n in trainable) and any("score" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    rows = rm_rows(8)
    for i in range(1, 8, 2):  # make rows 2k+1 the negated twins of rows 2k
        rows[i].update(chosen=rows[i - 1]["rejected"], rejected=rows[i - 1]["chosen"])
    units = twin_units(rows)
    train = tokenize_rows(rows, tok, cfg.max_length, cfg.max_response_tokens, twin_ids(units, len(rows)))
    m = run_phase(model, tok, train, None, tmp_path / "rm", cfg, 1.0, units)
    assert m["steps"] == 3
    for name, p in model.named_parameters():
        changed = not (p.detach() == before[name]).all()
        assert changed == (name in trainable), name


def _twin_batch(tiny_model, tmp_path):
    """Four rows as two negated-twin units, tokenised and collated into one batch, and a
    freshly seeded tiny RM with trainer args: (tokenizer, dataset, model, args, batch)."""
    from transformers import set_seed
    from trl import RewardConfig

    from salmon.models import load_tokenizer
    from salmon.reward.trainer import collate_with_twins

    tok = load_tokenizer(str(tiny_model))
    rows = rm_rows(4)
    for i in (1, 3):
        rows[i].update(chosen=rows[i - 1]["rejected"], rejected=rows[i - 1]["chosen"])
    ds = tokenize_rows(rows, tok, 192, twins=twin_ids(twin_units(rows), 4))
    set_seed(0)
    model = build_rm_model(small_cfg(tiny_model, "unused", tmp_path / "rm"), tok)
    args = RewardConfig(output_dir=str(tmp_path / "o"), use_cpu=True, report_to=[], max_length=None)
    batch = collate_with_twins(tok.pad_token_id)([ds[i] for i in range(4)])
    return tok, ds, model, args, batch


def test_the_flip_term_is_added_to_the_training_loss(tiny_model, tmp_path):
    """Same model, same batch: the loss with the flip term minus the loss without it is
    exactly the coefficient times flip_loss of the batch's margins."""
    import torch

    from salmon.reward.trainer import make_trainer_class

    tok, ds, model, args, batch = _twin_batch(tiny_model, tmp_path)
    losses = {}
    for coef in (0.0, 2.0):
        trainer = make_trainer_class(None, 4, 0, 1.0, coef)(model=model, args=args, train_dataset=ds,
                                                             processing_class=tok)
        model.train()
        with torch.no_grad():
            losses[coef], out = trainer.compute_loss(model, dict(batch), return_outputs=True)
    chosen, rejected = out.logits.squeeze(-1).chunk(2)
    expected = 2.0 * flip_loss(chosen - rejected, batch["twin"])
    assert expected.item() > 0
    assert (losses[2.0] - losses[0.0]).item() == pytest.approx(expected.item(), rel=1e-5)


def test_bad_fast_options_are_clear_errors():
    for kw, flag in ((dict(trainable_layers=-1), "--trainable-layers"), (dict(flip_coefficient=-0.5), "--flip"),
                     (dict(max_response_tokens=0), "--max-response-tokens")):
        with pytest.raises(SalmonError, match=flag):
            TrainRMConfig(**kw).validate()


def test_group_prefixes():
    from salmon.reward.shared import group_prefixes

    assert group_prefixes([[1, 2], [3], [1, 2], [3], [4]]) == ([[1, 2], [3], [4]], [0, 1, 0, 1, 2])


def test_shared_prefix_logits_and_gradients_equal_the_full_inputs(tiny_model, tmp_path):
    import torch

    from salmon.models import load_tokenizer
    from salmon.padding import right_pad
    from salmon.reward.shared import shared_prefix_logits

    tok = load_tokenizer(str(tiny_model))
    torch.manual_seed(0)
    model = build_rm_model(small_cfg(tiny_model, "unused", tmp_path / "rm", trainable_layers=1), tok)
    for name, p in model.named_parameters():
        if "lora_B" in name:  # non-zero LoRA so that the top layer's keys/values carry gradients
            torch.nn.init.normal_(p, std=0.1)
    prefixes = [[1, 2, 3, 4, 5], [7, 8, 9], [1, 2, 3, 4, 5], [7, 8, 9]]
    suffixes = [[10, 11], [12, 13, 14, 15], [16], [17, 18, 19]]
    ids, mask = right_pad([a + b for a, b in zip(prefixes, suffixes, strict=True)], tok.pad_token_id)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    full = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    shared = shared_prefix_logits(model, prefixes, suffixes, tok.pad_token_id)
    assert torch.allclose(full, shared, atol=1e-5)
    weights = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    for g_full, g_shared in zip(torch.autograd.grad((full * weights).sum(), params),
                                torch.autograd.grad((shared * weights).sum(), params), strict=True):
        assert torch.allclose(g_full, g_shared, atol=1e-5)


def test_training_with_shared_prefixes_gives_the_same_loss(tiny_model, tmp_path):
    import torch

    from salmon.reward.trainer import make_trainer_class

    tok, ds, model, args, batch = _twin_batch(tiny_model, tmp_path)
    assert batch["split"].tolist() == list(ds["chosen_split"]) + list(ds["rejected_split"])
    model.train()
    losses = []
    for share in (False, True):
        trainer = make_trainer_class(None, 4, 0, 1.0, 1.0, share)(model=model, args=args, train_dataset=ds,
                                                                   processing_class=tok)
        with torch.no_grad():
            losses.append(trainer.compute_loss(model, dict(batch)).item())
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
