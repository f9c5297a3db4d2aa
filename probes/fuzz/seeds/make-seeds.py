#!/usr/bin/env python3
"""Write the seed corpus (seeds/<target>/) from the inputs the tests already use.

Run from probes/fuzz: python3 seeds/make-seeds.py CAPTURED_DIR
CAPTURED_DIR holds what was recorded once from real components (see seeds/README.md):
ping, version, err (raw dockerd replies), *.bin (DNS replies from the machine's resolver),
journal-*.journal (systemd-journal-remote output, shrunk with compact-journal.py).
Everything else is copied from the repository: rule files, and lines, records and answers
from the unit and integration tests.
"""
import glob
import hashlib
import json
import os
import shutil
import struct
import sys

CAP = sys.argv[1]
OUT = "seeds"
REPO = os.path.abspath("../..")


def put(target, data, name=None):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = name or hashlib.sha1(data).hexdigest()[:16]
    open(os.path.join(d, name), "wb").write(data)


# --- kernel log -------------------------------------------------------------------------
KMSG = [
    b"12,431,910784586,-;nodeprobe-it-28971: plain warning line\n",
    b"11,432,910784596,-;nodeprobe-it-28971: line with\\x5cx0a escaped newline and tab\\x09here\n",
    b"14,433,910785484,-;nodeprobe-it-28971: multi\\x0aline write\n",
    b"6,193,272342,-;acpi PNP0A08:00: _OSC: OS supports [...]\n SUBSYSTEM=acpi\n DEVICE=+acpi:PNP0A08:00\n",
    b"4,441,925896295,-; <TASK>\n",
    b"6,1,2,-,caller=T1;x\n",
    b"6,1,2,-;caf\\xc3\\xa9\n",
    b"3,689,3,-;INFO: task kworker/u8:1:123 blocked for more than 120 seconds.\n",
    b"4,2,0,-;[Firmware Bug]: TSC doesn't count with P0 frequency!\n",
    b"6,4,0,-;BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable\n",
    b"6,9,0,-;NX (Execute Disable) protection: active\n",
    b"garbage",
]
UID = "3f9c2a1e-7b4d-4e8a-9c1f-0123456789ab"
CID = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
US = UID.replace("-", "_")
OOM = [
    "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/burstable/podnodeprobe-it-29635/cnodeprobe-it29635,task_memcg=/kubepods/burstable/podnodeprobe-it-29635/cnodeprobe-it29635,task=python3,pid=29643,uid=0",
    f"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset={CID},mems_allowed=0,oom_memcg=/kubepods/burstable/pod{UID}/{CID},task_memcg=/kubepods/burstable/pod{UID}/{CID},task=my,app,pid=42,uid=1000",
    f"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{US}.slice/cri-containerd-{CID}.scope,task_memcg=/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{US}.slice/cri-containerd-{CID}.scope,task=java,pid=7,uid=0",
    f"oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/kubepods/pod{UID}/{CID},task=java,pid=7,uid=0",
    f"/kubepods.slice/kubepods-pod{US}.slice/docker-{CID}.scope",
    f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{US}.slice/crio-{CID}.scope",
    "/system.slice/docker.service",
]
for r in KMSG:
    put("kmsg_record", r)
for o in OOM[:4]:
    put("kmsg_record", b"6,500,1000,-;" + o.encode() + b"\n")
for o in OOM:
    put("oom_path", o)
    put("oom_path", "Memory cgroup out of memory: Killed process 7 (java)\n" + o)
# the kubelet's pod log directory names (`--oneshot` names OOM-killed pods by them)
for d in [f"kube-system_coredns-7d8c9f-x2x_{UID}", f"team-a_web.1_{UID.upper()}"]:
    put("oom_path", d)

