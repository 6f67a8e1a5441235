"""Sphinx fixes for the book's site, found by its browser test (tests/integration/test_site.py).

Loaded from ``_config.yml`` (``sphinx.local_extensions``).  Two console errors on every page
of a stock jupyter-book 1.0 site, both from upstream packages:

* Inline scripts registered after the HTML builder starts (sphinx-thebe's ``const
  THEBE_JS_URL = ...``, sphinx-togglebutton's selector) are emitted twice under Sphinx 7.4, and
  the second ``const`` declaration throws "Identifier 'THEBE_JS_URL' has already been
  declared".  Each page's scripts are de-duplicated here.
* pydata-sphinx-theme logs "Got invalid theme mode" for a first-time visitor when its
  template variable ``default_mode`` is empty; it is set to ``auto`` (follow the reader's
  system setting).
"""

from __future__ import annotations


def _script_key(script) -> tuple:
    """Identity of a script, whether its inline body was registered with filename None or ''."""
    attributes = getattr(script, "attributes", {})
    return (str(getattr(script, "filename", script) or ""), *sorted(attributes.items()))


def fix_page(app, pagename, templatename, context, doctree) -> None:
    """Keep the first of identical ``<script>`` entries of a page; default to the auto mode."""
    context.setdefault("default_mode", "auto")
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", fix_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
