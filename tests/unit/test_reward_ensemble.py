"""Reward-model ensembles: the weights and the sum by hand, an ensemble folder scoring as
the weighted sum of its members (prefix-shared or not, contrastive too), bad members
refused with one line, and RL scoring it as a separate reward model."""

from __future__ import annotations

import json
import shutil

import pytest

from salmon.errors import SalmonError
from salmon.reward.ensemble import (
    EnsembleRMConfig,
    combine,
    ensemble_members,
    ensemble_rm,
    is_ensemble,
    member_weights,
)

PROMPTS = ["How far is the moon?", "How far is the moon?", "Name a fruit."]
RESPONSES = ["About 384,000 km.", "Far.", "Apple."]
PRINCIPLES = [["The response is short."], ["The response is short."], ["The response is polite."]]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_member_weights_by_hand():
    # stds 1 and 2: mean 1.5; w = 1.5 / (2 * 1) = 0.75 and 1.5 / (2 * 2) = 0.375
    assert member_weights([1.0, 2.0]) == pytest.approx([0.75, 0.375])
    assert member_weights([3.0, 3.0, 3.0]) == pytest.approx([1 / 3] * 3)  # equal scales: the plain mean
    with pytest.raises(SalmonError, match="reward_std"):
        member_weights([1.0, 0.0])


def test_combine_by_hand():
    # item 0: 0.5 * 1 + 0.25 * 3 = 1.25; item 1: 0.5 * 2 + 0.25 * 4 = 2.0
    assert combine([[1.0, 2.0], [3.0, 4.0]], [0.5, 0.25]) == pytest.approx([1.25, 2.0])
    with pytest.raises(SalmonError):
        combine([[1.0, 2.0], [3.0]], [0.5, 0.5])


def _member(tiny_model, out, seed, std, scoring="raw"):
    from salmon.rl.bench import make_untrained_rm

    path = make_untrained_rm(str(tiny_model), out, seed=seed, randomize=True)
    meta = json.loads((path / "salmon_rm.json").read_text())
    (path / "salmon_rm.json").write_text(json.dumps({**meta, "reward_std": std, "scoring": scoring}))
    return path


