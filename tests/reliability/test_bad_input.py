"""Bad-input matrix: every case gets a one-line error and a non-zero exit (or a 4xx from
the server, see tests/integration/test_serve.py), and files already written stay as they were."""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path

import pytest


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def ws(tmp_path):
    """A workspace with valid inputs and one finished output that must never change."""
    (tmp_path / "prompts.jsonl").write_text('{"id": "1", "prompt": "Say hi."}\n')
    (tmp_path / "responses.jsonl").write_text(json.dumps(
        {"id": "1", "prompt": "Say hi.", "responses": ["hello there friend", "hi to you too"]}) + "\n")
    (tmp_path / "done.jsonl").write_text('{"id": "x", "prompt": "p", "responses": ["a"]}\n')
    (tmp_path / "p.yaml").write_text("principles:\n  - name: A\n    definition: The response is kind.\n")
    return tmp_path


def files(ws: Path) -> dict[str, Path]:
    bad = {
        "malformed.jsonl": '{"id": "1", "prompt": "x"}\n{"id": 2, "prompt": \n',
        "empty_prompt.jsonl": '{"id": "1", "prompt": "   "}\n',
        "wrong_type.jsonl": '{"id": "1", "prompt": ["a"]}\n',
        "not_object.jsonl": '"just a string"\n',
        "huge.jsonl": json.dumps({"id": "1", "prompt": "x" * 50_000}) + "\n",
        "braces.jsonl": '{"id": "1", "prompt": "{{evil}} {% for %}", "responses": 3}\n',
        "empty.yaml": "",
        "not_yaml.yaml": "principles: [unclosed\n",
        "dup.yaml": "principles:\n  - {name: A, definition: The response is short.}\n  - {name: A, definition: The response is kind.}\n",
        "noweight.yaml": "principles:\n  - {name: A, definition: The response is short., weight: 0}\n",
        "unknown_key.yaml": "principles:\n  - {name: A, definition: The response is short., color: red}\n",
        "badcfg.yaml": "n: [1, 2]\n",
        "unknowncfg.yaml": "nope: 1\n",
        "empty.jsonl": "",
    }
    out = {}
    for name, text in bad.items():
        (ws / name).write_text(text)
        out[name] = ws / name
    (ws / "bad_utf8.jsonl").write_bytes(b'{"id": "1", "prompt": "\xff\xfe"}\n')
    out["bad_utf8.jsonl"] = ws / "bad_utf8.jsonl"
    return out


