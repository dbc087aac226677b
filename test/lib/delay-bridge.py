#!/usr/bin/env python3
"""A two-port Ethernet bridge in user space that holds the frames from B to A for DELAY_MS: a link
with a known round trip where the kernel has no netem (tc's sch_netem is a module some kernels
lack). Run it in a namespace holding both ports, with no addresses on them:

    delay-bridge.py DEV_A DEV_B DELAY_MS

Prints "ready" once both ports are open. Frames the bridge itself sends are not taken back."""
import collections
import socket
import sys
import threading
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def port(dev):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((dev, 0))
    return s


def forward(src, dst, delay):
    pending = collections.deque()
    ready = threading.Condition()

    def sender():
        while True:
            with ready:
                while not pending:
                    ready.wait()
                due, frame = pending.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                dst.send(frame)
            except OSError:
                pass  # a frame the other port cannot take (too large): dropped, as a switch would

    threading.Thread(target=sender, daemon=True).start()
    while True:
        frame, addr = src.recvfrom(65535)
        if addr[2] == PACKET_OUTGOING:
            continue
        with ready:
            pending.append((time.monotonic() + delay, frame))
            ready.notify()


def main():
    dev_a, dev_b, delay_ms = sys.argv[1], sys.argv[2], float(sys.argv[3])
    a, b = port(dev_a), port(dev_b)
    threading.Thread(target=forward, args=(a, b, 0.0), daemon=True).start()
    threading.Thread(target=forward, args=(b, a, delay_ms / 1000), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
