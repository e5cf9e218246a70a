"""Holds each function's IAM policy in template.yaml against the AWS operations its code performs.

The operations come from the tests (tests/src/operations.rs records `<function> <service>
<operation>` lines while the tests drive the handlers, against the real servers and SDK-level
mocks). LocalStack and DynamoDB Local enforce no IAM, so a grant that is missing would otherwise
only show in AWS. Fails when a function performs an operation its policy does not allow, and when
a policy allows an action no operation of the function needs.

It holds each function's environment in the template to its operations the same way: a function
that reaches the bucket, assumes the signing role or publishes events is given the setting that
names it (without which it stops at its cold start), and no other function is.

Usage: check_iam.py TEMPLATE OPERATIONS_LOG   (run by scripts/test, with the tools' Python)
"""

import sys
from collections import defaultdict
from pathlib import PurePosixPath as Path

from cfnlint.decode import decode

# The IAM actions each SDK operation needs. Looking at an object (HeadObject, which the code
# does before reading one) also needs s3:ListBucket, without which S3 answers 403 instead of 404
# for a key that does not exist. A presigned URL is signed by the function (the SDK runs the
# operation's pipeline to sign it, which records it too), so the function's role needs what the
# URL does: a download URL needs s3:GetObject.
ACTIONS = {
    ("DynamoDB", "GetItem"): {"dynamodb:GetItem"},
    ("DynamoDB", "PutItem"): {"dynamodb:PutItem"},
    ("DynamoDB", "UpdateItem"): {"dynamodb:UpdateItem"},
    ("DynamoDB", "DeleteItem"): {"dynamodb:DeleteItem"},
    ("DynamoDB", "Query"): {"dynamodb:Query"},
    ("DynamoDB", "BatchGetItem"): {"dynamodb:BatchGetItem"},
    # IAM authorizes each item of a transaction by its own action, recorded as
    # TransactWriteItems.<kind> (tests/src/operations.rs); the transaction itself needs none.
    ("DynamoDB", "TransactWriteItems"): set(),
    ("DynamoDB", "TransactWriteItems.Put"): {"dynamodb:PutItem"},
    ("DynamoDB", "TransactWriteItems.Update"): {"dynamodb:UpdateItem"},
    ("DynamoDB", "TransactWriteItems.Delete"): {"dynamodb:DeleteItem"},
    ("DynamoDB", "TransactWriteItems.ConditionCheck"): {"dynamodb:ConditionCheckItem"},
    ("S3", "HeadObject"): {"s3:GetObject", "s3:ListBucket"},
    ("S3", "GetObject"): {"s3:GetObject"},
    # Objects are written tagged (x-amz-tagging signed into the URL, Tagging on the multipart
    # upload): IAM authorizes the tags by s3:PutObjectTagging.
    ("S3", "PutObject"): {"s3:PutObject", "s3:PutObjectTagging"},
    ("S3", "PutObjectTagging"): {"s3:PutObjectTagging"},
    ("S3", "ListObjectsV2"): {"s3:ListBucket"},
    ("S3", "DeleteObject"): {"s3:DeleteObject"},
    ("S3", "CreateMultipartUpload"): {"s3:PutObject", "s3:PutObjectTagging"},
    ("S3", "UploadPart"): {"s3:PutObject"},
    ("S3", "CompleteMultipartUpload"): {"s3:PutObject"},
    ("S3", "ListParts"): {"s3:ListMultipartUploadParts"},
    ("S3", "AbortMultipartUpload"): {"s3:AbortMultipartUpload"},
    ("EventBridge", "PutEvents"): {"events:PutEvents"},
    # deliver sets when a failed delivery comes back; Lambda's poller receives and deletes.
    ("SQS", "ChangeMessageVisibility"): {"sqs:ChangeMessageVisibility"},
    # verify hands the rest of a large check to its own queue.
    ("SQS", "SendMessage"): {"sqs:SendMessage"},
    # The functions that sign URLs assume the signing role for it.
    ("STS", "AssumeRole"): {"sts:AssumeRole"},
}

# Roles of the template that are not a function's but whose grants the code needs, by the name
# the tests record their operations under: presigned URLs are the signing role's requests.
ROLES = {"UrlSigningRole": "url-signer"}