@pytest.fixture(scope="module")
def members(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    return [_member(tiny_model, root / f"rm{k}", seed=k, std=std) for k, std in enumerate((2.0, 4.0))]


def test_ensemble_scores_the_weighted_sum_of_its_members(members, tmp_path):
    from salmon.reward.model import InstructableRewardModel

    out = ensemble_rm(EnsembleRMConfig(members=[str(m) for m in members], out=str(tmp_path / "ens")))
    assert is_ensemble(out) and not is_ensemble(members[0])
    meta = json.loads((out / "salmon_rm.json").read_text())
    assert [e["weight"] for e in meta["ensemble"]] == pytest.approx([0.75, 0.375])  # stds 2, 4: mean 3
    assert meta["reward_std"] == pytest.approx(3.0)
    ens = InstructableRewardModel.load(out, device="cpu")
    one = [InstructableRewardModel.load(m, device="cpu").score(PROMPTS, RESPONSES, PRINCIPLES) for m in members]
    expected = [0.75 * a + 0.375 * b for a, b in zip(*one, strict=True)]
    assert one[0] != pytest.approx(one[1])  # the members really differ
    assert ens.score(PROMPTS, RESPONSES, PRINCIPLES) == pytest.approx(expected, abs=1e-5)
    assert ens.score(PROMPTS, RESPONSES, PRINCIPLES, share_prefix=False) == pytest.approx(expected, abs=1e-5)
    with pytest.raises(SalmonError, match="ensemble-rm"):
        ens.save(tmp_path / "again")


def test_contrastive_members_make_a_contrastive_ensemble(tiny_model, tmp_path):
    from salmon.reward.model import InstructableRewardModel

    ms = [_member(tiny_model, tmp_path / f"c{k}", seed=k + 5, std=1.0, scoring="contrastive") for k in range(2)]
    ens = InstructableRewardModel.load(ensemble_rm(EnsembleRMConfig(members=[str(m) for m in ms],
                                                                     out=str(tmp_path / "ens"))), device="cpu")
    assert ens.contrastive
    one = [InstructableRewardModel.load(m, device="cpu").score(PROMPTS, RESPONSES, PRINCIPLES) for m in ms]
    assert ens.score(PROMPTS, RESPONSES, PRINCIPLES) == pytest.approx([(a + b) / 2 for a, b in zip(*one, strict=True)],
                                                                      abs=1e-5)


def test_bad_members_are_refused_and_nothing_is_written(members, tiny_model, tmp_path, monkeypatch):
    def refused(ms, match, out=None):
        out = out or tmp_path / "ens"
        with pytest.raises(SalmonError, match=match):
            ensemble_rm(EnsembleRMConfig(members=[str(m) for m in ms], out=str(out)))

    refused(members[:1], "at least 2")
    refused([members[0], members[0]], "twice")
    refused([members[0], tmp_path / "missing"], "not found")
    other = shutil.copytree(members[1], tmp_path / "long")
    meta = json.loads((other / "salmon_rm.json").read_text())
    (other / "salmon_rm.json").write_text(json.dumps({**meta, "max_length": 128}))
    refused([members[0], other], "differ in max_length")
    raw_vs_contrastive = shutil.copytree(members[1], tmp_path / "contrastive")
    (raw_vs_contrastive / "salmon_rm.json").write_text(json.dumps({**meta, "scoring": "contrastive"}))
    refused([members[0], raw_vs_contrastive], "differ in scoring")
    with monkeypatch.context() as m:  # members that differ are refused before anything is copied
        m.setattr(shutil, "copytree", lambda *a, **k: pytest.fail("copied before the members were checked"))
        refused([members[0], other], "differ in max_length")
    assert not (tmp_path / "ens").exists() and not list(tmp_path.glob(".ens.tmp*"))
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    refused(members, "already exists", out=taken)
    assert (taken / "keep.txt").read_text() == "mine"
    ens = ensemble_rm(EnsembleRMConfig(members=[str(m) for m in members], out=str(tmp_path / "ok")))
    refused([ens, members[0]], "itself an ensemble", out=tmp_path / "nested")


def test_a_member_path_outside_the_ensemble_folder_is_refused(members, tmp_path):
    ens = ensemble_rm(EnsembleRMConfig(members=[str(m) for m in members], out=str(tmp_path / "ens")))
    meta = json.loads((ens / "salmon_rm.json").read_text())
    assert [folder.name for folder, _ in ensemble_members(ens, meta)] == ["member-0", "member-1"]
    for bad in (str(members[0].resolve()), "../" + members[0].name, "member-0/../../" + members[0].name):
        tampered = {**meta, "ensemble": [{**meta["ensemble"][0], "path": bad}, *meta["ensemble"][1:]]}
        with pytest.raises(SalmonError, match="leaves the ensemble folder"):
            ensemble_members(ens, tampered)


def test_cli_one_line_error(cli, members, tmp_path):
    code, out, err = cli("ensemble-rm", "--members", str(members[0]), "--out", str(tmp_path / "e"))
    assert code != 0 and err.strip().count("\n") == 0 and "--members" in err
    code, out, err = cli("ensemble-rm", "--members", f"{members[0]},{members[1]}", "--out", str(tmp_path / "e"))
    assert code == 0 and (tmp_path / "e" / "member-1" / "adapter_model.safetensors").exists()


def test_rl_scores_an_ensemble_as_a_separate_reward_model(tiny_model, members, tmp_path):
    from salmon.reward.model import InstructableRewardModel
    from salmon.rl.models import LoraSettings, check_rm_folder, load_rl_models

    ens = ensemble_rm(EnsembleRMConfig(members=[str(m) for m in members], out=str(tmp_path / "ens")))
    assert check_rm_folder(ens) == ens
    m = load_rl_models(str(tiny_model), str(ens), LoraSettings(r=4, alpha=8), device="cpu")
    assert not m.shared
    theirs = InstructableRewardModel.load(ens, device="cpu").score(PROMPTS, RESPONSES, PRINCIPLES)
    assert m.reward.score(PROMPTS, RESPONSES, PRINCIPLES) == pytest.approx(theirs, abs=1e-5)


def test_train_rm_ensemble_trains_seeded_members_resumes_and_scores_their_weighted_sum(tiny_model, tmp_path):
    from salmon.reward.model import InstructableRewardModel
    from salmon.reward.train import train_rm
    from tests.unit.test_reward_train import rm_rows, save_rm_data, small_cfg

    data = save_rm_data(rm_rows(), tmp_path)
    cfg = small_cfg(tiny_model, data, tmp_path / "ens", max_steps=2, ensemble=2, seed=3, stop_after=1)
    train_rm(cfg)  # stops inside member 0: nothing is an ensemble yet
    assert (tmp_path / "ens" / "member-0" / "checkpoint-1").exists()
    assert not (tmp_path / "ens" / "summary.json").exists() and not is_ensemble(tmp_path / "ens")
    cfg.stop_after = None
    out = train_rm(cfg)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [3, 4] and len(summary["members"]) == 2
    member_cfgs = [(out / f"member-{k}" / "config.yaml").read_text() for k in range(2)]
    assert "seed: 3" in member_cfgs[0] and "seed: 4" in member_cfgs[1] and "ensemble: 1" in member_cfgs[0]
    stds = [json.loads((out / f"member-{k}" / "salmon_rm.json").read_text())["reward_std"] for k in range(2)]
    assert summary["weights"] == pytest.approx(member_weights(stds))
    ens = InstructableRewardModel.load(out)
    one = [InstructableRewardModel.load(out / f"member-{k}") for k in range(2)]
    got = ens.score(PROMPTS, RESPONSES, PRINCIPLES)
    want = combine([m.score(PROMPTS, RESPONSES, PRINCIPLES) for m in one], summary["weights"])
    assert got == pytest.approx(want, abs=1e-5)
    assert got != pytest.approx(one[0].score(PROMPTS, RESPONSES, PRINCIPLES), abs=1e-4)  # the seeds differ
    with pytest.raises(SalmonError, match="--merge"):
        small_cfg(tiny_model, data, tmp_path / "m", ensemble=2, merge=True).validate()
    with pytest.raises(SalmonError, match="--ensemble must be at least 1"):
        small_cfg(tiny_model, data, tmp_path / "z", ensemble=0).validate()