# --- log lines and replay ---------------------------------------------------------------
DMESG = (
    "<1>[  100.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008\n"
    "<4>[  100.100000] Oops: divide error: 0000 [#1] PREEMPT SMP NOPTI\n"
    "<3>[  101.000000] EXT4-fs (sda1): Remounting filesystem read-only\n"
    "<6>[  102.000000] eth0: neighbor table overflow!\n"
    "<6>[  103.000000] nothing here\n"
)
MIXED = (
    b"Nov 27 07:15:14 node1 kernel: usb 1-1: string descriptor \xff\xfe\n"
    b"Nov 27 07:15:15 node1 kernel: INFO: task kworker/0:1:42 blocked for more than 120 seconds.\n"
)
SYSLOG = (
    "Nov 27 07:15:15 node1 kernel: TCP: too many orphaned sockets\n"
    "Nov 27 07:15:16 node1 dockerd[812]: level=error msg=\"x y\"\r\n"
    "time=\"2026-11-27T07:15:15.000000001Z\" level=error msg=\"x y\"\n"
)
PLAIN = "noise\nINFO: task kworker/0:1:42 blocked for more than 120 seconds.\nx\nINFO: task a:1 blocked for more than 5 seconds.\n"
CRASH = b"Nov 27 07:15:14 node1 kernel: a\r\n\0\0\0\0Nov 27 07:15:15 node1 kernel: INFO: task a:1 blocked for more than 5 seconds.\r\n"
for text in (DMESG, SYSLOG, PLAIN):
    put("log_line", text)
    for line in text.splitlines():
        put("log_line", line)
for r in KMSG[:8]:
    put("log_line", r.rstrip(b"\n"))
put("log_line", MIXED)
put("log_line", CRASH)
# replay: first byte = format (0 plain, 1 kmsg, 2 syslog) | 0x80 for text output
put("replay", b"\x02" + MIXED)
put("replay", b"\x82" + MIXED)
put("replay", b"\x01" + DMESG.encode())
put("replay", b"\x81" + b"".join(KMSG))
put("replay", b"\x00" + PLAIN.encode())
put("replay", b"\x02" + CRASH)
put("replay", b"\x01" + ("\n".join("[ 5.0] " + o for o in OOM[:4])).encode())

# --- rule files -------------------------------------------------------------------------
for f in sorted(glob.glob(os.path.join(REPO, "probes/rules/*.json"))
                + glob.glob(os.path.join(REPO, "probes/tests/fixtures/*/*.json"))):
    put("rule_file", open(f, "rb").read(), os.path.relpath(f, REPO).replace("/", "_"))

# --- custom-plugin files (the users', as their /config holds them) -----------------------
for f in sorted(glob.glob(os.path.join(REPO, "integration/tests/fixtures/npd-config/*.json"))):
    if b'"custom"' in open(f, "rb").read():
        put("custom_plugin", open(f, "rb").read(), os.path.basename(f))


# --- timestamps (log_time takes structured input: [len][layout][len][value]...) ----------
def lv(*parts):
    out = b""
    for p in parts:
        p = p.encode()
        out += bytes([len(p)]) + p
    return out


for layout, value, ts, msg in [
    ("Jan _2 15:04:05", "Nov 27 07:15:15", "^.{15}", "kernel: \\[.*\\] (.*)"),
    ("2006-01-02T15:04:05.999999999-07:00", "2026-11-27T07:15:15.000000001+01:00", "^time=\"(\\S*)\"", "msg=\"([^\n]*)\""),
    ("Mon Jan 2 3:04:05 PM MST 2006", "Fri Nov 27 7:15:15 PM UTC 2026", "^.{15}", "(?i)Currently unreadable.*sectors|(?i)Offline uncorrectable sectors"),
]:
    put("log_time", lv(layout, value, ts, msg, "Nov 27 07:15:15 node kernel: [ 12.5] TCP: too many orphaned sockets"))
put("log_time", lv("2006-01-02T15:04:05Z07:00", "2026-11-27T07:15:15Z", "", "", "") + b"\x00" * 64)

# --- journal, cursors and state files ---------------------------------------------------
for f in sorted(glob.glob(os.path.join(CAP, "journal-*.journal"))):
    put("journal", open(f, "rb").read(), os.path.basename(f))
