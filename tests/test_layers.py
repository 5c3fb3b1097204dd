"""The layers hold: every import-linter contract in `.importlinter` (docs/TEAM.md's module map) is kept.

A broken contract fails the suite, with import-linter's report (which import, which line) as the message."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_every_import_contract_is_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "import-linter is not installed (pip install -e '.[test]')"
    done = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    report = done.stdout[done.stdout.find("Contracts"):] + done.stderr
    assert done.returncode == 0, report
    assert "0 broken" in done.stdout and "BROKEN" not in done.stdout, report


def test_a_broken_contract_fails(tmp_path):
    """The check itself works: a config whose rule the code breaks is reported broken (exit 1)."""
    config = tmp_path / "broken.importlinter"
    config.write_text((ROOT / ".importlinter").read_text() + """
[importlinter:contract:no-json]
name = nothing imports json (false, on purpose)
type = forbidden
source_modules =
    companion
forbidden_modules =
    json
""")
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    done = subprocess.run([lint, "--no-cache", str(config)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "nothing imports json (false, on purpose) BROKEN" in done.stdout.replace("\n", " ")
