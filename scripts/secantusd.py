"""Runs the MongoDB-wire test server (SecantusDB) as `secantusd-py` does, with the same
arguments, except that a transaction left open by a killed client is aborted after
APS_MONGO_WIRE_TXN_LIFETIME seconds (default 5) instead of 60.

Why: a scheduler killed inside a multi-document transaction holds the documents that
transaction wrote until the server aborts it, and the cluster tests SIGKILL schedulers
and expect the others to take over within seconds. This is the setting docs/stores.md
recommends for a MongoDB that schedulers share (`transactionLifetimeLimitSeconds`);
SecantusDB 0.7.0b3 has no flag or parameter for it, only the server's constructor
argument, which this sets. Run it with the virtualenv's python:

    $VENV/bin/python scripts/secantusd.py --host 127.0.0.1 --port 27117 --storage-path :memory:
"""

import functools
import inspect
import os
import sys

from secantus import cli, server

# Another SecantusDB version may name these otherwise: replacing nothing would start a
# server with the 60 s limit and no word of it.
if not hasattr(cli, "SecantusDBServer") or "transaction_lifetime_seconds" not in (
    inspect.signature(server.SecantusDBServer).parameters
):
    sys.exit(
        "scripts/secantusd.py: this SecantusDB has no cli.SecantusDBServer taking "
        "transaction_lifetime_seconds; the launcher needs updating for it"
    )
lifetime = float(os.environ.get("APS_MONGO_WIRE_TXN_LIFETIME", "5"))
cli.SecantusDBServer = functools.partial(
    server.SecantusDBServer, transaction_lifetime_seconds=lifetime
)
sys.exit(cli.main())
