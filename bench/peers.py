"""
The origin and the proxies (moat, moat-guard, nginx, HAProxy, Caddy): each
one's configuration text, how it is started, how we know it is ready, and how
it is stopped. Every process is started in its own session in a directory of
the run's temp dir, and stopped by its pid (TERM, then KILL).
"""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import measure

SNI = "bench.localhost"
SMALL_BODY = ("moat bench " * 10)[:99] + "\n"  # 100 bytes
assert len(SMALL_BODY) == 100
IDLE = "300s"  # every idle/keep-alive timeout: far longer than any measurement


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nginx_common(d, name):
    """Lines every nginx instance here needs: root in a temp dir, foreground."""
    tmp = os.path.join(d, name + "-tmp")
    os.makedirs(tmp, exist_ok=True)
    temps = "\n".join("    %s_temp_path %s/%s;" % (t, tmp, t)
                      for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return """user root;
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid %(d)s/%(name)s.pid;
error_log %(d)s/%(name)s.log warn;
events {
    worker_connections 10000;
}
""" % {"d": d, "name": name}, temps


def origin_conf(d, port):
    head, temps = _nginx_common(d, "origin")
    return head + """http {
    access_log off;
%(temps)s
    keepalive_timeout %(idle)s;
    keepalive_requests 1000000;
    sendfile on;
    tcp_nopush on;
    server {
        listen 127.0.0.1:%(port)d backlog=4096;
        location = /small {
            default_type text/plain;
            return 200 "%(body)s";
        }
        location = /1m {
            root %(d)s/www;
            default_type application/octet-stream;
        }
    }
}
""" % {"temps": temps, "idle": IDLE, "port": port, "body": SMALL_BODY.replace("\n", "\\n"),
       "d": d}


def nginx_conf(d, port, origin, cert, key, probe_port):
    head, temps = _nginx_common(d, "nginx")
    return head + """http {
    access_log off;
%(temps)s
    keepalive_timeout %(idle)s;
    keepalive_requests 1000000;
    ssl_protocols TLSv1.3;
    ssl_certificate %(cert)s;
    ssl_certificate_key %(key)s;
    # TLS 1.3 resumes with session tickets, which are on by default.

    upstream origin {
        server 127.0.0.1:%(origin)d;
        keepalive 512;
        keepalive_requests 1000000;
        keepalive_timeout %(idle)s;
    }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    # Stream responses through one 64 KiB buffer instead of buffering them:
    # on this benchmark's machine that costs less CPU per GiB than the default.
    proxy_buffering off;
    proxy_buffer_size 64k;
    proxy_buffers 4 64k;

    server {
        listen 127.0.0.1:%(port)d ssl backlog=4096;
        server_name %(sni)s;
        location / {
            proxy_pass http://origin;
        }
    }
    # Used only by the short handshake check after run (b), never measured:
    # logs whether each connection's TLS session was reused ("r") or not (".").
    log_format reuse "$ssl_session_reused";
    server {
        listen 127.0.0.1:%(probe)d ssl;
        server_name %(sni)s;
        access_log %(d)s/nginx-probe.log reuse;
        location / {
            proxy_pass http://origin;
        }
    }
}
""" % {"temps": temps, "idle": IDLE, "cert": cert, "key": key, "origin": origin,
       "port": port, "sni": SNI, "probe": probe_port, "d": d}


def haproxy_conf(d, port, origin, pem):
    return """global
    nbthread 1
    maxconn 8000
    stats socket %(d)s/haproxy.sock mode 600 level admin
    ssl-default-bind-options ssl-min-ver TLSv1.3

defaults
    mode http
    timeout connect 5s
    timeout client %(idle)s
    timeout server %(idle)s
    timeout http-request 10s
    timeout http-keep-alive %(idle)s

frontend fe
    bind 127.0.0.1:%(port)d ssl crt %(pem)s
    default_backend origin

backend origin
    http-reuse always
    server origin 127.0.0.1:%(origin)d
""" % {"d": d, "idle": IDLE, "port": port, "pem": pem, "origin": origin}


def caddy_conf(d, port, origin, cert, key):
    return """{
	admin off
	auto_https off
	storage file_system %(d)s/caddy-data
	servers {
		protocols h1 h2
		timeouts {
			idle 5m
		}
	}
}

https://%(sni)s:%(port)d {
	bind 127.0.0.1
	tls %(cert)s %(key)s {
		protocols tls1.3
	}
	reverse_proxy 127.0.0.1:%(origin)d {
		transport http {
			keepalive 5m
			keepalive_idle_conns 512
			keepalive_idle_conns_per_host 512
		}
	}
}
""" % {"d": d, "sni": SNI, "port": port, "cert": cert, "key": key, "origin": origin}


def moat_conf(d, port, origin, cert, key):
    return """data: %(d)s/moat-data
listen: { http: off, https: "127.0.0.1:%(port)d" }
workers: 1
access_log: off
timeouts: { idle: 5m, upstream_idle: 5m }
sites:
  %(sni)s:
    to: http://127.0.0.1:%(origin)d
    tls: { cert: %(cert)s, key: %(key)s }
    hsts: false
""" % {"d": d, "port": port, "sni": SNI, "origin": origin, "cert": cert, "key": key}


# moat-guard: moat's configuration plus abuse control that never triggers in
# the benchmark but that every request still pays for, on top of the ban
# lookups and the connection count plain moat does too: the site's token
# bucket (a rate no run comes near), a path rule matched against every
# request, and a ban rule checked against every answer. Neither list holds
# 127.0.0.1, so the client is an ordinary untrusted address: never exempt,
# one bucket. (moat's default never_ban, which plain moat keeps, exempts it.)
GUARD_TOP = """trusted_proxies: [ 192.0.2.10 ]
never_ban: [ 198.51.100.0/24 ]
"""
GUARD_SITE = """    limit: 1000000/s burst 1000000
    path_limits:
      - { match: "POST /x/**", limit: "2/s" }
    ban:
      - { match: "POST /api/auth/login", status: [401, 403], after: 5 in 10m, for: 1h }
"""


def moat_guard_conf(d, port, origin, cert, key):
    return GUARD_TOP + moat_conf(d, port, origin, cert, key) + GUARD_SITE


class Server:
    """One started program: name, port, config text, pid tree."""

    def __init__(self, name, d, port, conf, conf_name, cmd, env=None, tls=True):
        self.name, self.dir, self.port, self.conf, self.tls = name, d, port, conf, tls
        self.conf_file = os.path.join(d, conf_name)
        with open(self.conf_file, "w") as f:
            f.write(conf)
        self.log_file = os.path.join(d, name + ".stderr")
        self.cmd = [c.replace("{conf}", self.conf_file) for c in cmd]
        self.extra = {}
        self.cafile = None
        with open(self.log_file, "w") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=d, env=dict(os.environ, **(env or {})),
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)

    def pids(self):
        self.check_alive()
        return measure.tree(self.proc.pid)

    def check_alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError("%s exited (%s); its output:\n%s" % (
                self.name, self.proc.returncode, self.log_tail()))

    def log_tail(self):
        with open(self.log_file, errors="replace") as f:
            return f.read()[-3000:]

    def get_small(self, timeout=2.0):
        """Status of GET /small, over TLS with SNI when the server speaks TLS."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            if self.tls:
                ctx = ssl.create_default_context(cafile=self.cafile)
                s = ctx.wrap_socket(s, server_hostname=SNI)
            s.sendall(b"GET /small HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                      % SNI.encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
        finally:
            s.close()

    def wait_ready(self, timeout=20.0):
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            self.check_alive()
            try:
                if self.get_small() == 200:
                    return
                last = "not 200"
            except OSError as e:
                last = e
            time.sleep(0.1)
        raise RuntimeError("%s not ready after %.0f s (%s); its output:\n%s" % (
            self.name, timeout, last, self.log_tail()))

    def stop(self):
        stop_process(self.proc)


def stop_process(proc):
    """TERM by pid, then KILL after 10 s."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def remove_work(work):
    """The run's temp dir goes, unless BENCH_KEEP=1 asks to keep it."""
    if os.environ.get("BENCH_KEEP") == "1":
        print("kept %s" % work)
    else:
        shutil.rmtree(work, ignore_errors=True)


