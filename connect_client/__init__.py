"""kntc-connect: the reference client of the KNTC exchange API, for another body's engineers.

It needs only httpx and the body's own certificate and key. `Connection` gets and renews the
certificate-bound token, sends writes with an Idempotency-Key that it keeps across retries, and
follows the change feed from a cursor saved after every item. See runbooks/connect-a-body.md.
"""

from connect_client.client import Connection, ExchangeError

__all__ = ["Connection", "ExchangeError"]
