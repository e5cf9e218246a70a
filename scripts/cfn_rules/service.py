"""The service's own rules for template.yaml, run by cfn-lint (`--append-rules scripts/cfn_rules`).

cfn-lint checks what any template must hold; these hold what this service relies on and no
emulator can show: that nothing the triggers fail to handle is dropped, that no burst of events
takes the account's concurrency from the API, that an operator hears of every failure, and that
the dashboard is one CloudWatch can show. cfn-lint checks a SAM template untransformed,
so they read event source mappings both as resources and as SAM functions' `Events`.
scripts/cfn_rules/unguarded.yaml breaks each rule once; scripts/test holds them to finding it.
"""

import json
import re

from cfnlint.rules import CloudFormationLintRule, RuleMatch


def _resource_of(arn):
    """The logical id and attribute of a `!GetAtt X.Attr` ARN, else (None, None)."""
    if isinstance(arn, dict) and "Fn::GetAtt" in arn:
        target = arn["Fn::GetAtt"]
        if isinstance(target, str):
            target = target.split(".", 1)
        return target[0], target[1]
    return None, None


# SAM's event types that become event source mappings, and the property naming their source.
SAM_SOURCES = {"SQS": "Queue", "DynamoDB": "Stream", "Kinesis": "Stream"}


def _mappings(cfn):
    """(path, name, properties, kind, source id) of each event source mapping, written as a
    mapping or as a SAM function's event; kind is "queue", "stream" or None when the template
    does not say."""
    resources = cfn.get_resources()
    found = []
    for name, resource in cfn.get_resources(["AWS::Lambda::EventSourceMapping"]).items():
        found.append(
            (["Resources", name, "Properties"], name, resource.get("Properties", {}), "EventSourceArn")
        )
    for function, resource in cfn.get_resources(["AWS::Serverless::Function"]).items():
        for event, spec in resource.get("Properties", {}).get("Events", {}).items():
            if spec.get("Type") in SAM_SOURCES:
                path = ["Resources", function, "Properties", "Events", event, "Properties"]
                found.append(
                    (path, f"{function}'s {event}", spec.get("Properties", {}), SAM_SOURCES[spec["Type"]])
                )
    for path, name, properties, source_key in found:
        source, attribute = _resource_of(properties.get(source_key))
        if resources.get(source, {}).get("Type") == "AWS::SQS::Queue":
            kind = "queue"
        elif attribute == "StreamArn":
            kind = "stream"
        else:
            kind = None
        yield path, name, properties, kind, source


class FailuresAreKept(CloudFormationLintRule):
    """What a trigger or a rule could not handle goes somewhere an operator can redrive it."""

    id = "E9101"
    shortdesc = "Nothing a trigger or a rule fails on is dropped"
    description = (
        "An event rule's targets retry and keep what they cannot deliver in a dead-letter "
        "queue; a queue a function reads redrives to one; a stream mapping gives up after a "
        "bounded number of retries into an on-failure destination."
    )
    source_url = "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html"
    tags = ["upload-service"]

    def match(self, cfn):
        matches = []
        for name, rule in cfn.get_resources(["AWS::Events::Rule"]).items():
            targets = rule.get("Properties", {}).get("Targets", [])
            for index, target in enumerate(targets):
                path = ["Resources", name, "Properties", "Targets", index]
                if not target.get("DeadLetterConfig", {}).get("Arn"):
                    matches.append(
                        RuleMatch(path, f"{name}'s target {index} has no DeadLetterConfig")
                    )
                if "RetryPolicy" not in target:
                    matches.append(RuleMatch(path, f"{name}'s target {index} has no RetryPolicy"))
        queues = cfn.get_resources(["AWS::SQS::Queue"])
        for path, name, properties, kind, source in _mappings(cfn):
            if kind == "queue":
                if "RedrivePolicy" not in queues[source].get("Properties", {}):
                    matches.append(
                        RuleMatch(path, f"{name} reads {source}, which has no RedrivePolicy")
                    )
            elif kind == "stream":
                retries = properties.get("MaximumRetryAttempts", -1)
                if retries == -1:
                    matches.append(
                        RuleMatch(path, f"{name} retries a failing batch until it expires")
                    )
                if not properties.get("DestinationConfig", {}).get("OnFailure"):
                    matches.append(
                        RuleMatch(path, f"{name} has no on-failure destination")
                    )
        return matches


