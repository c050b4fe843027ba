"""MkDocs hooks for the docs site (mkdocs.yml: hooks).

The packages' docstrings cross-reference in Sphinx's style (``:class:`LocalRuntime```), which
Markdown shows as the literal role before the name; drop the role and keep the name as code.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|exc|data|obj|const):(?=<code>)")


def on_page_content(html: str, **_: Any) -> str:
    return ROLE.sub("", html)
