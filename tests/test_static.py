"""Front-end files are vendored at pinned versions and nothing is loaded from a CDN."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_vendored_files_match_their_recorded_checksums():
    manifest = (ROOT / "static" / "vendor" / "VENDORED.md").read_text()
    rows = re.findall(r"^\| (\S+\.js) \| .+? \| (\S+) \| ([0-9a-f]{64}) \|$", manifest, flags=re.M)
    assert len(rows) >= 2
    for name, _version, digest in rows:
        assert hashlib.sha256((ROOT / "static" / "vendor" / name).read_bytes()).hexdigest() == digest, name


def test_no_template_or_script_loads_from_a_cdn():
    offenders = []
    for path in [*ROOT.joinpath("templates").rglob("*.html"), *ROOT.joinpath("static").rglob("*.js")]:
        if re.search(r"""(src|href)=["']https?://""", path.read_text(errors="ignore")):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_templates_have_no_inline_scripts_or_handlers():
    """The Content-Security-Policy forbids inline script; every script is a static file."""
    for path in ROOT.joinpath("templates").rglob("*.html"):
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path
        assert not re.search(r"\son[a-z]+=", text), path
