#!/usr/bin/env python3
# A systemd notify socket, as systemd gives one to a Type=notify service (Node.js has no AF_UNIX
# datagram sockets): binds PATH, prints each datagram as a JSON line with its arrival time.
import json, os, socket, sys, time

path = sys.argv[1]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
os.chmod(path, 0o777)
print(json.dumps({"bound": path}), flush=True)
while True:
    data = sock.recv(65536)
    print(json.dumps({"at": time.time(), "message": data.decode("utf-8", "replace")}), flush=True)
