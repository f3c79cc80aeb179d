"""The connection module: other bodies' case systems exchange cases with the national database.

A connected system is a registered client bound to one unit (`clients`), authenticated by the
certificate it presents at the TLS terminator (`certs`) and a short-lived token bound to it
(`tokens`, `gate`). It submits petitions and their results under its own ids (`submit`, with
`idempotency`), reads within its unit's scope (`read`), follows a change feed (`feed`), and every
message in and out is kept in a hash chain (`log`). Errors are RFC 9457 problem details (`problems`).
"""
