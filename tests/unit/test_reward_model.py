"""The instructable reward model: loading, batched and prefix-shared scoring, the score
CLI, make_reward_fn, and one TRL GRPO step with it as the reward function."""

from __future__ import annotations

import json

import pytest

from salmon.errors import SalmonError
from salmon.reward import InstructableRewardModel, make_reward_fn
from salmon.reward.template import format_rm_input

PRINCIPLES = [["Concise: The response is short."], ["The response is long.", "The response is polite."],
              ["The response answers the question."]]


@pytest.fixture(scope="module")
def rm_dir(tiny_model, tmp_path_factory):
    """A reward-model folder on the tiny base with non-zero LoRA weights (so they matter)."""
    import torch

    from salmon.models import load_tokenizer
    from salmon.reward.train import TrainRMConfig, build_rm_model

    tok = load_tokenizer(str(tiny_model))
    torch.manual_seed(0)
    model = build_rm_model(TrainRMConfig(model=str(tiny_model)), tok)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.2)
    meta = {"base_model": str(tiny_model), "template": "rm", "max_length": 256,
            "reward_mean": 0.5, "reward_std": 2.0}
    return InstructableRewardModel(model, tok, meta).save(tmp_path_factory.mktemp("rm") / "rm")


@pytest.fixture(scope="module")
def rm(rm_dir):
    return InstructableRewardModel.load(rm_dir)


def items():
    prompts = ["How far is the moon?"] * 3 + ["Name a fruit."] * 2
    responses = ["About 384,000 km.", "About 384,000 km.", "Far.", "Apple.", "A banana is a fruit."]
    principles = [PRINCIPLES[0], PRINCIPLES[1], PRINCIPLES[0], PRINCIPLES[2], PRINCIPLES[1]]
    return prompts, responses, principles


def test_saved_folder_follows_the_contract(rm_dir, tiny_model):
    names = {p.name for p in rm_dir.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "salmon_rm.json", "tokenizer.json"} <= names
    cfg = json.loads((rm_dir / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(tiny_model)
    assert "score" in cfg["modules_to_save"]


def test_prefix_shared_batched_and_text_scoring_agree(rm):
    prompts, responses, principles = items()
    shared = rm.score(prompts, responses, principles, batch_size=8)
    plain = rm.score(prompts, responses, principles, batch_size=8, share_prefix=False)
    one_by_one = [rm.score([p], [r], [ps], batch_size=1)[0] for p, r, ps in zip(prompts, responses, principles,
                                                                              strict=True)]
    texts = rm.score_texts([format_rm_input(rm.tokenizer, p, r, ps)
                            for p, r, ps in zip(prompts, responses, principles, strict=True)])
    assert shared == pytest.approx(plain, abs=1e-5)
    assert plain == pytest.approx(one_by_one, abs=1e-5)
    assert texts == pytest.approx(one_by_one, abs=1e-5)
    assert len(set(round(x, 6) for x in plain)) == len(plain)  # the inputs really differ


def test_principles_change_the_reward_and_names_do_not(rm):
    a, b, c = rm.score(["Q?"] * 3, ["A."] * 3, [["The response is short."], ["The response is long."],
                                                 ["Brevity: The response is short."]])
    assert a != b
    assert a == pytest.approx(c, abs=1e-6)


def test_full_finetuned_folder_loads_and_scores_the_same(rm, tmp_path):
    import copy

    full = tmp_path / "full"
    InstructableRewardModel(copy.deepcopy(rm.model).merge_and_unload(), rm.tokenizer, rm.meta).save(full)
    assert not (full / "adapter_config.json").exists()
    loaded = InstructableRewardModel.load(full)
    prompts, responses, principles = items()
    assert loaded.score(prompts, responses, principles) == pytest.approx(rm.score(prompts, responses, principles),
                                                                          abs=1e-4)


def test_score_api_errors(rm):
    with pytest.raises(SalmonError, match="must match"):
        rm.score(["a", "b"], ["x"], [["p"]])
    with pytest.raises(SalmonError, match="non-empty list"):
        rm.score(["a"], ["x"], [[]])
    with pytest.raises(SalmonError, match="reward model folder not found"):
        InstructableRewardModel.load("/nonexistent/rm")


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_score_cli_keeps_records_in_order_and_resumes(cli, rm_dir, rm, tmp_path):
    prompts, responses, principles = items()
    recs = [{"prompt": p, "response": r, "principles": ps, "id": i}
            for i, (p, r, ps) in enumerate(zip(prompts, responses, principles, strict=True))]
    inp = write(tmp_path / "items.jsonl", recs)
    out = tmp_path / "scores.jsonl"
    # a crash after the first chunk: its rewards are in the partial file (input lines 1 and 2)
    expected = rm.score(prompts, responses, principles)
    write(tmp_path / "scores.jsonl.partial", [{"line": 1, "reward": expected[0]}, {"line": 2, "reward": expected[1]}])
    code, stdout, stderr = cli("score", "--rm", rm_dir, "--input", inp, "--out", out, "--no-progress")
    assert code == 0, stderr
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert [g["id"] for g in got] == list(range(len(recs)))
    assert [g["reward"] for g in got] == pytest.approx(expected, abs=1e-5)
    assert all(g["principles"] == r["principles"] for g, r in zip(got, recs, strict=True))
    summary = json.loads((tmp_path / "scores.summary.json").read_text())
    assert summary["scored_this_run"] == len(recs) - 2
    assert not (tmp_path / "scores.jsonl.partial").exists()


def test_score_cli_normalizes_with_training_statistics(cli, rm_dir, rm, tmp_path):
    inp = write(tmp_path / "items.jsonl", [{"prompt": "Q?", "response": "A.", "principles": ["The response is short."]}])
    code, _, stderr = cli("score", "--rm", rm_dir, "--input", inp, "--out", tmp_path / "s.jsonl", "--normalize",
                          "--no-progress")
    assert code == 0, stderr
    raw = rm.score(["Q?"], ["A."], [["The response is short."]])[0]
    assert json.loads((tmp_path / "s.jsonl").read_text())["reward"] == pytest.approx((raw - 0.5) / 2.0, abs=1e-5)


@pytest.mark.parametrize("record,message", [
    ({"prompt": "Q?", "principles": ["p"]}, "items.jsonl:2: missing field 'response'"),
    ({"prompt": "Q?", "response": "A."}, "items.jsonl:2: missing field 'principles'"),
    ({"prompt": "Q?", "response": "A.", "principles": []}, "items.jsonl:2: 'principles' must be a non-empty list"),
    ({"prompt": 3, "response": "A.", "principles": ["p"]}, "items.jsonl:2: 'prompt' must be text"),
])
def test_score_cli_bad_records_are_one_line_errors(cli, rm_dir, tmp_path, record, message):
    good = {"prompt": "Q?", "response": "A.", "principles": ["The response is short."]}
    inp = write(tmp_path / "items.jsonl", [good, record])
    code, stdout, stderr = cli("score", "--rm", rm_dir, "--input", inp, "--out", tmp_path / "s.jsonl")
    assert code == 2
    assert message in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s.jsonl").exists()


def test_score_cli_names_the_line_of_a_too_long_principle_list(cli, rm_dir, tmp_path):
    long = ["The response is careful, detailed, kind and correct in every way. " * 6] * 3
    inp = write(tmp_path / "items.jsonl", [{"prompt": "Q?", "response": "A.", "principles": ["Short."]},
                                           {"prompt": "Q?", "response": "A.", "principles": long}])
    code, _, stderr = cli("score", "--rm", rm_dir, "--input", inp, "--out", tmp_path / "s.jsonl")
    assert code == 2
    assert "items.jsonl:2:" in stderr and "too long" in stderr


def test_make_reward_fn_reads_strings_and_conversations(rm):
    fn = make_reward_fn(rm)
    assert fn.__name__ == "instructable_rm"
    principles = [["The response is short."], ["Helpful: The response answers the question."]]
    expected = rm.score(["Q?", "Name a fruit."], ["A.", "Apple."], principles)
    assert fn(["Q?", "Name a fruit."], ["A.", "Apple."], principles=principles) == pytest.approx(expected)
    conv_prompts = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}],
                    [{"role": "user", "content": "Name a fruit."}]]
    conv_completions = [[{"role": "assistant", "content": "A."}], [{"role": "assistant", "content": "Apple."}]]
    # the whole conversation is scored, its system turn included (not only the last user turn)
    with_system = rm.score([conv_prompts[0], "Name a fruit."], ["A.", "Apple."], principles)
    assert fn(conv_prompts, conv_completions, principles=principles) == pytest.approx(with_system)
    assert with_system[0] != pytest.approx(expected[0]) and with_system[1] == pytest.approx(expected[1])
    # one string instead of a list, extra TRL keyword arguments ignored
    assert fn(["Q?"], ["A."], principles=["The response is short."], trainer_state=None) == pytest.approx(
        expected[:1])


