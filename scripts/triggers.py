"""The Lambda triggers of template.yaml, for scripts/dev: what Lambda's event source mappings do in
AWS, done against LocalStack and DynamoDB Local through `cargo lambda watch`'s Lambda API.

- verify's queue → verify: the queue (`upload-admin create-verify-queue`) gets the bucket's
  ObjectCreated events for `uploads/` and verify's own continuations; one message per invocation
  (the template's BatchSize), in Lambda's SQS event shape, by two pollers at once (Lambda scales
  out). A failed invocation leaves the message in the queue, to come back when it is visible again,
  and after the queue's maxReceiveCount go to its failures queue.
- the table's stream → notify: records of file items (the template's filter) in Lambda's
  DynamoDB event shape, shard by shard, in order, up to 100 at once (the template's BatchSize).
  A failed invocation is retried; a partial failure (`batchItemFailures`) resumes from the first
  record named, as Lambda checkpoints. Each shard's position outlives any error, so nothing
  written is skipped.
- the webhook queue → deliver: up to 10 messages per invocation, the same way; deliver sets when a
  failed one comes back.

For both queues, the messages the function does not name in `batchItemFailures` are deleted.

As in Lambda, an answer that names a record not in the batch fails the whole batch.

Run by scripts/dev with LocalStack's Python (boto3); configured by the environment it exports.
"""

import base64
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

import boto3

REGION = os.environ.get("AWS_REGION", "us-east-1")
BUCKET = os.environ["BUCKET_NAME"]
TABLE = os.environ["TABLE_NAME"]
WEBHOOK_QUEUE_URL = os.environ["WEBHOOK_QUEUE_URL"]
VERIFY_QUEUE_URL = os.environ["VERIFY_QUEUE_URL"]
INVOKE = os.environ["INVOKE_URL"]  # …/2015-03-31/functions/{}/invocations
# How often an idle stream is read: the latency a webhook adds locally is about this.
STREAM_POLL_SECONDS = 0.1


def log(message):
    print(f"triggers: {message}", file=sys.stderr, flush=True)


class InvokeError(Exception):
    pass


def lambda_json(value):
    """What JSON cannot hold as it is, as Lambda writes it: binary attributes (a check's
    checkpointed hash states, `{"B": …}`) in base64."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def invoke(function, event):
    """The function's answer (parsed JSON or None); raises InvokeError when the invocation fails."""
    request = urllib.request.Request(
        INVOKE.format(function),
        data=json.dumps(event, default=lambda_json).encode(),
        method="POST",
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=900) as response:
            body = response.read().decode(errors="replace")
            if response.headers.get("x-amz-function-error"):
                raise InvokeError(f"{function} failed: {body[:500]}")
            return json.loads(body) if body.strip() else None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise InvokeError(f"{function}: {error}") from error


def failed_items(answer):
    """The itemIdentifiers of a partial batch response (empty: all done); InvokeError if malformed."""
    try:
        return [failure["itemIdentifier"] for failure in (answer or {}).get("batchItemFailures") or []]
    except (AttributeError, KeyError, TypeError) as error:
        raise InvokeError(f"not a partial batch response: {answer!r:.200}") from error


def client(service, variable):
    return boto3.client(service, endpoint_url=os.environ[variable], region_name=REGION)


def lambda_stream_record(record, stream_arn):
    """A record of the streams API as Lambda hands it to a function."""
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if hasattr(created, "timestamp"):
        change["ApproximateCreationDateTime"] = created.timestamp()
    shaped = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": change,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in record:
        shaped["userIdentity"] = {"type": record["userIdentity"]["Type"], "principalId": record["userIdentity"]["PrincipalId"]}
    return shaped


def is_file(record):
    return record["dynamodb"].get("Keys", {}).get("sk", {}).get("S") == "FILE"


def shard_ids(streams, stream_arn):
    shards, start = [], {}
    while True:
        description = streams.describe_stream(StreamArn=stream_arn, **start)["StreamDescription"]
        shards += [shard["ShardId"] for shard in description["Shards"]]
        if "LastEvaluatedShardId" not in description:
            return shards
        start = {"ExclusiveStartShardId": description["LastEvaluatedShardId"]}


