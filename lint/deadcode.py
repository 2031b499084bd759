"""`make lint`: vulture over the paths and with the whitelist of ``[tool.vulture]`` in pyproject.toml.

One change to how vulture counts: a name listed in a module's ``__all__`` is not, by that alone, used.
Plain vulture counts it as used, which is how exported functions that nothing called went unnoticed
(issue 8 of this project). Here a name is used only where code uses it.
"""

import sys

import vulture.core

# Fail loudly if a vulture release renames what is patched, rather than silently checking less.
assert hasattr(vulture.core, "_assigns_special_variable__all__"), "vulture changed: update lint/deadcode.py"
vulture.core._assigns_special_variable__all__ = lambda node: False

sys.exit(vulture.core.main())
