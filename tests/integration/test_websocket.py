"""WebSockets through moat: a python3-websockets client speaks wss:// to moat,
moat forwards the upgrade to a python3-websockets upstream.  Text and binary
both ways (up to 1 MiB), a server-initiated message, the upgrade headers and
X-Forwarded-For at the upstream, and closing from either side."""

import asyncio
import os
import ssl

import moatlib as M
from peers import WSUpstream, wait_for

import websockets  # Debian python3-websockets 10.4

HOST = "ws.test"
WAIT = 30


class WebSocket(M.MoatTestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = WSUpstream()
        cls.addClassCleanup(cls.up.stop)
        cls.moat_ = M.Moat(cls)
        cls.moat_.start(cls.moat_.config({HOST: M.site(cls.up.url)}))
        cls.ctx = ssl.create_default_context(cafile=cls.moat_.ca)

    def tearDown(self):
        self.assertEqual(self.up.errors, [], "websocket upstream errors")

    def connect(self, path="/chat"):
        return websockets.connect(
            "wss://%s:%d%s" % (HOST, self.moat_.https_port, path),
            ssl=self.ctx, server_hostname=HOST, host="127.0.0.1",
            port=self.moat_.https_port, max_size=8 << 20, open_timeout=WAIT,
            close_timeout=WAIT)

    def run_async(self, coro):
        return asyncio.run(asyncio.wait_for(coro, 120))

    def test_messages_and_client_close(self):
        n_before = len(self.up.closes)
        big_bin = os.urandom(1 << 20)
        big_text = ("0123456789abcdef" * (1 << 16))  # 1 MiB of text

        async def go():
            async with self.connect("/chat?room=1") as ws:
                greeting = await asyncio.wait_for(ws.recv(), WAIT)
                self.assertEqual(greeting, WSUpstream.GREETING)
                for msg in ("hello", "h\u00e9llo \u2603", b"\x00\x01\xff binary",
                            os.urandom(70000), big_text, big_bin):
                    await ws.send(msg)
                    echo = await asyncio.wait_for(ws.recv(), WAIT)
                    self.assertEqual(type(echo), type(msg))
                    self.assertTrue(echo == msg, "echo of a %d-byte %s message differs"
                                    % (len(msg), type(msg).__name__))
                await ws.close(1000, "client done")
                return ws.close_code

        code = self.run_async(go())
        self.assertEqual(code, 1000)
        # Connections of other tests may record their closes late, so look
        # for this connection's close among everything recorded since.
        wait_for(lambda: (1000, "client done") in self.up.closes[n_before:], WAIT,
                 what="upstream to see the client's close frame (1000, 'client done')")

        h = self.up.headers[-1]
        self.assertEqual(h.get("Upgrade", "").lower(), "websocket")
        self.assertIn("upgrade", [t.strip().lower() for t in h.get("Connection", "").split(",")])
        self.assertEqual(h.get("X-Forwarded-For"), "127.0.0.1")
        self.assertEqual(h.get("X-Forwarded-Proto"), "https")
        self.assertEqual(h.get("Host"), "%s:%d" % (HOST, self.moat_.https_port))
        self.assertEqual(self.up.paths[-1], "/chat?room=1")

    def test_server_close(self):
        async def go():
            async with self.connect() as ws:
                self.assertEqual(await asyncio.wait_for(ws.recv(), WAIT), WSUpstream.GREETING)
                await ws.send("ping me back")
                self.assertEqual(await asyncio.wait_for(ws.recv(), WAIT), "ping me back")
                await ws.send("close-me")
                with self.assertRaises(websockets.exceptions.ConnectionClosed) as cm:
                    await asyncio.wait_for(ws.recv(), WAIT)
                return cm.exception

        exc = self.run_async(go())
        self.assertEqual(exc.rcvd.code if exc.rcvd else None, 4001,
                         "client did not get the upstream's close frame: %r" % exc)
        self.assertEqual(exc.rcvd.reason, "upstream says bye")

    def test_many_in_parallel(self):
        """Several upgraded connections at once; each gets only its own bytes."""
        async def one(i):
            async with self.connect("/p%d" % i) as ws:
                self.assertEqual(await asyncio.wait_for(ws.recv(), WAIT), WSUpstream.GREETING)
                for j in range(20):
                    msg = ("conn %d msg %d " % (i, j)) * (j + 1)
                    await ws.send(msg)
                    self.assertEqual(await asyncio.wait_for(ws.recv(), WAIT), msg)

        async def go():
            await asyncio.gather(*(one(i) for i in range(10)))

        self.run_async(go())


if __name__ == "__main__":
    M.main()
