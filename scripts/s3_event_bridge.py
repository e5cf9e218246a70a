"""Delivers the bucket's S3 notifications to the verify function, as S3 does in AWS.

LocalStack sends ObjectCreated events for `uploads/` to an SQS queue; this polls the queue and
invokes `verify` through `cargo lambda watch`'s Lambda API. A failed invocation leaves the
message in the queue, to be retried when it becomes visible again, like Lambda's own retries.
Run by scripts/dev with LocalStack's Python; configured by the environment it exports.
"""

import json
import os
import sys
import urllib.error
import urllib.request

import boto3

BUCKET = os.environ["BUCKET_NAME"]
INVOKE_URL = os.environ["VERIFY_INVOKE_URL"]


def log(message):
    print(f"s3-event-bridge: {message}", file=sys.stderr, flush=True)


def connect():
    region = os.environ.get("AWS_REGION", "us-east-1")
    sqs = boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL_SQS"], region_name=region)
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"], region_name=region)
    queue_url = sqs.create_queue(QueueName=f"{BUCKET}-events", Attributes={"VisibilityTimeout": "5"})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"}]}},
                }
            ]
        },
    )
    return sqs, queue_url


def invoke(event_json):
    request = urllib.request.Request(
        INVOKE_URL, data=event_json.encode(), method="POST", headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=900) as response:
            body = response.read().decode(errors="replace")
            if response.headers.get("x-amz-function-error"):
                return f"function error: {body}"
            return None
    except (urllib.error.URLError, OSError) as error:
        return f"invoke failed: {error}"


def main():
    sqs, queue_url = connect()
    log(f"delivering ObjectCreated events of {BUCKET} to {INVOKE_URL}")
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1, MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            event = json.loads(message["Body"])
            if "Records" in event:  # not the s3:TestEvent sent when the notification is set up
                error = invoke(message["Body"])
                if error:
                    log(f"{error}; will retry")
                    continue
                keys = ", ".join(r["s3"]["object"]["key"] for r in event["Records"])
                log(f"verified event for {keys}")
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