put("journal", "s=0123456789abcdef0123456789abcdef;i=1;b=0123456789abcdef0123456789abcdef;m=3e8;t=60a2d4b2f8000;x=1234abcd")
put("journal", json.dumps({"version": 1, "boot_id": "0123456789abcdef0123456789abcdef", "last_seq": 689,
                           "conditions": [{"condition": "ReadonlyFilesystem", "status": "True", "reason": "FilesystemIsReadOnly",
                                           "message": "Remounting filesystem read-only", "transition_unix_ms": 1795763715123,
                                           "last_match_unix_ms": 1795763715123}],
                           "journal_cursor": None, "file_inode": 12, "file_offset": 4096}))

# --- cloud metadata: first byte picks the status (0 200, 3 404, 4 500) --------------------
WHEN = "2026-11-27T09:30:00Z"
EVENT = {"EventId": "nodeprobe-it", "EventType": "Preempt", "ResourceType": "VirtualMachine",
         "Resources": ["nodeprobe-it-vm"], "EventStatus": "Scheduled", "NotBefore": "Fri, 27 Nov 2026 09:30:00 GMT"}
AZURE_TEST = '''{"DocumentIncarnation": 3, "Events": [
    {"EventId": "A", "EventType": "Freeze", "ResourceType": "VirtualMachine", "Resources": ["vm-1"], "EventStatus": "Scheduled", "NotBefore": "Mon, 19 Sep 2016 18:00:00 GMT"},
    {"EventId": "C", "EventType": "Preempt", "ResourceType": "VirtualMachine", "Resources": ["vm-1"], "EventStatus": "Scheduled", "NotBefore": "Mon, 19 Sep 2016 18:29:47 GMT"}
]}'''
for status, body in [
    (0, WHEN), (0, "2015-01-05T18:02:00Z\n"), (0, "2026-11-27 17:30:00"), (0, "2018-08-18 12:05:33"),
    (0, json.dumps({"action": "terminate", "time": WHEN})), (0, json.dumps({"action": "stop", "time": "2026-11-27T09:30:00+08:00"})),
    (0, json.dumps({"DocumentIncarnation": 2, "Events": [dict(EVENT, Resources=["another-vm"]), EVENT]})),
    (0, json.dumps({"DocumentIncarnation": 1, "Events": []})), (0, AZURE_TEST),
    (0, "TRUE"), (0, "FALSE"), (0, "MAYBE"), (0, "tomorrow-ish"), (0, "2026-13-45 99:00:00"),
    (0, "{not json"), (0, "<html>maintenance</html>"), (3, "Not Found"), (4, "oops"), (5, ""),
]:
    put("metadata_answer", bytes([status]) + body.encode())
for url in ["http://100.100.100.200", "http://169.254.169.254", "http://169.254.0.23",
            "http://127.0.0.1:8080/base/", "http://[fd00:ec2::254]", "http://[::1]:99/p",
            "http://metadata.tencentyun.com", "https://169.254.169.254", "http://u:p@h", "http://h/p?q=1"]:
    put("metadata_url", url)

# --- docker: the ping reply, then the version reply -------------------------------------
def keep_alive(reply):
    return reply.replace(b"Connection: close\r\n", b"")


