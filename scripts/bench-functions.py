#!/usr/bin/env python3
"""Measures each function's release binary: its size, and its init time, the time from
process start to its first Runtime API request (GET .../invocation/next), against a stub
Runtime API on loopback. The stub never answers, so only init is timed; each function is
started --runs times. Writes target/bench/functions.json.

Build first: cargo lambda build --release (the script looks in --binaries, by default
target/lambda/<function>/bootstrap).
"""
import argparse
import http.server
import json
import os
import statistics
import subprocess
import threading
import time

FUNCTIONS = ["start-run", "execute-step", "runs-api", "stream-archiver"]

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--binaries", default="target/lambda")
parser.add_argument("--runs", type=int, default=20)
parser.add_argument("--out", default="target/bench/functions.json")
args = parser.parse_args()

first_request = threading.Event()
arrived = [0.0]


class Stub(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next") and not first_request.is_set():
            arrived[0] = time.perf_counter()
            first_request.set()
        time.sleep(5)  # hold the long poll; the process is killed meanwhile

    def log_message(self, *_):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
port = server.server_address[1]

env = dict(os.environ)
env.update({
    "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
    "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench", "AWS_REGION": "ap-southeast-2",
    "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
    "TABLE_NAME": "bench", "STEP_QUEUE_URL": "http://127.0.0.1:9/000000000000/bench",
    "ARCHIVE_BUCKET": "bench",
})

report = {"runs": args.runs, "functions": {}}
for name in FUNCTIONS:
    binary = os.path.join(args.binaries, name, "bootstrap")
    times = []
    for _ in range(args.runs):
        first_request.clear()
        started = time.perf_counter()
        process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not first_request.wait(timeout=10):
            process.kill()
            raise SystemExit(f"{name}: no Runtime API request within 10 s")
        times.append((arrived[0] - started) * 1000)
        process.kill()
        process.wait()
    times.sort()
    report["functions"][name] = {
        "binaryBytes": os.path.getsize(binary),
        "initMsMedian": round(statistics.median(times), 2),
        "initMsP90": round(times[int(len(times) * 0.9) - 1], 2),
        "initMsMin": round(times[0], 2),
    }
os.makedirs(os.path.dirname(args.out), exist_ok=True)
with open(args.out, "w") as f:
    json.dump(report, f, indent=2)
print(json.dumps(report, indent=2))
