"""
ACME order rate: never more than 10 new orders a minute, whatever the
number of sites (acmed.c).

Twelve sites want a certificate at start. pebble answers at once, so
without the limit all twelve orders would be placed within seconds. With
it, ten are placed and installed, the other two wait, and moat's status
keeps serving them the internal CA's placeholder; they are placed once the
minute since the first order has passed. The check is a lower bound the
limit sets (the 11th order comes no sooner than 60 s after the 1st, by
pebble's own request log), not a speed.
"""

import datetime
import re

import acmelib as A
import moatlib as M

SITES = ["s%02d.example.test" % i for i in range(12)]


def order_times(pebble):
    """When pebble logged each POST to its newOrder path."""
    path = re.escape(pebble.path_of("newOrder"))
    return [datetime.datetime.strptime(t, "%Y/%m/%d %H:%M:%S")
            for t in re.findall(r"^Pebble (\S+ \S+) POST %s -> calling handler" % path,
                                pebble.log(), re.M)]


class OrderRate(M.MoatTestCase):
    def test_at_most_ten_orders_a_minute(self):
        env = A.AcmeEnv(self)
        up = self.upstream()
        m = env.start_moat({h: M.site(up, tls={"acme": "http"}) for h in SITES})

        def installed():
            return sum(1 for h in SITES if A.log_count(m, A.installed_rx(h)) > 0)
        M.wait_until(lambda: installed() >= 10, A.WAIT, "ten certificates")
        self.assertEqual(installed(), 10, "more than ten orders in the first minute:\n"
                         + m.stderr()[-4000:])
        self.assertEqual(len(order_times(env.pebble)), 10)
        waiting = [h for h in SITES if A.log_count(m, A.installed_rx(h)) == 0]
        for h in waiting:
            st = A.cert_status(m, h)
            self.assertTrue(st.get("placeholder"), st)
            self.assertFalse(st.get("last_error"), st)

        M.wait_until(lambda: installed() == 12, 120, "the last two certificates")
        times = order_times(env.pebble)
        self.assertEqual(len(times), 12, times)
        gap = (times[10] - times[0]).total_seconds()
        # pebble logs whole seconds: 59 allows for the rounding of both
        self.assertGreaterEqual(gap, 59, "the 11th order came %.0f s after the 1st" % gap)
        self.assertEqual(A.failures(m, SITES[0]), [])
        for h in SITES:
            A.assert_served_by_pebble(self, env, m, h)


if __name__ == "__main__":
    M.main()
