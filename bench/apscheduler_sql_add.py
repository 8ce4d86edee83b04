"""APScheduler 3.11 side of bench/sql-add-bench.sh: adding jobs to a running
BackgroundScheduler with a SQLAlchemyJobStore, through `add_job` (APScheduler has no
batch add), as `aps-sql-bench` does with apscheduler-rs.

Usage: python bench/apscheduler_sql_add.py SQLALCHEMY_URL [ADDS] [THREADS]
Prints one JSON object: add_ms (one thread, median of 3 rounds of ADDS adds) and
add_concurrent_ms (THREADS threads adding at once: wall time per add).
"""

import json
import os
import sys
import threading
import time

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler


def noop():
    pass


def main():
    url = sys.argv[1]
    adds = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    table = "bench_py_%d" % os.getpid()
    store = SQLAlchemyJobStore(url=url, tablename=table)
    scheduler = BackgroundScheduler(jobstores={"default": store})
    scheduler.start()
    rounds = []
    for r in range(3):
        start = time.perf_counter()
        for i in range(adds):
            scheduler.add_job(noop, "interval", hours=1, id="seq-%d-%d" % (r, i))
        rounds.append((time.perf_counter() - start) * 1e3 / adds)
    rounds.sort()

    def worker(t):
        for i in range(adds // threads):
            scheduler.add_job(noop, "interval", hours=1, id="conc-%d-%d" % (t, i))

    start = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    concurrent = (time.perf_counter() - start) * 1e3 / (adds // threads * threads)
    scheduler.remove_all_jobs()
    scheduler.shutdown()
    store.jobs_t.drop(store.engine)
    print(json.dumps({"add_ms": rounds[1], "add_rounds_ms": rounds,
                      "threads": threads, "add_concurrent_ms": concurrent}))


if __name__ == "__main__":
    main()
