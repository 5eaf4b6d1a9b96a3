"""Unit tests of envsense.py, run by the examples package's Go tests with
the chute image's own python3 (python3 -m unittest test_envsense)."""

import json
import os
import tempfile
import time
import unittest

import envsense


class ClockTest(unittest.TestCase):
    def test_offset_is_the_least_delayed_report(self):
        c = envsense.Clock()
        now = 1000.0
        # The sensor is 30 s ahead; delays of 5 to 200 ms.
        for i, delay in enumerate([0.2, 0.05, 0.1, 0.005, 0.15]):
            t = c.correct(now + i + 30, now + i + delay)
            self.assertLess(abs(t - (now + i)), 0.25)
        self.assertAlmostEqual(c.offset(), 30 - 0.005, places=6)

    def test_jump_restarts_the_estimate(self):
        c = envsense.Clock()
        for i in range(10):
            c.correct(100 + i + 30, 100 + i + 0.01)
        # The sensor reboots with its clock right.
        t = c.correct(200, 200.01)
        self.assertAlmostEqual(t, 200.01, places=6)
        self.assertAlmostEqual(c.offset(), -0.01, places=6)


class ServiceTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.store = envsense.Store(os.path.join(self.dir.name, "r.db"))
        self.service = envsense.Service(self.store)

    def tearDown(self):
        self.store.db.close()
        self.dir.cleanup()

    def report(self, **kw):
        msg = {"sensor": "s1", "seq": 1, "time": time.time(), "temp": 21.5, "hum": 40.0}
        msg.update(kw)
        return self.service.receive(json.dumps(msg).encode(), ("198.51.100.11", 1), time.time())

    def test_rejects_what_is_not_a_reading(self):
        cases = [
            (b"\xff\x00", "not JSON"),
            (b'{"sensor":', "not JSON"),
            (b"[1,2]", "not an object"),
            (b"A" * 600, "too large"),
        ]
        for data, reason in cases:
            self.assertEqual(self.service.receive(data, ("x", 1), time.time()), reason, data)
        for kw, reason in [
            ({"sensor": "../etc/passwd"}, "bad sensor id"),
            ({"sensor": 7}, "bad sensor id"),
            ({"sensor": "x" * 33}, "bad sensor id"),
            ({"temp": "hot"}, "bad temp"),
            ({"temp": 1e308}, "bad temp"),
            ({"temp": True}, "bad temp"),
            ({"hum": -1}, "bad hum"),
            ({"time": -5}, "bad time"),
            ({"seq": 1.5}, "bad seq"),
            ({"seq": -1}, "bad seq"),
        ]:
            self.assertEqual(self.report(**kw), reason, kw)
        self.assertEqual(self.service.accepted, 0)
        self.assertEqual(sum(self.service.rejected.values()), 14)
        self.assertEqual(self.store.sensors(), {})
        # NaN is not JSON by the standard, but Python's parser takes it.
        self.assertEqual(self.service.receive(b'{"sensor":"s1","seq":1,"time":NaN,"temp":20,"hum":40}',
                                              ("x", 1), time.time()), "bad time")

    def test_bounds_the_number_of_sensors(self):
        for i in range(envsense.MAX_SENSORS):
            self.assertIsNone(self.report(sensor="s%d" % i))
        self.assertEqual(self.report(sensor="one-too-many"), "too many sensors")
        self.assertIsNone(self.report(sensor="s0"))

    def test_stale(self):
        self.assertIsNone(self.report())
        st = self.service.status(time.time() + envsense.STALE_AFTER + 1)
        self.assertTrue(st["sensors"][0]["stale"])
        st = self.service.status(time.time())
        self.assertFalse(st["sensors"][0]["stale"])

    def test_prune_keeps_the_newest(self):
        old = envsense.MAX_ROWS
        envsense.MAX_ROWS = 5
        try:
            for i in range(8):
                self.report(seq=i)
            self.store.prune(time.time())
            self.assertEqual([r["seq"] for r in self.store.readings("s1", 0, 100)], [3, 4, 5, 6, 7])
        finally:
            envsense.MAX_ROWS = old


if __name__ == "__main__":
    unittest.main()