# The settings that name what a function reaches, and the operations that reach it: a function is
# given the setting exactly when it performs one of them.
SETTINGS = {
    "BUCKET_NAME": lambda service, operation: service == "S3",
    "URL_SIGNING_ROLE_ARN": lambda service, operation: (service, operation) == ("STS", "AssumeRole"),
    "EVENT_BUS_NAME": lambda service, operation: service == "EventBridge",
}


def read_template(template_path):
    template, matches = decode(template_path)
    if matches:
        sys.exit(f"check-iam: cannot read {template_path}: {matches}")
    return template


def functions(template):
    """(binary, properties) of every function of the template."""
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            # CodeUri is the function's bootstrap directory: target/lambda/<binary>/.
            yield str(Path(resource["Properties"]["CodeUri"]).name), resource["Properties"]


def environments(template):
    """{binary: names of the variables it is given}: the Globals' and its own."""
    variables = lambda properties: set(properties.get("Environment", {}).get("Variables", {}))
    common = variables(template.get("Globals", {}).get("Function", {}))
    return {binary: common | variables(properties) for binary, properties in functions(template)}


def granted_actions(template):
    """{binary: set of IAM actions its policies allow}, for every function of the template and
    the roles of ROLES.

    Only the function's own `Policies` count. What SAM adds for Lambda itself, which no code of
    ours performs, stays out of both sides of the check: the pollers' managed policies of its
    event sources (stream and queue reads), and the grants of its destinations (notify's stream
    failures: `Type: SQS` makes SAM grant sqs:SendMessage).
    """
    owners = [(binary, properties.get("Policies", [])) for binary, properties in functions(template)]
    for name, binary in ROLES.items():
        policies = template["Resources"][name]["Properties"].get("Policies", [])
        owners.append((binary, [policy["PolicyDocument"] for policy in policies]))
    granted = {}
    for binary, documents in owners:
        actions = set()
        for document in documents:
            for statement in document.get("Statement", []):
                if statement.get("Effect") != "Allow":
                    continue
                action = statement["Action"]
                actions.update([action] if isinstance(action, str) else action)
        granted[binary] = {str(a) for a in actions}
    return granted


def performed_operations(log_path):
    """{function: set of (service, operation)} from the tests' log."""
    performed = defaultdict(set)
    with open(log_path, encoding="utf-8") as log:
        for line in log:
            function, service, operation = line.split()
            performed[function].add((service, operation))
    return performed


def main():
    template_path, log_path = sys.argv[1], sys.argv[2]
    template = read_template(template_path)
    granted = granted_actions(template)
    environment = environments(template)
    performed = performed_operations(log_path)
    problems = []
    for function in sorted(set(granted) | set(performed)):
        if function not in granted:
            problems.append(f"{function}: performs AWS operations but has no function in the template")
            continue
        if function not in performed:
            problems.append(f"{function}: the tests recorded no operation of it")
            continue
        needed = set()
        for service, operation in sorted(performed[function]):
            actions = ACTIONS.get((service, operation))
            if actions is None:
                problems.append(f"{function}: calls {service} {operation}, which this check does not know; add it to ACTIONS")
                continue
            needed |= actions
            for action in sorted(actions - granted[function]):
                problems.append(f"{function}: calls {service} {operation}, needing {action}, which its policy does not allow")
        for action in sorted(granted[function] - needed):
            problems.append(f"{function}: its policy allows {action}, which no operation of its code needs")
        if function in environment:
            for setting, reaches in SETTINGS.items():
                needs = any(reaches(*operation) for operation in performed[function])
                given = setting in environment[function]
                if needs and not given:
                    problems.append(f"{function}: reaches what {setting} names, which the template does not give it")
                elif given and not needs:
                    problems.append(f"{function}: the template gives it {setting}, which no operation of its code needs")
    for problem in problems:
        print(f"check-iam: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)
    counts = ", ".join(f"{f} {len(performed[f])}" for f in sorted(performed))
    print(
        f"check-iam: every function's policy allows exactly what its code calls ({counts} operations), "
        f"and its environment names exactly what it reaches ({', '.join(SETTINGS)})"
    )


if __name__ == "__main__":
    main()
