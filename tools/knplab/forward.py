"""Makes the lab API server reachable from the machine's own namespace without touching its
network configuration: listens on 127.0.0.1 (an ephemeral port) there, and each connection's
thread moves itself into the hub namespace (setns is per thread) before it connects to the
API server on the segment. TLS passes through untouched (the server certificate names 127.0.0.1).

Usage: python3 -m knplab.forward --lab NAME   (writes the port to /run/knplab/NAME/forward.port)
"""
import argparse
import os
import socket
import threading

from . import topology as topo
from .sys_ns import enter


def pump(src, dst):
    try:
        while True:
            d = src.recv(65536)
            if not d:
                break
            dst.sendall(d)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client, hub):
    try:
        enter(hub)
        upstream = socket.create_connection((topo.HUB4, topo.API_PORT), timeout=10)
        upstream.settimeout(None)
    except OSError:
        client.close()
        return
    t = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    t.start()
    pump(client, upstream)
    t.join()
    client.close()
    upstream.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lab", required=True)
    lab = topo.Lab(ap.parse_args().lab)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    with open(lab.path("forward.port.tmp"), "w") as f:
        f.write(str(s.getsockname()[1]))
    os.replace(lab.path("forward.port.tmp"), lab.path("forward.port"))
    s.settimeout(2.0)
    while os.path.exists(f"/run/netns/{lab.hub}"):  # gone with its lab, even if nobody stops it
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        c.settimeout(None)
        threading.Thread(target=serve, args=(c, lab.hub), daemon=True).start()


if __name__ == "__main__":
    main()
