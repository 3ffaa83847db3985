"""requirements.txt (what Hugging Face Spaces installs) lists exactly pyproject.toml's dependencies."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_requirements_txt_matches_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    reqs = [r for r in reqs if r and not r.startswith("-")]
    assert sorted(reqs) == sorted(d.split("#")[0].strip() for d in deps)
    assert any(r.startswith("torch==") for r in reqs), "torch must stay pinned (a loose torch pulls a CUDA build)"
