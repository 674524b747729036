"""The rules engine: every message (device publishes and ``$aws/events``) against the topic rules.

Rules are those CreateTopicRule stored in the emulator. A matching rule runs its actions: S3
(bucket and key substitution templates; the object lands in the emulator's S3), Lambda (run
in-process and asynchronously, only if the function lets iot.amazonaws.com invoke it),
republish, DynamoDBv2 (each top-level field of the SELECT result an attribute of the item put in the
table), and CloudWatch Logs (kept in memory and in the state folder). When an action fails,
the rule's errorAction receives AWS's error payload, so failures are never silent.
"""

from __future__ import annotations

import base64
import decimal
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emulator.lambdas.log_groups import LogGroups
from emulator.lambdas.runtime import LambdaRuntime
from emulator.rules import substitution
from emulator.rules.sql import MessageContext, Result, Rule, RuleEvaluationError
from emulator.store.backends import dynamodb_backend, s3_backend

log = logging.getLogger("jitr.emulator.rules")


class ActionFailed(Exception):
    def __init__(self, action: str, resource: str, message: str) -> None:
        super().__init__(message)
        self.action, self.resource = action, resource


class RulesEngine:
    def __init__(
        self,
        registry,
        *,
        lambdas: LambdaRuntime | None = None,
        publish: Callable[[str, bytes], None] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.registry = registry
        self.lambdas = lambdas
        self.publish = publish or (lambda topic, payload: None)
        self.log_groups = LogGroups(log_dir) if log_dir is not None else None
        self.logs: list[tuple[str, str]] = []  # (log group, message) written by cloudwatchLogs actions
        self._parsed: dict[tuple[str, str], Rule | None] = {}
        self._lock = threading.Lock()
        self.s3_puts = 0
        self.failures = 0

    def _rule(self, name: str, sql: str) -> Rule | None:
        key = (name, sql)
        if key not in self._parsed:
            try:
                self._parsed[key] = Rule.parse(sql)
            except Exception as exc:
                log.error("rule %s has SQL the emulator cannot parse: %s", name, exc)
                self._parsed[key] = None
        return self._parsed[key]

    def handle(self, info, topic: str, payload: bytes) -> None:
        """Run every enabled rule whose SQL matches this message."""
        attributes = info.attributes if info is not None else {}
        ctx = MessageContext.received(
            topic,
            payload,
            client_id=info.client_id if info is not None else None,
            principal=attributes.get("principal"),
        )
        for record in self.registry.topic_rules():
            rule = self._rule(record.name, record.sql)
            if rule is None or not rule.matches_topic(topic):
                continue
            try:
                result = rule.evaluate(ctx)
            except RuleEvaluationError as exc:
                self._error_action(record, ctx, [ActionFailed("sql", record.name, str(exc))])
                continue
            if result is None:
                continue
            failures = []
            for action in record.actions:
                try:
                    self.run_action(action, ctx, result, record)
                except ActionFailed as exc:
                    failures.append(exc)
                except Exception as exc:  # an action must never break the broker's event thread
                    failures.append(ActionFailed(next(iter(action), "?"), "", str(exc)))
            if failures:
                self._error_action(record, ctx, failures)

    def run_action(self, action: dict[str, Any], ctx: MessageContext, result: Result, record) -> None:
        kind, spec = next(iter(action.items()))
        if kind == "s3":
            self._s3(spec, ctx, result.payload)
        elif kind == "lambda":
            self._lambda(spec, result, record)
        elif kind == "republish":
            self.publish(substitution.render(spec["topic"], ctx), result.payload)
        elif kind == "dynamoDBv2":
            self._dynamodb(spec, ctx, result)
        elif kind == "cloudwatchLogs":
            self._log(spec["logGroupName"], result.payload.decode(errors="replace"))
        else:
            raise ActionFailed(kind, "", f"the emulator does not run {kind} actions")

    def _s3(self, spec: dict[str, Any], ctx: MessageContext, body: bytes) -> None:
        bucket = substitution.render(spec["bucketName"], ctx)
        key = substitution.render(spec["key"], ctx)
        backend = s3_backend(self.registry.account)
        try:
            backend.put_object(bucket, key, body)
        except Exception as exc:
            raise ActionFailed("S3Action", bucket, f"PutObject {bucket}/{key} failed: {exc}") from exc
        with self._lock:
            self.s3_puts += 1

    def _dynamodb(self, spec: dict[str, Any], ctx: MessageContext, result: Result) -> None:
        """AWS's DynamoDBv2 action: the message must be a JSON object; each of its fields becomes an attribute."""
        from boto3.dynamodb.types import TypeSerializer

        table = substitution.render(spec["putItem"]["tableName"], ctx)
        try:
            values = json.loads(result.payload, parse_float=decimal.Decimal)
        except ValueError:
            values = None
        if not isinstance(values, dict):
            raise ActionFailed("DynamoDBv2Action", table, "The message is not a JSON object, so it has no attributes")
        serializer = TypeSerializer()
        try:
            item = {name: serializer.serialize(value) for name, value in values.items()}
            dynamodb_backend(self.registry.account, self.registry.region).put_item(table, item)
        except Exception as exc:
            raise ActionFailed("DynamoDBv2Action", table, f"PutItem {table} failed: {exc}") from exc

    def _lambda(self, spec: dict[str, Any], result: Result, record) -> None:
        if self.lambdas is None:
            raise ActionFailed("LambdaAction", spec["functionArn"], "no Lambda runtime")
        try:
            event = json.loads(result.payload) if result.values is not None else result.payload
        except ValueError:
            event = result.payload
        try:
            self.lambdas.invoke_async(spec["functionArn"], event, principal="iot.amazonaws.com", source_arn=record.arn)
        except Exception as exc:
            raise ActionFailed("LambdaAction", spec["functionArn"], str(exc)) from exc

    def _log(self, group: str, message: str) -> None:
        with self._lock:
            self.logs.append((group, message))
        if self.log_groups is not None:
            self.log_groups.put(group, [message])

    def _error_action(self, record, ctx: MessageContext, failures: list[ActionFailed]) -> None:
        with self._lock:
            self.failures += 1
        log.warning("rule %s failed: %s", record.name, "; ".join(str(f) for f in failures))
        if not record.error_action:
            return
        payload = {
            "ruleName": record.name,
            "topic": ctx.topic,
            "cloudwatchTraceId": ctx.trace_id,
            "clientId": ctx.client_id,
            "base64OriginalPayload": base64.b64encode(ctx.payload).decode(),
            "failures": [
                {"failedAction": f.action, "failedResource": f.resource, "errorMessage": str(f)} for f in failures
            ],
        }
        body = json.dumps(payload).encode()
        try:
            self.run_action(record.error_action, ctx, Result(body, payload), record)
        except Exception as exc:  # AWS drops an error action's own failure, and so do we, loudly
            log.error("errorAction of rule %s failed too: %s", record.name, exc)
