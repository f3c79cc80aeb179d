"""Load tests and capacity planning for the KNTC case service.

This package speaks HTTP to the service, as its users do, and runs the operator's own
commands (`kntc ...`) to prepare a database; it never imports `core_app`.
"""
