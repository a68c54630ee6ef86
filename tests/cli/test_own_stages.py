"""A `stages` folder of the user's (in the working folder, or on PYTHONPATH) is refused before it can run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _user_stages(root: Path) -> Path:
    """A `stages` package that leaves a marker file behind if it is ever imported."""
    package = root / "stages"
    package.mkdir()
    (package / "__init__.py").write_text(f"open({str(root / 'MARKER')!r}, 'w').write('ran')\n")
    return package


def _rrhf(cwd: Path, pythonpath: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    return subprocess.run([sys.executable, "-m", "rrhf_cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("where", ["working folder", "PYTHONPATH"])
def test_a_user_stages_package_is_refused_unrun(tmp_path, where):
    package = _user_stages(tmp_path)
    data = tmp_path / "f.jsonl"
    data.write_text('{"prompt": "a"}\n')
    if where == "working folder":
        result = _rrhf(tmp_path, str(REPO), "inspect", str(data))
    else:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        result = _rrhf(elsewhere, f"{tmp_path}{os.pathsep}{REPO}", "inspect", str(data))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and str(package) in lines[0] and str(REPO / "stages") in lines[0], result.stderr
    assert not (tmp_path / "MARKER").exists()


def test_rrhf_own_stages_is_accepted(tmp_path):
    data = tmp_path / "f.jsonl"
    data.write_text('{"prompt": "a"}\n')
    (tmp_path / "stages").mkdir()  # a folder with no __init__.py is no package: rrhf's own still wins
    result = _rrhf(tmp_path, str(REPO), "inspect", str(data), "--json")
    assert result.returncode == 0, result.stderr
