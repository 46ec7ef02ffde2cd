"""Front-end files are vendored at pinned versions and nothing is loaded from a CDN."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "static" / "vendor"
PLOTLY_JS = VENDOR / "plotly-cartesian-4.1.1.min.js"
PLOTLY_CSS = VENDOR / "plotly-4.1.1.css"


def test_vendored_files_match_their_recorded_checksums():
    manifest = (ROOT / "static" / "vendor" / "VENDORED.md").read_text()
    rows = re.findall(r"^\| (\S+\.js) \| .+? \| (\S+) \| ([0-9a-f]{64}) \|$", manifest, flags=re.M)
    assert len(rows) >= 2
    for name, _version, digest in rows:
        assert hashlib.sha256((ROOT / "static" / "vendor" / name).read_bytes()).hexdigest() == digest, name


def test_no_template_or_script_loads_from_a_cdn():
    """Our templates and scripts (vendored libraries carry links such as Plotly's logo, which we switch off)."""
    own = [p for p in ROOT.joinpath("static").rglob("*.js") if "vendor" not in p.parts]
    offenders = []
    for path in [*ROOT.joinpath("templates").rglob("*.html"), *own]:
        if re.search(r"""(src|href)=["']https?://""", path.read_text(errors="ignore")):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_templates_have_no_inline_scripts_or_handlers():
    """The Content-Security-Policy forbids inline script; every script is a static file."""
    for path in ROOT.joinpath("templates").rglob("*.html"):
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path
        assert not re.search(r"\son[a-z]+=", text), path


def test_vendored_plotly_matches_the_python_package():
    """Figures are built by Python's plotly and drawn by the vendored plotly.js: the versions must agree."""
    from plotly.offline import get_plotlyjs_version

    assert (ROOT / "static" / "vendor" / f"plotly-cartesian-{get_plotlyjs_version()}.min.js").exists()


def plotly_global_css() -> str:
    """The global style rules plotly.js would inject as an inline <style> (which our CSP forbids), as a stylesheet.

    The page links it with id "plotly.js-style-global" and class "no-inline-styles": plotly.js then injects nothing.
    plotly.js inserts each rule at the top of its sheet, so the last rule wins ties: written here in reverse order.
    """
    bundle = PLOTLY_JS.read_text()
    start = bundle.index('{"X,X div":')
    body = bundle[start : bundle.index("};", start) + 1]
    string = r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
    pairs = re.findall(rf"(?:{string}|([A-Za-z_$][\w$]*)):{string}", body)
    assert "{" + ",".join(f"{q or bare}:{v}" for q, bare, v in pairs) + "}" == body, "plotly.js changed its rules"

    def text(literal: str) -> str:
        return json.loads('"' + literal[1:-1].replace('"', '\\"') + '"') if literal[0] == "'" else json.loads(literal)

    rules = []
    for quoted, bare, value in pairs:
        selector = text(quoted) if quoted else bare
        selector = re.sub("^,", " ,", selector).replace("X", ".js-plotly-plot .plotly").replace("Y", ".plotly-notifier")
        rules.append(f"{selector} {{{text(value)}}}")
    header = f"/* Generated from {PLOTLY_JS.name} by tests/test_static.py (python tests/test_static.py). */"
    return "\n".join([header, *reversed(rules)]) + "\n"


def test_plotly_stylesheet_is_generated_from_the_vendored_bundle():
    assert PLOTLY_CSS.read_text() == plotly_global_css(), "regenerate: python tests/test_static.py"


if __name__ == "__main__":
    PLOTLY_CSS.write_text(plotly_global_css())
    sys.stdout.write(f"wrote {PLOTLY_CSS}\n")