CASES = [
    ("missing prompts", ["generate", "--prompts", "{ws}/nope.jsonl", "--out", "{ws}/o.jsonl"], "nope.jsonl: file not found"),
    ("malformed jsonl", ["generate", "--prompts", "{ws}/malformed.jsonl", "--out", "{ws}/o.jsonl"], "malformed.jsonl:2: malformed JSON"),
    ("empty prompt", ["generate", "--prompts", "{ws}/empty_prompt.jsonl", "--out", "{ws}/o.jsonl"], ":1: empty prompt"),
    ("wrong type", ["generate", "--prompts", "{ws}/wrong_type.jsonl", "--out", "{ws}/o.jsonl"], "prompt must be text"),
    ("not an object", ["generate", "--prompts", "{ws}/not_object.jsonl", "--out", "{ws}/o.jsonl"], "expected a JSON object"),
    ("huge text", ["generate", "--prompts", "{ws}/huge.jsonl", "--out", "{ws}/o.jsonl"], "characters (limit"),
    ("invalid utf-8", ["generate", "--prompts", "{ws}/bad_utf8.jsonl", "--out", "{ws}/o.jsonl"], "not valid UTF-8"),
    ("empty prompt file", ["generate", "--prompts", "{ws}/empty.jsonl", "--out", "{ws}/o.jsonl"], "no prompts"),
    ("prompt dir not file", ["generate", "--prompts", "{ws}", "--out", "{ws}/o.jsonl"], "unsupported prompt file type"),
    ("unknown model path", ["generate", "--model", "{ws}/nomodel", "--prompts", "{ws}/prompts.jsonl", "--out", "{ws}/o.jsonl"], "model folder not found"),
    ("model is a file", ["generate", "--model", "{ws}/p.yaml", "--prompts", "{ws}/prompts.jsonl", "--out", "{ws}/o.jsonl"], "must be a folder"),
    ("model dir without config", ["generate", "--model", "{ws}/sub", "--prompts", "{ws}/prompts.jsonl", "--out", "{ws}/o.jsonl"], "not a model folder"),
    ("bad flag value", ["generate", "--temperature", "-1"], "--temperature must be >= 0"),
    ("config wrong type", ["generate", "--config", "{ws}/badcfg.yaml"], "n: expected an integer"),
    ("config unknown key", ["generate", "--config", "{ws}/unknowncfg.yaml"], "unknown setting 'nope'"),
    ("config not yaml", ["generate", "--config", "{ws}/not_yaml.yaml"], "not valid YAML"),
    ("out is a folder", ["pairs", "{ws}/responses.jsonl", "--out", "{ws}"], "is a folder"),
    ("pairs missing", ["pairs", "{ws}/nope.jsonl", "--out", "{ws}/p.jsonl"], "file not found"),
    ("pairs bad record", ["pairs", "{ws}/braces.jsonl", "--out", "{ws}/p.jsonl"], "expected a generate record"),
    ("pairs same in/out", ["pairs", "{ws}/responses.jsonl", "--out", "{ws}/responses.jsonl"], "--out must differ"),
    ("principles empty", ["principles", "validate", "{ws}/empty.yaml"], "empty file"),
    ("principles not yaml", ["principles", "validate", "{ws}/not_yaml.yaml"], "not valid YAML"),
    ("principles duplicate", ["principles", "validate", "{ws}/dup.yaml"], "duplicate name"),
    ("principles weight", ["principles", "validate", "{ws}/noweight.yaml"], "'weight' must be a positive number"),
    ("principles unknown key", ["principles", "validate", "{ws}/unknown_key.yaml"], "unknown key 'color'"),
    ("principles unknown builtin", ["principles", "show", "nosuchset"], "no such principle file"),
    ("run unknown stage", ["run", "--out", "{ws}/run", "--from", "nosuchstage"], "--from nosuchstage: unknown stage"),
    ("run bad section", ["run", "--config", "{ws}/unknowncfg.yaml", "--out", "{ws}/run"], "unknown section 'nope'"),
    ("serve bad port", ["serve", "--port", "70000"], "--port 70000"),
    ("serve missing token file", ["serve", "--token-file", "{ws}/nope.txt", "--port", "5999"], "cannot read"),
]


@pytest.mark.parametrize("name,args,needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input_matrix(cli, ws, name, args, needle):
    files(ws)
    (ws / "sub").mkdir(exist_ok=True)
    before = _snapshot(ws)
    code, out, err = cli(*[a.format(ws=ws) for a in args])
    assert code != 0, f"{name}: exit 0\n{out}\n{err}"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{name}: {err!r}"
    assert needle in lines[0], f"{name}: {lines[0]!r}"
    after = _snapshot(ws)
    assert {k: v for k, v in after.items() if k in before} == before, f"{name}: an existing file changed"


def test_full_disk_is_one_line_and_keeps_finished_work(cli, ws, tiny_model, monkeypatch):
    """A write error (ENOSPC) mid-run: one line, non-zero exit, finished outputs untouched."""
    import salmon.jsonl as jsonl

    before = _snapshot(ws)

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jsonl.os, "fsync", no_space)
    code, _, err = cli("generate", "--model", tiny_model, "--prompts", ws / "prompts.jsonl", "--out", ws / "o.jsonl",
                       "--max-new-tokens", "4", "--no-progress")
    assert code != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "No space left on device" in lines[0]
    assert {k: v for k, v in _snapshot(ws).items() if k in before} == before
    assert not (ws / "o.jsonl").exists()
