"""One CLI vocabulary: TRL names for shared flags, old names refused by name, `--from`
taking command names, help written for users, one error style, clean failed starts."""

import dataclasses

import pytest

from salmon.config import RENAMED, load_config
from salmon.errors import SalmonError
from salmon.stages import STAGE_ORDER, STAGES, command_name, pipeline_stage

TRAINING = ("sft", "train-rm", "rl")


def run_main(capsys, *args):
    from salmon.cli import main

    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def test_shared_training_settings_have_one_name_and_type():
    for name in TRAINING:
        fields = {f.name: f for f in dataclasses.fields(STAGES[name].load()[0])}
        for new, tp in (("learning_rate", "float"), ("gradient_checkpointing", "bool"),
                        ("save_total_limit", "int"), ("save_steps", "int"), ("report_to", "str")):
            assert fields[new].type in (tp, eval(tp)), (name, new)  # noqa: S307 - a type name
        assert not set(RENAMED) & set(fields), name


@pytest.mark.parametrize("name,stage", [("eval", "evaluate"), ("evaluate", "evaluate"), ("train-rm", "train_rm"),
                                        ("train_rm", "train_rm"), ("self-align", "self_align"), ("rl", "rl")])
def test_from_accepts_command_and_folder_names(name, stage):
    assert pipeline_stage(name) == stage
    assert all(pipeline_stage(command_name(s)) == s for s in STAGE_ORDER)


def test_from_unknown_lists_command_names():
    with pytest.raises(SalmonError, match=r"--from nosuch: unknown stage \(stages: self-align, sft, .*, eval, report\)"):
        pipeline_stage("nosuch")


def test_old_yaml_names_give_one_line_naming_the_new_flag(tmp_path):
    from salmon.rl.ppo import RLConfig

    cfg = tmp_path / "c.yaml"
    cfg.write_text("lr: 0.001\n")
    with pytest.raises(SalmonError, match=r"c.yaml: 'lr' is now 'learning_rate' \(--learning-rate\)"):
        load_config(RLConfig, cfg)
    cfg.write_text("keep_checkpoints: 3\n")
    with pytest.raises(SalmonError, match="'keep_checkpoints' is now 'save_total_limit'"):
        load_config(RLConfig, cfg)


def test_click_and_salmon_errors_look_the_same(capsys):
    code, _, err = run_main(capsys, "rl", "--lr", "1e-3")
    assert code == 2 and err.strip() == "error: --lr: renamed to --learning-rate"
    code, _, err = run_main(capsys, "generate", "--bogus", "1")
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: No such option: --bogus")
    code, _, err = run_main(capsys, "generate", "--n", "0")
    assert code == 2 and err.strip() == "error: --n must be at least 1"
    code, _, err = run_main(capsys, "nosuch")
    assert code == 2 and err.startswith("error: No such command 'nosuch'")


def test_help_is_written_for_users(cli):
    for name in STAGES:
        code, out, _ = cli(name, "--help")
        assert code == 0 and "Example:" in out and f"salmon {name}" in out, name
        head = out.split("Example:")[0]
        assert "Stage" not in head and ".py" not in head and "`" not in head, (name, head)


def test_a_failed_start_leaves_nothing_and_a_refused_resume_names_the_files(cli, tmp_path):
    out = tmp_path / "x.jsonl"
    code, _, err = cli("generate", "--model", tmp_path / "nosuch", "--out", out)
    assert code == 2 and "model folder not found" in err
    assert list(tmp_path.iterdir()) == []
    code, _, err = cli("sft", "--model", tmp_path / "nosuch", "--data", tmp_path / "nodata", "--out", tmp_path / "s")
    assert code == 2 and list(tmp_path.iterdir()) == []
    args = ("generate", "--model", "tiny", "--out", out, "--max-new-tokens", "2", "--no-progress")
    assert cli(*args, "--limit", "1")[0] == 0
    code, _, err = cli(*args, "--limit", "2")
    assert code == 2 and "limit=1" in err
    assert f"delete {out} {tmp_path / 'x.config.yaml'} {tmp_path / 'x.summary.json'} to start over" in err
