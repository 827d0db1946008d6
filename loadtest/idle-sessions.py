#!/usr/bin/env python3
"""Holds COUNT idle SMTP sessions open against ADDR (for loadtest/gate-bench.sh).

Opens the connections (at most --window connecting at once), waits until each has its whole
220 greeting, then prints `ready COUNT` and, once all are held, times one more session's
EHLO round trip (`probe_ms MS`), and holds every session until standard input closes. Exits 1
when fewer than COUNT sessions were greeted with a 220 (each failure counted by reason on
stderr). Python 3 standard library only.
"""

import argparse
import collections
import errno
import resource
import selectors
import socket
import sys
import time


def parse_addr(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard == resource.RLIM_INFINITY else min(hard, max(soft, want))
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def read_reply(sock, deadline):
    """Reads one whole SMTP reply (blocking, until deadline); returns its bytes."""
    data = b""
    while True:
        lines = data.split(b"\r\n")
        for line in lines[:-1]:
            if len(line) >= 4 and line[3:4] == b" " or len(line) == 3:
                return data
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no whole reply: %r" % data)
        sock.settimeout(left)
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed after %r" % data)
        data += chunk


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--addr", required=True, help="HOST:PORT of the SMTP server")
    ap.add_argument("--count", type=int, required=True, help="sessions to hold")
    ap.add_argument("--window", type=int, default=256, help="connections in progress at once")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to get them all")
    args = ap.parse_args()
    addr = parse_addr(args.addr)
    limit = raise_nofile(args.count + 64)
    if limit < args.count + 16:
        print("idle-sessions: the open-files limit %d is too low for %d sessions"
              % (limit, args.count), file=sys.stderr)
        return 1

    sel = selectors.DefaultSelector()
    pending = {}  # socket -> bytes of the greeting so far
    held = []
    failures = collections.Counter()
    started = 0
    deadline = time.monotonic() + args.timeout

    def start_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(addr)
        if err not in (0, errno.EINPROGRESS):
            failures["connect: " + errno.errorcode.get(err, str(err))] += 1
            s.close()
            return
        pending[s] = b""
        sel.register(s, selectors.EVENT_READ)

    while len(held) + sum(failures.values()) < args.count:
        if time.monotonic() > deadline:
            failures["timeout"] += args.count - len(held) - sum(failures.values())
            break
        while started < args.count and len(pending) < args.window:
            started += 1
            start_one()
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            try:
                chunk = s.recv(4096)
            except OSError as e:
                chunk = None
                failures["recv: " + (errno.errorcode.get(e.errno, str(e.errno)))] += 1
            if chunk == b"":
                failures["closed before the greeting"] += 1
            if not chunk:
                sel.unregister(s)
                del pending[s]
                s.close()
                continue
            pending[s] += chunk
            greeting = pending[s]
            if greeting.endswith(b"\r\n") and greeting.split(b"\r\n")[-2][3:4] != b"-":
                sel.unregister(s)
                del pending[s]
                if greeting.startswith(b"220"):
                    held.append(s)
                else:
                    failures["greeting " + greeting[:3].decode("ascii", "replace")] += 1
                    s.close()

    for reason, n in sorted(failures.items()):
        print("idle-sessions: %d failed: %s" % (n, reason), file=sys.stderr)
    print("ready %d" % len(held), flush=True)
    if len(held) < args.count:
        return 1

    # One active session beside the idle ones: its EHLO round trip.
    probe = socket.create_connection(addr, timeout=30)
    end = time.monotonic() + 30
    read_reply(probe, end)
    t0 = time.monotonic()
    probe.sendall(b"EHLO probe.example\r\n")
    read_reply(probe, end)
    probe_ms = (time.monotonic() - t0) * 1000
    probe.sendall(b"QUIT\r\n")
    probe.close()
    print("probe_ms %.3f" % probe_ms, flush=True)

    sys.stdin.read()  # hold until the caller closes our standard input
    for s in held:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
