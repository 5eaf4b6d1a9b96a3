"""EnvSense: environment sensing on a ParaDrop gateway.

LAN sensors POST readings to /api/report, one JSON object each:
  {"sensor": "s1", "seq": 7, "time": 1733500000.25, "temp": 21.4, "hum": 45.0}
where time is the sensor's own clock (seconds since the epoch), which
drifts. Readings are validated, their timestamps corrected (each sensor's
clock offset is estimated from the reports' arrival times), stored in
SQLite under /data, and served as JSON and as a page with live charts.

Python's standard library only: this file runs unmodified on Debian's
python3, which the chute's image is built from.
"""

import collections
import json
import math
import os
import re
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DB_PATH = os.environ.get("ENVSENSE_DB", "/data/readings.db")
HTTP_PORT = int(os.environ.get("ENVSENSE_HTTP_PORT", "80"))
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "index.html")

MAX_REPORT = 512            # a reading is ~100 bytes
MAX_SENSORS = 64            # new sensor ids beyond this are rejected
MAX_ROWS = 150000           # ~12 MB: the database stays well inside the disk quota
RETENTION = 7 * 86400       # seconds of readings kept
STALE_AFTER = float(os.environ.get("ENVSENSE_STALE_AFTER", "15"))
WINDOW = 32                 # reports the clock offset is estimated over
CLOCK_JUMP = 5.0            # seconds: a larger change restarts the estimate
MAX_RESULTS = 2000          # readings per API answer
SENSOR_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class Clock:
    """Estimates one sensor's clock offset.

    A report stamped s by the sensor and received at r (our clock) gives
    r - s = delay - offset, delay >= 0. The smallest r - s over the last
    WINDOW reports is the one that waited least, so -min is the offset's
    best estimate; a window follows the clock's slow drift, and a step
    larger than CLOCK_JUMP (a sensor reset) starts afresh.
    """

    def __init__(self):
        self.samples = collections.deque(maxlen=WINDOW)

    def correct(self, sensor_time, received):
        d = received - sensor_time
        if self.samples and abs(d - min(self.samples)) > CLOCK_JUMP:
            self.samples.clear()
        self.samples.append(d)
        return sensor_time + min(self.samples)

    def offset(self):
        return -min(self.samples) if self.samples else None


class Store:
    """The readings database, shared by the HTTP server's threads."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS readings ("
            " sensor TEXT NOT NULL, seq INTEGER, t REAL NOT NULL,"
            " sensor_t REAL NOT NULL, received REAL NOT NULL,"
            " temp REAL NOT NULL, hum REAL NOT NULL)")
        self.db.execute("CREATE INDEX IF NOT EXISTS by_sensor ON readings (sensor, t)")
        self.db.commit()

    def add(self, sensor, seq, t, sensor_t, received, temp, hum):
        with self.lock:
            self.db.execute("INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (sensor, seq, t, sensor_t, received, temp, hum))
            self.db.commit()

    def readings(self, sensor, since, limit):
        with self.lock:
            rows = self.db.execute(
                "SELECT t, sensor_t, temp, hum, seq FROM readings"
                " WHERE sensor = ? AND t > ? ORDER BY t LIMIT ?",
                (sensor, since, limit)).fetchall()
        return [{"t": r[0], "sensor_t": r[1], "temp": r[2], "hum": r[3], "seq": r[4]} for r in rows]

    def sensors(self):
        """Every stored sensor's count and last reading, by id."""
        with self.lock:
            rows = self.db.execute(
                "SELECT sensor, COUNT(*), MAX(t), MAX(received) FROM readings GROUP BY sensor").fetchall()
            out = {}
            for sensor, count, last_t, last_received in rows:
                temp, hum = self.db.execute(
                    "SELECT temp, hum FROM readings WHERE sensor = ? ORDER BY t DESC LIMIT 1",
                    (sensor,)).fetchone()
                out[sensor] = {"count": count, "last_t": last_t, "last_received": last_received,
                               "temp": temp, "hum": hum}
        return out

    def prune(self, now):
        with self.lock:
            self.db.execute("DELETE FROM readings WHERE received < ?", (now - RETENTION,))
            self.db.execute(
                "DELETE FROM readings WHERE rowid IN (SELECT rowid FROM readings"
                " ORDER BY received DESC LIMIT -1 OFFSET ?)", (MAX_ROWS,))
            self.db.commit()


