"""
Open N TLS keep-alive connections to 127.0.0.1:PORT, send one request on each
and read its response, then hold them all open and idle.

    /usr/bin/python3 bench/idleconns.py PORT N SNI CAFILE

The connections come from 127.0.0.2, 127.0.0.3, ... with PER_SOURCE on each:
moat caps the connections of one client address (256 by default), and a real
crowd of idle clients comes from many addresses.

Prints "ready N" once every connection has its response, then waits until its
standard input is closed (the driver reads the proxy's memory meanwhile) and
closes the connections. Exits non-zero if a connection fails.
"""

import asyncio
import resource
import ssl
import sys

PARALLEL = 50  # handshakes in flight at once; keeps the proxies' accept queues short
PER_SOURCE = 200  # connections per source address, under moat's default cap of 256


async def open_one(i, port, ctx, sni, sem):
    async with sem:
        src = "127.0.0.%d" % (2 + i // PER_SOURCE)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname=sni, local_addr=(src, 0))
        writer.write(b"GET /small HTTP/1.1\r\nHost: %s\r\n\r\n" % sni.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        if status != b"200":
            raise RuntimeError("status %s" % status.decode())
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        return reader, writer


async def main(port, n, sni, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    sem = asyncio.Semaphore(PARALLEL)
    conns = await asyncio.wait_for(
        asyncio.gather(*(open_one(i, port, ctx, sni, sem) for i in range(n))), 180)
    print("ready %d" % len(conns), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for _, writer in conns:
        writer.close()


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]))
