"""A two-turn conversation through generate -> pairs -> judge -> aggregate -> train-rm ->
score -> serve on the tiny random model, with both turns visible to the reward model."""

from __future__ import annotations

import json

import httpx
import pytest

pytestmark = pytest.mark.slow  # ~20-30 s on the shared 2-core machine: six stages on the tiny model

TURN1 = "My dog is called Rufus and he is three years old."
TURN1_OTHER = "My parrot is called Kiwi and she likes grapes."
TALK = [{"role": "user", "content": TURN1}, {"role": "assistant", "content": "What a lovely dog!"},
        {"role": "user", "content": "How old is my pet, and what is its name?"}]
OTHER = [{"role": "user", "content": TURN1_OTHER}, *TALK[1:]]


def _stages(tiny_model, tmp_path):
    from salmon.aggregate import AggregateConfig, aggregate
    from salmon.generate import GenerateConfig, generate
    from salmon.judge.stage import JudgeConfig, judge
    from salmon.pairs import PairsConfig, make_pairs
    from salmon.reward.train import TrainRMConfig, train_rm

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "talk", "prompt": TALK}) + "\n"
                       + json.dumps({"id": "plain", "prompt": "Name three colours."}) + "\n")
    model = str(tiny_model)
    principles = tmp_path / "principles.yaml"
    principles.write_text("principles:\n"
                          "  - {name: Direct, definition: The response answers the question that was asked.}\n"
                          "  - {name: Remembers, definition: The response uses what the user said earlier.}\n"
                          "  - {name: Brief, definition: The response is short.}\n")
    responses = generate(GenerateConfig(model=model, prompts=str(prompts), out=str(tmp_path / "r.jsonl"), n=3,
                                        max_new_tokens=6, temperature=1.0, top_p=1.0, progress=False))
    pairs = make_pairs(PairsConfig(responses=str(responses), out=str(tmp_path / "pairs.jsonl"), min_words=1,
                                   max_pairs_per_prompt=2))
    judgments = judge(JudgeConfig(model=model, pairs=str(pairs), principles=str(principles), out=str(tmp_path / "j.jsonl"),
                                  progress=False))
    data = aggregate(AggregateConfig(pairs=str(pairs), judgments=str(judgments), principles=str(principles),
                                     out=str(tmp_path / "rm_data"), consistency="mean", passes=2, rules=[],
                                     max_principles=3))
    rm = train_rm(TrainRMConfig(model=model, data=str(data), out=str(tmp_path / "rm"), max_steps=2, batch_size=2,
                                max_length=512, eval_fraction=0.0, norm_samples=2, progress=False))
    return responses, pairs, data, rm


@pytest.fixture(scope="module")
def run(tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("conv")
    return tmp, *_stages(tiny_model, tmp)


def test_every_stage_keeps_the_conversation(run):
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    from salmon.jsonl import read_jsonl
    from salmon.reward.data import tokenize_rows

    tmp, responses, pairs, data, rm = run
    assert [r["prompt"] for r in read_jsonl(responses) if r["id"] == "talk"] == [TALK]
    assert all(p["prompt"] == TALK for p in read_jsonl(pairs) if p["prompt_id"] == "talk")
    summary = json.loads((tmp / "j.summary.json").read_text())
    assert summary["truncated_turns"] == 0 and summary["pairs_judged"] >= 2
    rows = load_from_disk(str(data / "dataset")).to_list()
    convs = [r["prompt"] for r in rows]
    assert TALK in convs  # conversational column: text prompts became one user message
    assert [{"role": "user", "content": "Name three colours."}] in convs
    # what train-rm trains on holds both turns of the conversation
    tok = AutoTokenizer.from_pretrained(str(rm))
    ids = tokenize_rows([r for r in rows if r["prompt"] == TALK][:1], tok, 512)["chosen_ids"][0]
    text = tok.decode(ids)
    assert TURN1 in text and TALK[-1]["content"] in text and text.index(TURN1) < text.index(TALK[-1]["content"])


def test_first_turn_reaches_the_score_and_the_server(run):
    from salmon.reward import InstructableRewardModel
    from salmon.reward.score import ScoreConfig, score
    from salmon.serve import ChatMarkers, ServeConfig, create_app, rm_truncation
    from tests.integration.test_serve import Server

    tmp, *_, rm_dir = run
    items = tmp / "items.jsonl"
    principles = ["The response answers the question."]
    items.write_text("".join(json.dumps({"prompt": p, "response": "Rufus, three.", "principles": principles}) + "\n"
                             for p in (TALK, OTHER, TALK[-1]["content"])))
    out = score(ScoreConfig(rm=str(rm_dir), input=str(items), out=str(tmp / "scores.jsonl"), progress=False))
    rewards = [json.loads(line)["reward"] for line in out.read_text().splitlines()]
    assert len(set(rewards)) == 3  # changing only the first turn (or removing it) changes the score
    assert json.loads((tmp / "scores.summary.json").read_text())["truncated_turns_this_run"] == 0

    rm = InstructableRewardModel.load(rm_dir, device="cpu")
    from salmon.chat import render_chat

    markers = ChatMarkers.from_tokenizer(rm.tokenizer)
    server = Server(create_app(rm.score, ServeConfig(), markers, principles,
                               truncation=lambda p, r, ps: rm_truncation(rm, p, r, ps)))
    try:
        got = []
        for talk in (TALK, OTHER):
            text = render_chat(rm.tokenizer, talk)
            body = {"query": [text + "Rufus, three.<|im_end|>"], "prompts": [text], "labels": [None]}
            got.append(httpx.post(server.url + "/get_reward", json=body, timeout=30).json())
        # the server reads the same conversation as `salmon score` (SmolLM2's template adds
        # its default system turn, which the parse keeps: the input ids are identical)
        assert got[0]["rewards"][0] == pytest.approx(rewards[0], abs=1e-4)
        assert got[1]["rewards"][0] == pytest.approx(rewards[1], abs=1e-4)
        assert got[0]["extra_logs"]["rm_turns"] == [4.0] and got[0]["extra_logs"]["rm_truncated_turns"] == [0.0]
    finally:
        server.stop()