def notify(records):
    """Hands `records` to notify until all are done: a failure retries the batch, a partial
    failure resumes from the first record it names."""
    while records:
        try:
            failed = failed_items(invoke("notify", {"Records": records}))
        except InvokeError as error:
            log(f"{error}; will retry")
            time.sleep(1)
            continue
        if not failed:
            log(f"notify: {len(records)} records to {records[-1]['dynamodb']['SequenceNumber']}")
            return
        numbers = [record["dynamodb"]["SequenceNumber"] for record in records]
        first = min(numbers.index(item) if item in numbers else 0 for item in failed)
        log(f"notify could not publish from {numbers[first]}; will retry from there")
        records = records[first:]
        time.sleep(1)


def stream_to_notify():
    dynamodb = client("dynamodb", "AWS_ENDPOINT_URL_DYNAMODB")
    streams = client("dynamodbstreams", "AWS_ENDPOINT_URL_DYNAMODB")
    stream_arn = dynamodb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    log(f"the stream of {TABLE} → notify")
    iterators = {}  # shard id → next iterator (None once a closed shard is read)
    first_look = True
    while True:
        # An error reading the stream keeps every shard's position: the pass is tried again.
        try:
            for shard_id in shard_ids(streams, stream_arn):
                if shard_id not in iterators:
                    # Shards open when the bridge starts are read from now; later ones from their start.
                    position = "LATEST" if first_look else "TRIM_HORIZON"
                    iterators[shard_id] = streams.get_shard_iterator(
                        StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType=position
                    )["ShardIterator"]
            first_look = False
            idle = True
            for shard_id, iterator in list(iterators.items()):
                if iterator is None:
                    continue
                output = streams.get_records(ShardIterator=iterator, Limit=100)
                records = [lambda_stream_record(r, stream_arn) for r in output["Records"] if is_file(r)]
                if records:
                    idle = False
                    notify(records)
                iterators[shard_id] = output.get("NextShardIterator")
        except Exception as error:  # noqa: BLE001 - the positions must outlive any one failure
            log(f"reading the stream: {error!r}; will retry")
            idle = False
            time.sleep(1)
        if idle:
            time.sleep(STREAM_POLL_SECONDS)


def lambda_sqs_message(message, queue_arn):
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def queue_to(function, queue_url, batch_size):
    """A bridge handing the messages of `queue_url` to `function`, `batch_size` at a time."""

    def bridge():
        sqs = client("sqs", "AWS_ENDPOINT_URL_SQS")
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        log(f"{queue_url} → {function}")
        while True:
            messages = sqs.receive_message(
                QueueUrl=queue_url, WaitTimeSeconds=1, MaxNumberOfMessages=batch_size, AttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                continue
            try:
                event = {"Records": [lambda_sqs_message(m, queue_arn) for m in messages]}
                failed = set(failed_items(invoke(function, event)))
                if failed - {m["MessageId"] for m in messages}:
                    raise InvokeError(f"{function} named messages not in the batch: {sorted(failed)}")
            except InvokeError as error:
                log(f"{error}; will retry")
                continue
            log(f"{function}: {len(messages)} messages, {len(failed)} to retry")
            for message in messages:
                if message["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    bridge.__name__ = f"queue_to_{function}"
    return bridge


def run(target):
    """Runs `target` forever: a crash of one bridge is logged and the bridge starts again."""
    while True:
        try:
            target()
        except Exception as error:  # noqa: BLE001 - a bridge must outlive any one failure
            log(f"{target.__name__}: {error!r}; restarting")
            time.sleep(1)


def main():
    bridges = [queue_to("verify", VERIFY_QUEUE_URL, 1)] * 2 + [stream_to_notify, queue_to("deliver", WEBHOOK_QUEUE_URL, 10)]
    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in bridges]
    for thread in threads:
        thread.start()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
