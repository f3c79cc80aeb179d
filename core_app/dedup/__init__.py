"""Nationwide duplicate detection, search, the tamper-evident audit log, corrections, legacy import
and the synthetic national data set.

The duplicate rules themselves live in the database (kntc.dedup_match: rules in migration 0002,
the way to an address's neighbours in 0004), so that the API, the legacy import and any future
intake channel apply the same ones.
"""
