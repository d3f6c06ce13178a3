"""`pip install .` (not only an editable install) ships every file the hub reads: each
non-Python file of the package is matched by a package_data pattern in setup.cfg."""

from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cocalc_k8s"


def test_package_data_covers_every_data_file() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    patterns = config["options.package_data"]["cocalc_k8s"].split()
    shipped = {path for pattern in patterns for path in PACKAGE.glob(pattern)}
    data_files = {
        path
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    }
    missing = sorted(str(p.relative_to(PACKAGE)) for p in data_files - shipped)
    assert missing == [], f"not in setup.cfg's package_data: {missing}"
    assert any(p.name.startswith("codemirror-") for p in shipped)
