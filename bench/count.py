#!/usr/bin/env python3
"""Sends exactly COUNT small Messages requests over CONNECTIONS keep-alive
connections and prints {"requests": N, "non_200": M}: totals over a fixed
number of requests for bench/cost.sh (wrk runs for a duration, not a count).

    count.py PORT COUNT [CONNECTIONS] [json|stream]

`stream` asks for SSE answers (the stand-in's default: 5 text deltas) and
reads each to its end."""
import http.client
import json
import os
import sys
import threading

url_port = int(sys.argv[1])
count = int(sys.argv[2])
connections = int(sys.argv[3]) if len(sys.argv) > 3 else 4
stream = len(sys.argv) > 4 and sys.argv[4] == "stream"
key = os.environ.get("BENCH_API_KEY", "cr_bench_key_000001")
body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream,
                   "messages": [{"role": "user", "content": "bench"}]}).encode()
headers = {"content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": key}
lock = threading.Lock()
state = {"left": count, "done": 0, "non_200": 0}


def worker():
    conn = http.client.HTTPConnection("127.0.0.1", url_port, timeout=60)
    while True:
        with lock:
            if state["left"] == 0:
                break
            state["left"] -= 1
        conn.request("POST", "/v1/messages", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        with lock:
            state["done"] += 1
            if response.status != 200:
                state["non_200"] += 1
    conn.close()


threads = [threading.Thread(target=worker) for _ in range(connections)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"requests": state["done"], "non_200": state["non_200"]}))