ping = keep_alive(open(os.path.join(CAP, "ping"), "rb").read())
version = keep_alive(open(os.path.join(CAP, "version"), "rb").read())
err = keep_alive(open(os.path.join(CAP, "err"), "rb").read())
put("docker_reply", ping + version, "dockerd-20.10-ping-version")
put("docker_reply", err + err, "dockerd-20.10-404")
put("docker_reply", b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\nOK"
    b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n{\"Version\":\"20.10.24\",\"ApiVersion\":\"1.41\"}")
put("docker_reply", b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nsick")
put("docker_reply", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nOK\r\n0\r\n\r\n")


# --- containerd: protobuf wire bytes ------------------------------------------------------
def field(n, payload):
    return bytes([n << 3 | 2, len(payload)]) + payload


def cond(typ, status, reason="", message=""):
    b = field(1, typ.encode()) + (bytes([0x10, 1]) if status else b"")
    if reason:
        b += field(3, reason.encode())
    if message:
        b += field(4, message.encode())
    return field(1, b)


ready = field(1, cond("RuntimeReady", True) + cond("NetworkReady", True))
no_cni = field(1, cond("RuntimeReady", True) + cond("NetworkReady", False, "NetworkPluginNotReady", "cni plugin not initialized"))
down = field(1, cond("RuntimeReady", False, "ContainerdNotReady", "x") + cond("NetworkReady", True))
put("cri_reply", ready)
put("cri_reply", no_cni)
put("cri_reply", down)
put("cri_reply", ready + bytes([0x12, 0x04, 0x0a, 0x00, 0x12, 0x00, 0x48, 0x01]))
put("cri_reply", bytes([0x0a, 0x06]) + b"1.6.20" + bytes([0x12, 0x03]) + b"abc")

# --- DNS replies --------------------------------------------------------------------------
for f in sorted(glob.glob(os.path.join(CAP, "*.bin"))):
    put("dns_reply", open(f, "rb").read(), "resolver-" + os.path.basename(f).replace(".bin", ""))
put("dns_reply", "# generated\nsearch cluster.local\nnameserver 10.96.0.10\nnameserver fe80::1%eth0\n  nameserver   1.1.1.1 \nnameserver bogus\nnameserver 8.8.8.8\noptions ndots:5\n")

# --- eventer: sink flags, body templates (the users' and the tests'), Events --------------
SINKS = [
    "dingtalk:https://oapi.dingtalk.com/robot/send?access_token=$TOKEN&label=prod-cluster&level=Warning",
    "dingtalk:https://oapi.dingtalk.com/robot/send?access_token=${TOKEN}&sign=$TOKEN&msg_type=markdown&quota=20/1m",
    "webhook:https://open.feishu.cn/open-apis/bot/v2/hook/x?level=Warning&method=POST&header=Content-Type=application/json&custom_body_configmap=custom-body&custom_body_configmap_namespace=kube-system",
    "feishu:https://open.feishu.cn/open-apis/bot/v2/hook/x?secret=$TOKEN&namespaces=default,kube-system&reason=OOMKilling&reason=BackOff",
    "lark:https://open.larksuite.com/open-apis/bot/v2/hook/x?kinds=Node,Pod&escape=json",
    "log:stdout",
    "kubernetes:https://kubernetes.default?inClusterConfig=false&insecure=true&auth=/etc/kubeconfig",
    "webhook:http://$HOST/hook?x=%ZZ&a+b=c%20d&&=#frag",
]
for s in SINKS:
    put("eventer_sink_uri", s)
import re
users = open(os.path.join(REPO, "integration/tests/fixtures/eventer/custom-body-configmap.yaml")).read()
users = re.search(r"content: '(.*)'", users, re.S).group(1)
TEMPLATES = [
    users,
    '{"EventType": "{{ .Type }}", "EventMessage": "{{ .Message }}", "At": "{{ .LastTimestamp.Format "2006-01-02 15:04:05" }}"}',
    '{{range $k, $v := .ObjectMeta.Labels}}{{$k}}={{printf "%q" $v}} {{else}}none{{end}}{{with .Series}}{{.Count}}{{end}}',
    '{{define "x"}}{{template "x" .}}{{end}}{{template "x" .}}',
    '{{range $i := .Message}}{{range $j := $.Message}}{{$i}}{{$j}}{{end}}{{end}}',
    '{{if and (eq .Type "Warning") (ne .Reason "")}}{{.Reason | printf "%-9999s"}}{{end}}{{len .Message}}{{index .ObjectMeta.Annotations "a"}}',
    '[{{json .}}, {{toJson .InvolvedObject}}, "{{.Message | js}}", "{{html .Message}}", "{{urlquery .Message}}"]',
]
for t in TEMPLATES:
    put("eventer_template", t)
    put("eventer_chat_payload", t)
