from dataclasses import dataclass

import pytest

from salmon.config import check_resume, dump_yaml, load_config, opt, to_dict
from salmon.errors import SalmonError


@dataclass
class Demo:
    name: str = opt("x", "a name")
    n: int = opt(2, "a count")
    rate: float = opt(0.5, "a rate")
    flag: bool = opt(False, "a flag")
    stops: list[str] = opt([], "stops")
    limit: int | None = opt(None, "limit")
    show: bool = opt(True, "display", resume_safe=True)


def test_defaults_then_yaml_then_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("n: 5\nrate: 0.25\nstops: [a, b]\n")
    cfg = load_config(Demo, f, {"n": 7, "name": None})
    assert (cfg.name, cfg.n, cfg.rate, cfg.stops) == ("x", 7, 0.25, ["a", "b"])


def test_section_and_comma_lists(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("demo:\n  limit: 3\n")
    cfg = load_config(Demo, f, {"stops": "x,y"}, section="demo")
    assert cfg.limit == 3 and cfg.stops == ["x", "y"]


@pytest.mark.parametrize("text,msg", [
    ("bogus: 1\n", "unknown setting 'bogus'"),
    ("n: many\n", "n: expected an integer"),
    ("flag: maybe\n", "flag: expected true or false"),
    ("rate: [1]\n", "rate: expected a number"),
    ("n: [\n", "not valid YAML"),
    ("- 1\n- 2\n", "expected a mapping"),
])
def test_bad_yaml_names_the_problem(tmp_path, text, msg):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(SalmonError, match=msg.replace("[", r"\[")):
        load_config(Demo, f)


def test_missing_config_file(tmp_path):
    with pytest.raises(SalmonError, match="file not found"):
        load_config(Demo, tmp_path / "nope.yaml")


def test_check_resume_refuses_changed_settings_but_not_safe_ones(tmp_path):
    saved = tmp_path / "config.yaml"
    saved.write_text(dump_yaml(to_dict(Demo(n=3))))
    check_resume(Demo(n=3, show=False), saved)  # resume_safe field may differ
    with pytest.raises(SalmonError, match="started with n=3, now n=4"):
        check_resume(Demo(n=4), saved)
