#!/usr/bin/env python3
"""Turns committed op lines (collab-ot-apply replay --ops TRACE) into the stream a presence
observer sees in a busy room: a welcome with the (empty) starting text, a roster of MEMBERS
people, and after every op a presence line from one of them in turn (the server relays at most
one per connection per 50 ms, so a presence per op is a pessimistic mix), whose caret sits near
the edit at the op's revision and who types for 16 of their updates, then stops for 16.

usage: presence-stream.py [MEMBERS] < ops.ndjson > stream.ndjson
"""
import json, sys

members = int(sys.argv[1]) if len(sys.argv) > 1 else 4
colors = ["#c62828", "#0097a7", "#689f38", "#9c27b0", "#e65100", "#3f51b5", "#827717", "#c2185b"]
out = sys.stdout
out.write(json.dumps({"type": "welcome", "room": "bench", "client": "c0", "rev": 0, "doc": ""}, separators=(",", ":")) + "\n")
roster = [{"user": f"u{k}", "color": colors[k % len(colors)], "initials": f"U{k}", "client": f"c{k}", "typing": False}
          for k in range(members)]
out.write(json.dumps({"type": "roster", "room": "bench", "members": roster}, separators=(",", ":")) + "\n")
length = 0
ts = 1_700_000_000_000
for i, line in enumerate(sys.stdin):
    m = json.loads(line)
    op = m["op"]
    pos = op[0] if isinstance(op[0], int) else 0
    for c in op:
        if isinstance(c, str):
            length += len(c)
        elif isinstance(c, dict):
            d = c["d"]
            length -= d if isinstance(d, int) else len(d)
    out.write(line)
    k = i % members
    caret = min(length, max(0, pos + (k - members // 2) * 37))
    ts += 40
    presence = {"type": "presence", "room": "bench", "user": f"u{k}", "client": f"c{k}",
                "cursor": {"anchor": caret, "head": caret}, "rev": m["rev"], "typing": (i // (members * 16)) % 2 == 0, "ts": ts}
    out.write(json.dumps(presence, separators=(",", ":")) + "\n")