def start_origin(d):
    port = free_port()
    os.makedirs(os.path.join(d, "www"), exist_ok=True)
    with open(os.path.join(d, "www", "1m"), "wb") as f:
        f.write(os.urandom(1 << 20))
    s = Server("origin", d, port, origin_conf(d, port), "origin.conf",
               ["nginx", "-p", d + "/", "-e", d + "/origin.log", "-c", "{conf}"], tls=False)
    return s


def start_proxy(name, d, origin_port, cert, key, moat_bin):
    """Start proxy `name` on a fresh port in directory d (created)."""
    os.makedirs(d, exist_ok=True)
    port = free_port()
    if name == "nginx":
        probe = free_port()
        s = Server(name, d, port, nginx_conf(d, port, origin_port, cert, key, probe),
                   "nginx.conf",
                   ["nginx", "-p", d + "/", "-e", d + "/nginx.log", "-c", "{conf}"])
        s.extra["probe_port"] = probe
        s.extra["probe_log"] = os.path.join(d, "nginx-probe.log")
    elif name == "haproxy":
        pem = os.path.join(d, "haproxy.pem")
        with open(pem, "w") as out, open(cert) as c, open(key) as k:
            out.write(c.read() + k.read())
        s = Server(name, d, port, haproxy_conf(d, port, origin_port, pem), "haproxy.cfg",
                   ["haproxy", "-db", "-f", "{conf}"])
        s.extra["stats_socket"] = os.path.join(d, "haproxy.sock")
    elif name == "caddy":
        s = Server(name, d, port, caddy_conf(d, port, origin_port, cert, key), "Caddyfile",
                   ["caddy", "run", "--config", "{conf}", "--adapter", "caddyfile"],
                   env={"GOMAXPROCS": "1", "HOME": d, "XDG_DATA_HOME": d + "/xdg-data",
                        "XDG_CONFIG_HOME": d + "/xdg-config"})
    elif name in ("moat", "moat-guard"):
        conf = (moat_conf if name == "moat" else moat_guard_conf)(d, port, origin_port,
                                                                   cert, key)
        s = Server(name, d, port, conf, "moat.yaml", [moat_bin, "run", "-c", "{conf}"])
    else:
        raise ValueError("unknown proxy %r" % name)
    s.cafile = cert
    return s
