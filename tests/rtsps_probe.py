#!/usr/bin/env python3
"""A raw RTSPS client (Python stdlib ssl, no GStreamer): DESCRIBE, SETUP (TCP
interleaved), PLAY over TLS, then checks the interleaved RTP framing and sequence
numbers. GStreamer 1.22.0's rtspsrc garbles interleaved data read over TLS on Debian 12,
so the RTSPS test reads the stream with this instead.

    tests/rtsps_probe.py PORT [PATH]
"""
import socket, ssl, sys, struct
host, port = "127.0.0.1", int(sys.argv[1])
ctx = ssl.create_default_context(); ctx.check_hostname=False; ctx.verify_mode=ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection((host, port)), server_hostname=host)
buf = b""
def req(text):
    global buf
    s.sendall(text.encode())
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, _, rest = buf.partition(b"\r\n\r\n")
    hdrs = head.decode(errors="replace")
    n = 0
    for l in hdrs.split("\r\n"):
        if l.lower().startswith("content-length:"): n = int(l.split(":")[1])
    while len(rest) < n: rest += s.recv(65536)
    body, buf = rest[:n], rest[n:]
    return hdrs, body.decode(errors="replace")
url = f"rtsps://{host}:{port}{sys.argv[2] if len(sys.argv) > 2 else '/live'}"
h, b = req(f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n")
ctrl = [l.split("control:")[1] for l in b.splitlines() if "a=control:" in l and "stream" in l][0]
h, _ = req(f"SETUP {url}/{ctrl} RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n")
sess = [l.split(":",1)[1].strip().split(";")[0] for l in h.split("\r\n") if l.lower().startswith("session:")][0]
h, _ = req(f"PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {sess}\r\n\r\n")
print(h.split("\r\n")[0])
seqs, bad, n = [], 0, 0
while n < 300:
    while len(buf) < 4: buf += s.recv(65536)
    if buf[0:1] != b"$":
        print("framing lost at packet", n, buf[:16]); break
    ch, ln = buf[1], struct.unpack(">H", buf[2:4])[0]
    while len(buf) < 4+ln: buf += s.recv(65536)
    pkt, buf = buf[4:4+ln], buf[4+ln:]
    n += 1
    if ch == 0:
        if pkt[0] >> 6 != 2: bad += 1
        seqs.append(struct.unpack(">H", pkt[2:4])[0])
gaps = sum(1 for a, b in zip(seqs, seqs[1:]) if (b - a) % 65536 != 1)
print(f"{n} interleaved packets, {len(seqs)} RTP, bad version {bad}, seq gaps {gaps}")
sys.exit(0 if n >= 300 and bad == 0 and gaps == 0 else 1)
