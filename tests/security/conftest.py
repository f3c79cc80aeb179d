"""Adversarial tests: each performs an attack as one actor of `runbooks/security.md` would.

The shared fixtures (a migrated database, the real server, officers logged in) come from
`tests/conftest.py`; a module that needs more keeps its fixtures to itself.
"""

# The lab's fixtures (`lab`, `hosts`) for the infrastructure attacks (test_infra_*.py, marked lab).
from tests.infra.conftest import hosts, lab  # noqa: F401

# An officer logged in to the web pages (`web_officer`), for the attacks made through a page's form.
from tests.web.conftest import web_officer  # noqa: F401
