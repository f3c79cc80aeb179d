"""Adversarial tests: each performs an attack as one actor of `runbooks/security.md` would.

The shared fixtures (a migrated database, the real server, officers logged in) come from
`tests/conftest.py`; a module that needs more keeps its fixtures to itself.
"""
