#!/usr/bin/env python3
"""Local stand-in for Lambda's SQS event source mapping.

Long-polls the step queue (moto's SQS), hands each batch to execute-step through the
Invoke API of `cargo lambda watch` as a real SQS event, and deletes the messages the
function did not report in `batchItemFailures`, exactly as Lambda does with
ReportBatchItemFailures. Failed messages come back after the visibility timeout.

Counts every SQS request it makes, and writes the totals to --stats on exit, so the local
flow can report SQS requests per step.
"""
import argparse
import json
import signal
import sys
import time
import urllib.request

import boto3

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--queue-url", required=True)
parser.add_argument("--invoke-url", required=True, help="cargo lambda watch's address, e.g. http://127.0.0.1:9000")
parser.add_argument("--function", default="execute-step")
parser.add_argument("--batch-size", type=int, default=10)
parser.add_argument("--visibility-timeout", type=int, default=30)
parser.add_argument("--stats", help="file to write request counts to, as JSON")
args = parser.parse_args()

sqs = boto3.client("sqs")
stats = {"receiveRequests": 0, "deleteRequests": 0, "messages": 0, "invocations": 0, "failures": 0}
running = True


def stop(*_):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)


def write_stats():
    if args.stats:
        with open(args.stats, "w") as f:
            json.dump(stats, f)


def as_event(messages):
    arn = "arn:aws:sqs:ap-southeast-2:000000000000:" + args.queue_url.rsplit("/", 1)[-1]
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "ap-southeast-2",
            }
            for m in messages
        ]
    }


def invoke(event):
    url = f"{args.invoke_url}/2015-03-31/functions/{args.function}/invocations"
    request = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST")
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read() or b"{}")


while running:
    stats["receiveRequests"] += 1
    received = sqs.receive_message(
        QueueUrl=args.queue_url,
        MaxNumberOfMessages=args.batch_size,
        WaitTimeSeconds=1,
        VisibilityTimeout=args.visibility_timeout,
        AttributeNames=["All"],
    )
    messages = received.get("Messages", [])
    if not messages:
        write_stats()
        continue
    stats["messages"] += len(messages)
    stats["invocations"] += 1
    try:
        answer = invoke(as_event(messages))
    except Exception as error:  # the function errored: the whole batch comes back
        print(f"pump: invoke failed, batch returns after its visibility timeout: {error}", file=sys.stderr)
        stats["failures"] += len(messages)
        write_stats()
        continue
    failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
    stats["failures"] += len(failed)
    done = [m for m in messages if m["MessageId"] not in failed]
    if done:
        stats["deleteRequests"] += 1
        sqs.delete_message_batch(
            QueueUrl=args.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
        )
    write_stats()
    time.sleep(0.05)
write_stats()
