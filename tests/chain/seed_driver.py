#!/usr/bin/env python3
"""Download load and a simulated file infector for the seed scenario test.

  seed_driver.py load CONFIG.json OUT.json SECONDS THREADS
      Customers download targets through every node (HTTP keep-alive, bearer tokens) for
      SECONDS. Every answer must be either the exact signed bytes (200) or an error status;
      a 200 whose body differs from the signed bytes is a failure (exit 1). Writes every
      request (client-side start/end in microseconds, node, org, user, target, status).
  seed_driver.py infect DIR MARKER OUT.json PER_ROUND ROUND_MS
      Appends MARKER to every executable (*.exe) under DIR/targets, PER_ROUND files at a
      time, and records when each one was written.
"""
import hashlib
import http.client
import json
import os
import random
import sys
import threading
import time


def now_us():
    return time.time_ns() // 1000


def load(cfg_path, out_path, seconds, threads):
    cfg = json.load(open(cfg_path))
    targets = cfg["targets"]  # path -> {rel, sha256, product}
    users = cfg["users"]      # [{org, user, token, products}]
    nodes = cfg["nodes"]      # name -> port
    marker = cfg["marker"].encode()
    records, bad = [], []
    lock = threading.Lock()
    stop = time.time() + seconds

    def worker(seed):
        rnd = random.Random(seed)
        conns = {}
        while time.time() < stop:
            u = rnd.choice(users)
            node = rnd.choice(sorted(nodes))
            path = rnd.choice(sorted(targets))
            t = targets[path]
            c = conns.get(node)
            if c is None:
                c = conns[node] = http.client.HTTPConnection("127.0.0.1", nodes[node], timeout=10)
            start = now_us()
            try:
                c.request("GET", "/targets/" + t["rel"], headers={"Authorization": "Bearer " + u["token"]})
                r = c.getresponse()
                body = r.read()
                status = r.status
                if r.getheader("Connection", "").lower() == "close":
                    c.close()
                    conns.pop(node, None)
            except Exception as e:  # a dropped connection is an error answer, not bytes
                body, status = b"", 0
                c.close()
                conns.pop(node, None)
            end = now_us()
            rec = {"start": start, "end": end, "node": node, "org": u["org"], "user": u["user"], "target": path,
                   "status": status, "bytes": len(body)}
            if status == 200:
                digest = hashlib.sha256(body).hexdigest()
                if digest != t["sha256"] or marker in body:
                    with lock:
                        bad.append(rec)
            with lock:
                records.append(rec)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    json.dump({"records": records, "bad": bad}, open(out_path, "w"))
    ok = sum(1 for r in records if r["status"] == 200)
    by_status = {}
    for r in records:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    print(f"{len(records)} requests, {ok} verified downloads, statuses {by_status}, {len(bad)} changed bodies")
    return 1 if bad else 0


def infect(d, marker, out_path, per_round, round_ms):
    exes = []
    for root, _, files in os.walk(os.path.join(d, "targets")):
        exes += [os.path.join(root, f) for f in files if f.endswith(".exe")]
    exes.sort()
    written = []
    for i in range(0, len(exes), per_round):
        for f in exes[i:i + per_round]:
            t = now_us()
            with open(f, "ab") as fh:
                fh.write(marker.encode())
            written.append({"file": os.path.relpath(f, d), "at": t})
        time.sleep(round_ms / 1000)
    json.dump(written, open(out_path, "w"))
    print(f"infected {len(written)} executables")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "load":
        sys.exit(load(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])))
    if sys.argv[1] == "infect":
        sys.exit(infect(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])))
    sys.exit(2)
