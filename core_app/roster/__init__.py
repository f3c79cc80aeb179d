"""Rosters: creating a unit's accounts from a file (CSV or XLSX), all rows or none.

`format` reads a file into rows, `rows` checks each row on its own, `load` checks the rows against
the database and creates the accounts, `credentials` writes the one-time passwords for the importer.
The format is documented in runbooks/accounts.md and on the administrator's import page.
"""
