"""SFT: label masking, data checks, resume, and the base-model path end to end
(self-align -> sft on a tiny random model without a chat template)."""

from __future__ import annotations

import json
import shutil

import pytest

from salmon.errors import SalmonError
from salmon.sft import SFTConfig, encode_conversation, load_conversations, make_trainer, sft

CONV = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue is a colour."}]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """A tiny random Llama whose tokenizer has no chat template (a 'base model')."""
    from salmon.models import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("base") / "model", seed=1)
    (path / "chat_template.jinja").unlink(missing_ok=True)
    tc = json.loads((path / "tokenizer_config.json").read_text())
    tc.pop("chat_template", None)
    (path / "tokenizer_config.json").write_text(json.dumps(tc))
    return path


def _tok(model):
    from salmon.models import load_tokenizer

    return load_tokenizer(str(model))


def _split(tok, row):
    n_masked = sum(label == -100 for label in row["labels"])
    assert row["labels"][:n_masked] == [-100] * n_masked  # masked part is a prefix
    assert row["labels"][n_masked:] == row["input_ids"][n_masked:]
    return tok.decode(row["input_ids"][:n_masked]), tok.decode(row["input_ids"][n_masked:])


def test_prompt_tokens_masked_chat_template(tiny_model):
    tok = _tok(tiny_model)
    prompt, answer = _split(tok, encode_conversation(tok, CONV, 512))
    assert prompt.endswith("Name a colour.<|im_end|>\n<|im_start|>assistant\n")
    assert answer == "Blue is a colour.<|im_end|>\n"


def test_prompt_tokens_masked_plain_format(tiny_base):
    from salmon.chat import has_chat_template

    tok = _tok(tiny_base)
    assert not has_chat_template(tok)
    prompt, answer = _split(tok, encode_conversation(tok, CONV, 512))
    assert prompt == "### User:\nName a colour.\n\n### Assistant:\n"
    assert answer == "Blue is a colour." + tok.eos_token


def test_truncation_keeps_start_and_drops_answerless_rows(tiny_model):
    tok = _tok(tiny_model)
    full = encode_conversation(tok, CONV, 512)
    n_prompt = sum(label == -100 for label in full["labels"])
    cut = encode_conversation(tok, CONV, n_prompt + 2)
    assert cut["input_ids"] == full["input_ids"][: n_prompt + 2]
    assert encode_conversation(tok, CONV, n_prompt) is None


def test_trainer_keeps_our_labels(tiny_model, tmp_path):
    tok = _tok(tiny_model)
    row = encode_conversation(tok, CONV, 512)
    trainer = make_trainer(SFTConfig(model=str(tiny_model), out=str(tmp_path), progress=False, device="cpu"),
                           tok, [row])
    prepared = trainer.train_dataset[0]
    assert prepared["labels"] == row["labels"] and prepared["input_ids"] == row["input_ids"]


@pytest.mark.parametrize("rows, message", [
    ([{"messages": [{"role": "user", "content": "hi"}]}], "at least a user and an assistant turn"),
    ([{"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "yo"}]}], "needs 'role'"),
    ([{"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "yo"}]}],
     "must end with an assistant turn"),
    ([{"text": "hello"}], "no 'messages' column"),
])
def test_bad_sft_data(tmp_path, rows, message):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SalmonError, match=message) as err:
        load_conversations(str(path))
    assert str(path) in str(err.value)


def test_empty_sft_data_is_an_error(tmp_path, tiny_model, cli):
    import datasets

    datasets.Dataset.from_dict({"id": [], "messages": []}).save_to_disk(str(tmp_path / "empty"))
    code, _, err = cli("sft", "--model", tiny_model, "--data", tmp_path / "empty", "--out", tmp_path / "o")
    assert code == 2 and "no rows to train on" in err


def _train(model, data, out, **kw):
    cfg = dict(model=str(model), data=str(data), out=str(out), max_steps=4, save_steps=2, batch_size=2,
               lora_r=4, lora_alpha=8, lora_dropout=0.0, learning_rate=1e-2, progress=False, device="cpu")
    cfg.update(kw)
    return sft(SFTConfig(**cfg))


def _adapter(out):
    from safetensors.torch import load_file

    return load_file(str(out / "adapter_model.safetensors"))


@pytest.mark.slow
def test_resume_from_checkpoint_matches_uninterrupted(tiny_model, tmp_path):
    data = tmp_path / "d.jsonl"
    convs = [[{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i} it is."}]
             for i in range(8)]
    data.write_text("".join(json.dumps({"messages": c}) + "\n" for c in convs))
    full = _train(tiny_model, data, tmp_path / "full")
    summary = json.loads((full / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["trained_rows"] == 8 and summary["resumed_from"] is None

    crashed = tmp_path / "crashed"
    shutil.copytree(full, crashed)  # pretend the run died after checkpoint-2
    (crashed / "config.yaml").write_text((full / "config.yaml").read_text().replace(str(full), str(crashed)))
    shutil.rmtree(crashed / "checkpoints" / "checkpoint-4")
    for name in ("summary.json", "adapter_model.safetensors", "adapter_config.json"):
        (crashed / name).unlink()
    _train(tiny_model, data, crashed)
    assert json.loads((crashed / "summary.json").read_text())["resumed_from"].endswith("checkpoint-2")
    a, b = _adapter(full), _adapter(crashed)
    assert a.keys() == b.keys() and len(a) > 0
    import torch

    for k in a:
        torch.testing.assert_close(a[k], b[k])
        assert a[k].abs().sum() > 0  # LoRA B starts at zero; every tensor moved


@pytest.mark.slow
def test_base_model_self_align_then_sft_end_to_end(tiny_base, tmp_path, cli):
    """The base-model path: plain-text Self-Align prompt, then LoRA SFT and a merged model.
    Random text never stops by itself, so only the 'empty' filter is kept, with --min-words 0."""
    import datasets

    from salmon.models import load_causal_lm
    from salmon.sources import load_prompts

    sa = tmp_path / "sft_data"
    code, out, err = cli("self-align", "--model", tiny_base, "--out", sa, "--limit", "4", "--max-new-tokens", "8",
                         "--batch-size", "2", "--filters", "empty", "--min-words", "0", "--no-progress",
                         "--device", "cpu")
    assert code == 0, err
    raw = [json.loads(line) for line in (sa / "responses.jsonl").read_text().splitlines()]
    rows = list(datasets.load_from_disk(str(sa / "dataset")))
    prompts = {p["id"]: p["prompt"] for p in load_prompts("builtin", 4)}
    assert len(raw) == len(rows) == 4
    for row, rec in zip(rows, raw, strict=True):
        assert row["messages"] == [{"role": "user", "content": prompts[row["id"]]},
                                   {"role": "assistant", "content": rec["answer"]}]
    assert json.loads((sa / "summary.json").read_text())["kept"] == 4

    sft_out = tmp_path / "sft"
    code, out, err = cli("sft", "--model", tiny_base, "--data", sa, "--out", sft_out, "--max-steps", "2",
                         "--batch-size", "2", "--lora-r", "4", "--learning-rate", "0.01", "--merge", "--no-progress",
                         "--device", "cpu")
    assert code == 0, err
    summary = json.loads((sft_out / "summary.json").read_text())
    assert summary["trained_rows"] == 4 and summary["steps"] == 2 and summary["prompt_tokens_masked"] > 0
    adapter_cfg = json.loads((sft_out / "adapter_config.json").read_text())
    assert adapter_cfg["base_model_name_or_path"] == str(tiny_base.resolve())

    import torch

    tuned = load_causal_lm(str(sft_out), device="cpu")
    merged = load_causal_lm(str(sft_out / "merged"), device="cpu")
    ids = torch.tensor([[1, 2, 3, 4]])
    base = load_causal_lm(str(tiny_base), device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(tuned(ids).logits, merged(ids).logits, atol=1e-4, rtol=1e-4)
        assert (tuned(ids).logits - base(ids).logits).abs().max() > 1e-3  # training changed the model
    code, _, err = cli("sft", "--model", tiny_base, "--data", sa, "--out", sft_out, "--max-steps", "2",
                       "--batch-size", "2", "--lora-r", "4", "--learning-rate", "0.01", "--merge", "--no-progress",
                       "--device", "cpu")
    assert code == 0 and "already complete" in " ".join(err.split())


def test_adapter_as_base_model_is_refused(tiny_model, tmp_path):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_model)}))
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"messages": CONV}) + "\n")
    with pytest.raises(SalmonError, match="is a LoRA adapter"):
        _train(tmp_path / "adapter", data, tmp_path / "out")
