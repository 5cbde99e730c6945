"""Connections from inside a namespace, and the reachability matrix.

A probe runs in a thread that has moved itself into the source's namespace (setns is per
thread), so a whole matrix runs in parallel from one process with no `ip netns exec` per cell.
Outcomes: "ok" (TCP handshake, UDP echo), "refused" (RST / ICMP port unreachable: the packet
reached the pod, which does not serve that port), "timeout" (a silent drop: what a denial must
look like), or an errno name (e.g. EHOSTUNREACH: the lab is broken, never a verdict).
"""
import errno
import socket
import threading
import time

from .sys_ns import enter

REACHED = ("ok", "refused")

try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    HAVE_SCTP = True
except OSError:  # CONFIG_IP_SCTP off (this kernel): SCTP cells are skipped, not faked
    HAVE_SCTP = False


def _connect(proto, ip, port, timeout, bind):
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    kind, sp = {"TCP": (socket.SOCK_STREAM, 0), "UDP": (socket.SOCK_DGRAM, 0),
                "SCTP": (socket.SOCK_STREAM, socket.IPPROTO_SCTP)}[proto]
    s = socket.socket(fam, kind, sp)
    try:
        if bind:
            s.bind((bind, 0))
        if proto == "UDP":
            s.connect((ip, port))
            deadline = time.monotonic() + timeout
            sent = 0
            while True:
                # a second datagram halfway, in case the first met an unresolved neighbour
                if sent == 0 or (sent == 1 and deadline - time.monotonic() < timeout / 2):
                    s.send(b"knplab-probe")
                    sent += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    return "timeout"
                s.settimeout(min(left, timeout / 2) if sent == 1 else left)
                try:
                    if s.recv(2048) == b"knplab-probe":
                        return "ok"
                except socket.timeout:
                    continue
        s.settimeout(timeout)
        s.connect((ip, port))
        return "ok"
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
    finally:
        s.close()


def probe(ns, ip, proto, port, timeout=2.0, bind=None):
    """One probe from namespace `ns` (optionally from source address `bind`): (outcome, seconds)."""
    return probe_many([(ns, ip, proto, port, bind)], timeout)[0]


def probe_many(probes, timeout=2.0, parallel=96):
    """[(ns, ip, proto, port, bind)] -> [(outcome, seconds)] in the same order, run in parallel."""
    results = [None] * len(probes)
    gate = threading.Semaphore(parallel)

    def one(i, ns, ip, proto, port, bind):
        with gate:
            t0 = time.monotonic()
            try:
                enter(ns)
                results[i] = (_connect(proto, ip, port, timeout, bind), time.monotonic() - t0)
            except OSError as e:
                results[i] = (f"error: {e}", time.monotonic() - t0)

    threads = [threading.Thread(target=one, args=(i, *p)) for i, p in enumerate(probes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def cell(outcome):
    """A matrix cell as the Kubernetes e2e suite writes it: '.' reachable, 'X' not, '?' broken."""
    if outcome in REACHED:
        return "."
    return "X" if outcome == "timeout" else "?"


def render(names_from, names_to, cells):
    """The truth table in the e2e suite's layout (a '-' corner, '.' reachable, 'X' denied)."""
    first = max(len(n) for n in list(names_from) + ["-"])
    widths = [len(n) + 2 for n in names_to]
    lines = ["-".ljust(first) + "".join(n.rjust(w) for n, w in zip(names_to, widths))]
    for f in names_from:
        lines.append(f.ljust(first) + "".join(cells.get((f, t), " ").rjust(w) for t, w in zip(names_to, widths)))
    return "\n".join(lines)
