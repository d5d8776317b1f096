#!/usr/bin/env python3
"""Records a libvirt RPC session for the unit tests.

Listens on unix socket LISTEN, forwards each connection to the daemon's
socket DAEMON, and writes every whole message, in the order it passed, to
OUT as one line: "C <hex>" (client to daemon) or "S <hex>" (daemon to
client), the hex covering the length word, header and payload. Lines
starting with '#' are comments. Stops after the first connection ends.

Usage: capture.py LISTEN DAEMON OUT
"""
import os
import selectors
import socket
import sys


def main():
    listen, daemon, out = sys.argv[1:4]
    if os.path.exists(listen):
        os.unlink(listen)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(listen)
    srv.listen(1)
    cli, _ = srv.accept()
    up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    up.connect(daemon)
    bufs = {cli: b"", up: b""}
    peer = {cli: up, up: cli}
    tag = {cli: "C", up: "S"}
    sel = selectors.DefaultSelector()
    sel.register(cli, selectors.EVENT_READ)
    sel.register(up, selectors.EVENT_READ)
    with open(out, "w") as f:
        f.write("# libvirt RPC session recorded by capture.py\n")
        open_ends = 2
        while open_ends:
            for key, _ in sel.select():
                s = key.fileobj
                data = s.recv(65536)
                if not data:
                    sel.unregister(s)
                    open_ends -= 1
                    try:
                        peer[s].shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    continue
                peer[s].sendall(data)
                bufs[s] += data
                while len(bufs[s]) >= 4:
                    n = int.from_bytes(bufs[s][:4], "big")
                    if len(bufs[s]) < n:
                        break
                    f.write(tag[s] + " " + bufs[s][:n].hex() + "\n")
                    f.flush()
                    bufs[s] = bufs[s][n:]
    os.unlink(listen)


if __name__ == "__main__":
    main()
