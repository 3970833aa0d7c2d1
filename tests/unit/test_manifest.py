"""Stage digests: built-in files a stage reads make its manifest stale when they change."""

import shutil
from importlib import resources
from pathlib import Path

from salmon.manifest import tree_digest
from salmon.pipeline import BUILTIN_READS, builtin_digest
from salmon.stages import STAGE_ORDER


def _fake_package(tmp_path: Path) -> Path:
    root = tmp_path / "pkg"
    (root / "data" / "verify").mkdir(parents=True)
    (root / "data" / "dev").mkdir(parents=True)
    (root / "data" / "verify" / "principles.yaml").write_text("families: []\n")
    (root / "data" / "dev" / "verify_dev.jsonl").write_text('{"id": 1}\n')
    return root


def test_every_stage_names_its_built_in_reads_and_they_exist():
    assert set(BUILTIN_READS) == set(STAGE_ORDER)
    package = Path(str(resources.files("salmon")))
    for stage, names in BUILTIN_READS.items():
        for name in names:
            assert (package / name).exists(), f"{stage}: {name}"


def test_editing_a_built_in_file_changes_only_the_stages_that_read_it(tmp_path):
    root = _fake_package(tmp_path)
    before = {s: builtin_digest(s, root) for s in ("aggregate", "generate", "evaluate")}
    (root / "data" / "verify" / "principles.yaml").write_text("families: [x]\n")
    after = {s: builtin_digest(s, root) for s in before}
    assert after["aggregate"] != before["aggregate"]  # reads data/verify
    assert after["evaluate"] != before["evaluate"]  # reads data/verify and data/dev
    assert after["generate"] == before["generate"]  # reads data/prompts only
    assert builtin_digest("aggregate", root) == after["aggregate"]  # deterministic


def test_tree_digest_sees_added_removed_and_renamed_files(tmp_path):
    root = _fake_package(tmp_path)
    base = tree_digest(root, ["data/dev"])
    extra = root / "data" / "dev" / "new.jsonl"
    extra.write_text("{}\n")
    added = tree_digest(root, ["data/dev"])
    assert added != base
    extra.unlink()
    assert tree_digest(root, ["data/dev"]) == base
    shutil.move(root / "data" / "dev" / "verify_dev.jsonl", root / "data" / "dev" / "other.jsonl")
    assert tree_digest(root, ["data/dev"]) != base  # same bytes, another name
    assert tree_digest(root, []) == tree_digest(root, ["missing"])  # nothing there counts as empty
