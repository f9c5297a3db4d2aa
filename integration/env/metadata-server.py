#!/usr/bin/env python3
"""Fake cloud instance-metadata server for the spot probe's integration tests.

Usage: metadata-server.py PORT MODE_FILE [SILENT_UDP_PORT]

Serves the termination-notice endpoints of Alibaba, AWS (IMDSv2), Azure, GCP and Tencent on
0.0.0.0:PORT (run it inside a network namespace the test made, with 100.100.100.200,
169.254.169.254 and 169.254.0.23 on lo). The answer depends on the word in MODE_FILE, read
on every request so one server covers every scenario:

  404     every notice endpoint answers 404 (no notice)
  empty   Azure: no events; GCP: FALSE; others: 404
  notice  a termination notice for 2026-11-27T09:30:00Z (GCP: TRUE)
  garbage a 200 answer that does not parse
  slow    the notice endpoints answer only after 30 s

Required headers are enforced like the real services do (IMDSv2 token, Metadata: true,
Metadata-Flavor: Google), so a passing test proves the client sends them. Every request
is appended to MODE_FILE.log. With SILENT_UDP_PORT, a UDP socket is bound there that never
answers (a hung DNS server). Prints "ready" on stdout once listening.
"""

import http.server
import json
import socket
import socketserver
import sys
import time

TOKEN = "nodeprobe-it-token"
VM_NAME = "nodeprobe-it-vm"
WHEN = "2026-11-27T09:30:00Z"


def mode(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "404"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        with open(self.server.mode_file + ".log", "a") as f:
            f.write("%s %s\n" % (self.command, self.path))

    def reply(self, status, body=b"", ctype="text/plain"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        if self.path != "/latest/api/token":
            return self.reply(404)
        if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.reply(400, "missing ttl header")
        self.reply(200, TOKEN)

    def do_GET(self):
        m = mode(self.server.mode_file)
        p = self.path
        if p == "/latest/meta-data/instance/spot/terminationtime":
            bodies = {"notice": WHEN, "garbage": "tomorrow-ish"}
        elif p == "/latest/meta-data/spot/termination-time":
            # Tencent: local time UTC+8.
            bodies = {"notice": "2026-11-27 17:30:00", "garbage": "2026-13-45 99:00:00"}
        elif p == "/latest/meta-data/spot/instance-action":
            if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
                return self.reply(401)
            bodies = {
                "notice": json.dumps({"action": "terminate", "time": WHEN}),
                "garbage": "{not json",
            }
        elif p.startswith("/metadata/scheduledevents"):
            if self.headers.get("Metadata") != "true" or "api-version=" not in p:
                return self.reply(400, "Bad request")
            event = {
                "EventId": "nodeprobe-it",
                "EventType": "Preempt",
                "ResourceType": "VirtualMachine",
                "Resources": [VM_NAME],
                "EventStatus": "Scheduled",
                "NotBefore": "Fri, 27 Nov 2026 09:30:00 GMT",
            }
            other = dict(event, Resources=["another-vm"], NotBefore="Fri, 27 Nov 2026 08:00:00 GMT")
            bodies = {
                "empty": json.dumps({"DocumentIncarnation": 1, "Events": []}),
                "notice": json.dumps({"DocumentIncarnation": 2, "Events": [other, event]}),
                "garbage": "<html>maintenance</html>",
            }
        elif p.startswith("/metadata/instance/compute/name"):
            if self.headers.get("Metadata") != "true":
                return self.reply(400, "Bad request")
            return self.reply(200, VM_NAME)
        elif p == "/computeMetadata/v1/instance/preempted":
            if self.headers.get("Metadata-Flavor") != "Google":
                return self.reply(403, "Missing Metadata-Flavor:Google header")
            bodies = {"empty": "FALSE", "notice": "TRUE", "garbage": "MAYBE"}
        else:
            return self.reply(404)
        if m == "slow":
            time.sleep(30)
            return self.reply(404)
        if m in bodies:
            ctype = "application/json" if bodies[m].startswith("{") else "text/plain"
            return self.reply(200, bodies[m], ctype)
        self.reply(404, "Not Found")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    port, mode_file = int(sys.argv[1]), sys.argv[2]
    srv = Server(("0.0.0.0", port), Handler)
    srv.mode_file = mode_file
    if len(sys.argv) > 3:
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("0.0.0.0", int(sys.argv[3])))
        srv.silent = silent  # keep it open, never read
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