def test_make_reward_fn_defaults_and_normalization(rm):
    fn = make_reward_fn(rm, default_principles=["The response is short."], normalize=True)
    raw = rm.score(["Q?"], ["A."], [["The response is short."]])[0]
    assert fn(["Q?"], ["A."]) == pytest.approx([(raw - 0.5) / 2.0])
    with pytest.raises(SalmonError, match="no principles"):
        make_reward_fn(rm)(["Q?"], ["A."])
    with pytest.raises(SalmonError, match="has 1 values for 2 samples"):
        make_reward_fn(rm)(["Q?", "R?"], ["A.", "B."], principles=[["p"]])


def test_one_grpo_step_with_the_reward_function(rm, tiny_model, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    seen = []
    score = rm.score

    def spy(prompts, responses, principles, **kw):
        seen.append((list(prompts), [list(p) for p in principles]))
        return score(prompts, responses, principles, **kw)

    rm.score = spy
    try:
        ds = Dataset.from_list([{"prompt": "Say hi.", "principles": ["The response is short."]},
                                {"prompt": "Name a fruit.", "principles": ["Polite: The response is polite.",
                                                                          "The response names a fruit."]}])
        tok = AutoTokenizer.from_pretrained(tiny_model)
        policy = AutoModelForCausalLM.from_pretrained(tiny_model)
        before = {n: p.detach().clone() for n, p in policy.named_parameters()}
        args = GRPOConfig(output_dir=str(tmp_path / "grpo"), per_device_train_batch_size=2, num_generations=2,
                          max_completion_length=8, max_steps=1, use_cpu=True, report_to=[], save_strategy="no",
                          logging_steps=1, seed=0, disable_tqdm=True)
        trainer = GRPOTrainer(model=policy, reward_funcs=[make_reward_fn(rm)], args=args, train_dataset=ds,
                              processing_class=tok)
        trainer.train()
    finally:
        rm.score = score
    assert trainer.state.global_step == 1
    assert "rewards/instructable_rm/mean" in trainer.state.log_history[0]
    assert seen, "the reward model was never called"
    want = {r["prompt"]: r["principles"] for r in ds}
    pairs = [(p, ps) for prompts, lists in seen for p, ps in zip(prompts, lists, strict=True)]
    assert len(pairs) == 2  # one prompt, two generations
    assert all(p in want and ps == want[p] for p, ps in pairs)
    assert any(not (p.detach() == before[n]).all() for n, p in trainer.model.named_parameters())
