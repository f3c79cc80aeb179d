"""`python -m core_app.cli`, the same as `kntc`."""

from core_app.cli import main

main()
