"""What every HTML report shares: one Jinja environment that escapes every value, the
stylesheet and script inlined, and a Content-Security-Policy that lets only those run.

A page opens offline (no network, nothing fetched at view time); the policy allows only the
page's own script and style, by hash, so an injected script would not run even if a value
escaped escaping.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

TEMPLATES = Path(__file__).parent / "templates"
STYLE = "report.css"
SCRIPT = "report.js"
# Rows of a long table laid out at once; the rest wait in a <template>, which the browser
# parses but does not lay out, and the script shows them a page at a time. An 80,000-row
# table laid out whole kept Chromium busy for over a minute; kept in a template, 4 s.
PAGE_ROWS = 200


def text(value: object) -> str:
    """A sort key and display form for a value that may be missing."""
    return "" if value is None else str(value)


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "–"


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def _static(name: str) -> str:
    source = (TEMPLATES / name).read_text(encoding="utf-8")
    # Inlined as is into <script>/<style>: a closing tag inside would end the element early.
    if "</" in source:
        raise ValueError(f"{name} must not contain '</'")
    return source


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every value is escaped, whatever the template's name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["thousands"] = lambda value: f"{value:,}" if isinstance(value, int) else ""
    environment.filters["short_hash"] = lambda value: text(value)[:12]
    environment.filters["percent"] = percent
    environment.globals["page_rows"] = PAGE_ROWS
    return environment


def render(template: str, **context: Any) -> str:
    """One self-contained page from a template of templates/, every value escaped by Jinja's
    autoescape; `style`, `script` and `csp` are given to the template."""
    script = _static(SCRIPT)
    style = _static(STYLE)
    csp = (
        "default-src 'none'; img-src data:; base-uri 'none'; form-action 'none'; "
        f"script-src {_csp_hash(script)}; style-src {_csp_hash(style)}"
    )
    return (
        _environment()
        .get_template(template)
        .render(script=Markup(script), style=Markup(style), csp=csp, **context)
    )
