"""A pod's "container": serves every declared port, TCP and SCTP (accept, close) and UDP (echo),
on IPv4 and IPv6. SCTP only where the kernel has SCTP sockets (not here: CONFIG_IP_SCTP is off).
Run inside the pod's namespace by the agent.

Usage: python3 -m knplab.server [--tcp P,P...] [--udp P,P...] [--sctp P,P...]
"""
import argparse
import signal
import socket
import sys
import threading


def tcp(family, port, proto=0):
    s = socket.socket(family, socket.SOCK_STREAM, proto)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    s.listen(1024)

    def loop():
        while True:
            c, _ = s.accept()
            c.close()  # the handshake is the answer

    threading.Thread(target=loop, daemon=True).start()


IP_PKTINFO = 8  # Linux; not in Python's socket module


def udp(family, port):
    """Echoes each datagram from the address it was sent to (a host with several addresses,
    like the hub's "outside world", would otherwise answer from its primary one, and a
    connected client ignores that)."""
    s = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        level, kind = socket.IPPROTO_IPV6, socket.IPV6_PKTINFO
    else:
        s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        level, kind = socket.IPPROTO_IP, IP_PKTINFO
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))

    def loop():
        while True:
            d, anc, _, peer = s.recvmsg(2048, socket.CMSG_SPACE(20))
            reply = []
            for lvl, typ, data in anc:
                if (lvl, typ) == (level, kind) and family == socket.AF_INET6:
                    reply = [(level, kind, data[:16] + bytes(4))]  # in6_pktinfo: the address, any interface
                elif (lvl, typ) == (level, kind):
                    reply = [(level, kind, bytes(4) + data[8:12] + bytes(4))]  # in_pktinfo: spec_dst = addr
            s.sendmsg([d], reply, 0, peer)

    threading.Thread(target=loop, daemon=True).start()


def ports(text):
    return sorted({int(p) for p in text.split(",") if p}) if text else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tcp", default="")
    ap.add_argument("--udp", default="")
    ap.add_argument("--sctp", default="", help="served where the kernel has SCTP sockets, else skipped")
    a = ap.parse_args()
    for port in ports(a.tcp):
        for fam in (socket.AF_INET, socket.AF_INET6):
            tcp(fam, port)
    for port in ports(a.udp):
        for fam in (socket.AF_INET, socket.AF_INET6):
            udp(fam, port)
    sctp = ports(a.sctp)
    try:
        for port in sctp:
            for fam in (socket.AF_INET, socket.AF_INET6):
                tcp(fam, port, socket.IPPROTO_SCTP)
    except OSError as e:  # CONFIG_IP_SCTP off: nothing to serve them with
        print(f"sctp ports {a.sctp} not served: {e}", flush=True)
        sctp = []
    print(f"serving tcp={a.tcp or '-'} udp={a.udp or '-'} sctp={','.join(map(str, sctp)) or '-'}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    sys.exit(0)


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