class Service:
    def __init__(self, store):
        self.store = store
        self.lock = threading.Lock()
        self.clocks = {}
        self.addrs = {}
        self.accepted = 0
        self.rejected = collections.Counter()
        self.known = set(store.sensors())

    def reject(self, reason):
        with self.lock:
            self.rejected[reason] += 1
        return reason

    def receive(self, data, addr, received):
        """Validates one report and stores its reading; returns why it was
        rejected, or None."""
        if len(data) > MAX_REPORT:
            return self.reject("too large")
        try:
            msg = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self.reject("not JSON")
        if not isinstance(msg, dict):
            return self.reject("not an object")
        sensor = msg.get("sensor")
        if not isinstance(sensor, str) or not SENSOR_ID.match(sensor):
            return self.reject("bad sensor id")
        values = []
        for key, low, high in (("time", 0, 1e11), ("temp", -60, 100), ("hum", 0, 100)):
            v = msg.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not low <= v <= high:
                return self.reject("bad " + key)
            values.append(float(v))
        seq = msg.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**53:
            return self.reject("bad seq")
        sensor_t, temp, hum = values
        with self.lock:
            if sensor not in self.known and len(self.known) >= MAX_SENSORS:
                self.rejected["too many sensors"] += 1
                return "too many sensors"
            self.known.add(sensor)
            clock = self.clocks.setdefault(sensor, Clock())
            t = clock.correct(sensor_t, received)
            self.addrs[sensor] = addr[0]
            self.accepted += 1
        self.store.add(sensor, seq, t, sensor_t, received, temp, hum)
        return None

    def status(self, now):
        stored = self.store.sensors()
        with self.lock:
            sensors = []
            for sensor in sorted(stored):
                s = stored[sensor]
                clock = self.clocks.get(sensor)
                sensors.append({
                    "id": sensor, "addr": self.addrs.get(sensor), "count": s["count"],
                    "last_t": s["last_t"], "temp": s["temp"], "hum": s["hum"],
                    "age": now - s["last_received"],
                    "stale": now - s["last_received"] > STALE_AFTER,
                    "offset": clock.offset() if clock else None,
                })
            return {"now": now, "stale_after": STALE_AFTER, "sensors": sensors,
                    "accepted": self.accepted, "rejected": sum(self.rejected.values()),
                    "rejected_by_reason": dict(self.rejected)}


def prune_forever(store):
    while True:
        try:
            store.prune(time.time())
        except sqlite3.Error as e:
            print("envsense: prune:", e, flush=True)
        time.sleep(60)


class Handler(BaseHTTPRequestHandler):
    service = None
    server_version = "EnvSense/1.0"
    timeout = 5  # a slow or stalled client cannot hold a thread longer

    def log_message(self, fmt, *args):
        pass  # a request log would fill the chute's log every 2 s per viewer

    def send(self, code, body, ctype="application/json"):
        if not isinstance(body, bytes):
            body = (json.dumps(body) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        if url.path == "/":
            with open(PAGE, "rb") as f:
                return self.send(200, f.read(), "text/html; charset=utf-8")
        if url.path == "/healthz":
            return self.send(200, {"ok": True, "python": sys.version})
        if url.path == "/api/sensors":
            return self.send(200, self.service.status(time.time()))
        if url.path == "/api/readings":
            return self.readings(q)
        self.send(404, {"error": "no such page: " + url.path})

    def do_POST(self):
        if urlsplit(self.path).path != "/api/report":
            return self.send(404, {"error": "no such page: " + self.path})
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.service.reject("no length")
            return self.send(411, {"error": "want a Content-Length"})
        if not 0 <= length <= MAX_REPORT:
            self.service.reject("too large")
            self.close_connection = True
            return self.send(413, {"error": "a report is at most %d bytes" % MAX_REPORT})
        data = self.rfile.read(length)
        try:
            reason = self.service.receive(data, self.client_address, time.time())
        except sqlite3.Error as e:
            print("envsense: store:", e, flush=True)
            reason = self.service.reject("store error")
            return self.send(503, {"error": reason})
        if reason:
            return self.send(400, {"error": reason})
        self.send(202, {"ok": True})

    def readings(self, q):
        sensor = q.get("sensor", [""])[0]
        if not SENSOR_ID.match(sensor):
            return self.send(400, {"error": "sensor: want an id of 1 to 32 letters, digits, '.', '_' or '-'"})
        try:
            since = float(q.get("since", ["0"])[0])
            limit = int(q.get("limit", [str(MAX_RESULTS)])[0])
        except ValueError:
            return self.send(400, {"error": "since: want seconds since the epoch; limit: want an integer"})
        if not math.isfinite(since) or not 1 <= limit <= MAX_RESULTS:
            return self.send(400, {"error": "since must be finite, limit 1 to %d" % MAX_RESULTS})
        if sensor not in self.service.known:
            return self.send(404, {"error": "no sensor " + sensor})
        self.send(200, {"sensor": sensor, "readings": self.service.store.readings(sensor, since, limit)})


def main():
    store = Store(DB_PATH)
    service = Service(store)
    Handler.service = service
    threading.Thread(target=prune_forever, args=(store,), daemon=True).start()
    server = ThreadingHTTPServer(("0.0.0.0", HTTP_PORT), Handler)
    server.daemon_threads = True
    print("envsense: python %s, %d sensors stored, HTTP %d" % (
        sys.version.split()[0], len(service.known), HTTP_PORT), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
