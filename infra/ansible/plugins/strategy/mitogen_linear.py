"""Mitogen's linear strategy, loaded from the installed package rather than a path into the venv.

Ansible finds strategies by file in `strategy_plugins`; Mitogen documents pointing that setting at
its own folder inside site-packages, whose path changes with the Python version. This file gives
the strategy a fixed home in the repository.
"""

from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

__all__ = ["StrategyModule"]
