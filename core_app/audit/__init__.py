"""The tamper-evident audit trail: its hash chains recomputed outside the database (chain), their heads
signed with a key the database never holds (anchors), and the database objects that write it checked
against what this code expects (integrity). Operator commands: `kntc audit verify|anchor|keygen`
(core_app/cli/audit.py)."""
