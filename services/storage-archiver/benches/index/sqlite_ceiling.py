"""An independent check of SQLite's own insert rate on this machine, outside the archiver.

Inserts 200,000 ready rows of the archiver's SQLite record schema (version 2, same three indexes,
WAL, synchronous=FULL, one transaction per 1,000 rows) through Python's sqlite3 module, whose
executemany loop runs in C. Prints rows per second. `python3 sqlite_ceiling.py [path]`.
"""

import json
import os
import sqlite3
import sys
import tempfile
import time

SCHEMA = """
CREATE TABLE records (key INTEGER PRIMARY KEY, enqueued_ms INTEGER NOT NULL, device_id TEXT,
    module_id TEXT, message_id TEXT, correlation_id TEXT, content_type TEXT, content_encoding TEXT,
    properties TEXT NOT NULL, system TEXT NOT NULL, body TEXT, body_raw BLOB);
CREATE INDEX records_device ON records (device_id, enqueued_ms);
CREATE INDEX records_time ON records (enqueued_ms);
CREATE INDEX records_message ON records (message_id);
"""

BLOBS, RECORDS = 200, 1000


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()
    path = os.path.join(directory, "ceiling.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA cache_size=-65536")
    conn.executescript(SCHEMA)
    body = json.dumps({"deviceId": "turbine-1", "windSpeed": 12.33, "temperature": 21.0,
                       "status": "running", "rotorRpm": 950,
                       "note": "routine telemetry from the north field"})
    system = json.dumps({"message-id": "m-1", "iothub-connection-device-id": "turbine-1",
                         "content-type": "application/json", "content-encoding": "utf-8"})
    rows = [((b << 32) | i, 1795651200000 + (b * RECORDS + i) * 432, f"turbine-{(b * RECORDS + i) % 100}",
             None, f"m-{b * RECORDS + i}", None, "application/json", "utf-8", '{"level":"storage"}',
             system, body, None)
            for b in range(1, BLOBS + 1) for i in range(RECORDS)]
    started = time.perf_counter()
    for b in range(BLOBS):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (key) DO NOTHING",
                         rows[b * RECORDS:(b + 1) * RECORDS])
        conn.execute("COMMIT")
    print(f"{len(rows) / (time.perf_counter() - started):.0f} rows/s")


if __name__ == "__main__":
    main()