class ConcurrencyIsBounded(CloudFormationLintRule):
    """A burst of events waits in its queue or stream instead of taking the API's concurrency,
    and every reservation can be switched off for accounts with a small quota."""

    id = "E9102"
    shortdesc = "No trigger's concurrency grows with a burst of events"
    description = (
        "A queue mapping sets ScalingConfig.MaximumConcurrency; a stream mapping runs one batch "
        "per shard (ParallelizationFactor 1); ReservedConcurrentExecutions is an Fn::If with an "
        "AWS::NoValue branch, since AWS refuses a reservation that leaves an account fewer than "
        "100 unreserved executions."
    )
    source_url = "https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html"
    tags = ["upload-service"]

    def match(self, cfn):
        matches = []
        for path, name, properties, kind, source in _mappings(cfn):
            if kind == "queue":
                if "MaximumConcurrency" not in properties.get("ScalingConfig", {}):
                    matches.append(
                        RuleMatch(path, f"{name} (of {source}) sets no MaximumConcurrency")
                    )
            elif kind == "stream":
                if properties.get("ParallelizationFactor", 1) != 1:
                    matches.append(
                        RuleMatch(path, f"{name} runs more than one batch per shard")
                    )
            else:
                matches.append(RuleMatch(path, f"{name} reads a source this rule cannot tell"))
        functions = cfn.get_resources(["AWS::Lambda::Function", "AWS::Serverless::Function"])
        for name, function in functions.items():
            reserved = function.get("Properties", {}).get("ReservedConcurrentExecutions")
            if reserved is None:
                continue
            branches = reserved.get("Fn::If", [])[1:] if isinstance(reserved, dict) else []
            if {"Ref": "AWS::NoValue"} not in branches:
                path = ["Resources", name, "Properties", "ReservedConcurrentExecutions"]
                matches.append(
                    RuleMatch(path, f"{name} reserves concurrency that cannot be switched off")
                )
        return matches


def _walk(node):
    """Every dict and list inside `node`, `node` included."""
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        yield from _walk(child)


def _watched(alarm):
    """(the resources an alarm's metrics name, the names of those metrics)."""
    resources, metrics = set(), set()
    for node in _walk(alarm.get("Properties", {})):
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("Ref"), str):
            resources.add(node["Ref"])
        source, _ = _resource_of(node)
        if source:
            resources.add(source)
        if isinstance(node.get("MetricName"), str):
            metrics.add(node["MetricName"])
    return resources, metrics


def _dead_letter_queues(cfn):
    """{queue id: path} of every queue something puts what it failed on in."""
    found = {}
    for name, queue in cfn.get_resources(["AWS::SQS::Queue"]).items():
        redrive = queue.get("Properties", {}).get("RedrivePolicy", {})
        source, _ = _resource_of(redrive.get("deadLetterTargetArn"))
        if source:
            found[source] = ["Resources", name, "Properties", "RedrivePolicy"]
    for name, rule in cfn.get_resources(["AWS::Events::Rule"]).items():
        for index, target in enumerate(rule.get("Properties", {}).get("Targets", [])):
            source, _ = _resource_of(target.get("DeadLetterConfig", {}).get("Arn"))
            if source:
                found[source] = ["Resources", name, "Properties", "Targets", index]
    for path, _, properties, _, _ in _mappings(cfn):
        on_failure = properties.get("DestinationConfig", {}).get("OnFailure", {})
        source, _ = _resource_of(on_failure.get("Destination"))
        if source:
            found[source] = path
    return found


class FailuresRaiseAlarms(CloudFormationLintRule):
    """An operator hears of what fails: a message in any dead-letter queue, and any error or
    throttle of any function, raise an alarm."""

    id = "E9103"
    shortdesc = "Every dead-letter queue and every function has an alarm"
    description = (
        "Each queue that receives what something failed on has an alarm on "
        "ApproximateNumberOfMessagesVisible; each function has an alarm on its Errors and "
        "Throttles."
    )
    source_url = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html"
    tags = ["upload-service"]

    def match(self, cfn):
        watched = [_watched(alarm) for alarm in cfn.get_resources(["AWS::CloudWatch::Alarm"]).values()]

        def alarmed(resource, *metrics):
            return any(resource in names and set(metrics) <= seen for names, seen in watched)

        matches = []
        for queue, path in _dead_letter_queues(cfn).items():
            if not alarmed(queue, "ApproximateNumberOfMessagesVisible"):
                matches.append(RuleMatch(path, f"no alarm on messages in dead-letter queue {queue}"))
        functions = cfn.get_resources(["AWS::Lambda::Function", "AWS::Serverless::Function"])
        for name in functions:
            if not alarmed(name, "Errors", "Throttles"):
                matches.append(
                    RuleMatch(["Resources", name], f"no alarm on {name}'s errors and throttles")
                )
        return matches


class DashboardsAreJson(CloudFormationLintRule):
    """A dashboard's body is JSON once `Fn::Sub` has filled it in: CloudFormation takes any
    string, and the console then shows a broken dashboard. (cfn-lint checks what `Fn::Sub`
    names.)"""

    id = "E9104"
    shortdesc = "A dashboard's body is JSON"
    description = "Each AWS::CloudWatch::Dashboard's DashboardBody parses as JSON after Fn::Sub."
    source_url = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html"
    tags = ["upload-service"]

    def match(self, cfn):
        matches = []
        for name, dashboard in cfn.get_resources(["AWS::CloudWatch::Dashboard"]).items():
            path = ["Resources", name, "Properties", "DashboardBody"]
            body = dashboard.get("Properties", {}).get("DashboardBody")
            if isinstance(body, dict) and "Fn::Sub" in body:
                body = body["Fn::Sub"]
            if not isinstance(body, str):
                matches.append(RuleMatch(path, f"{name}'s body is neither a string nor a Fn::Sub"))
                continue
            try:
                json.loads(re.sub(r"\$\{[^}]+\}", "x", body))
            except json.JSONDecodeError as err:
                where = f"line {err.lineno}, column {err.colno}"
                matches.append(RuleMatch(path, f"{name}'s body is not JSON ({where})"))
        return matches
