"""kill -9 during `salmon generate`, rerun: the same records as an uninterrupted run."""

import subprocess

from tests.reliability.conftest import salmon_cmd


def test_generate_survives_kill_9(tiny_model, tmp_path, killer):
    args = ["generate", "--model", tiny_model, "--limit", "40", "--n", "2", "--batch-size", "2",
            "--max-new-tokens", "12", "--no-progress"]
    killed_out = tmp_path / "killed" / "r.jsonl"
    killed = killer(salmon_cmd(*args, "--out", killed_out), killed_out.with_name("r.jsonl.partial"), min_lines=3)
    assert killed, "the run finished before it could be killed; make it longer"
    assert not killed_out.exists()  # no finished-looking file after a crash
    subprocess.run(salmon_cmd(*args, "--out", killed_out), check=True, capture_output=True)
    clean_out = tmp_path / "clean" / "r.jsonl"
    subprocess.run(salmon_cmd(*args, "--out", clean_out), check=True, capture_output=True)
    assert killed_out.read_bytes() == clean_out.read_bytes()
