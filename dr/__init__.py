"""Backup, restore and disaster-recovery automation for the KNTC platform.

`dr` acts on PostgreSQL and pgBackRest directly; it never imports `core_app`. Every operator
action is one `kntc-dr` command, one runbook section (runbooks/restore.md, runbooks/dr-pitr.md)
and one test (tests/dr/), and the tests execute the runbooks' commands.
"""
