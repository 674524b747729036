"""One activation of a certificate at a time: a claim per certificate in a DynamoDB table.

AWS IoT publishes the registration event again on every connect while the certificate is still
PENDING_ACTIVATION, so a batch of devices switched on together invokes the function three or four
times a device. Without a claim each of those invocations spends a DescribeCertificate (10/s by
default) and often the whole activation again. With one, the first invocation for a certificate
claims it with a conditional write and goes on; the others find the claim held and stop without
an IoT call. A claim is a lease: an invocation that dies (a timeout, a crash) leaves it behind, and
once ``leaseUntil`` has passed the next event takes it over, so no device stays pending (Lambda's own
retry of that invocation, which keeps its request id, takes it over at once). An
invocation that does not activate (refused, ignored, an error) releases its claim at once, so the
device's next connect is decided afresh. A finished activation keeps its claim until the lease
ends: the late events of its own batch find it and stop. DynamoDB's TTL (``expiresAt``) removes
old claims.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_calls import error_code
from botocore.exceptions import ClientError

DEFAULT_LEASE_SECONDS = 90  # longer than the function's Timeout (60 s): a live invocation keeps its claim


@dataclass(frozen=True)
class Claims:
    table: str
    dynamodb: Any
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    clock: Callable[[], float] = time.time

    def take(self, certificate_id: str, owner: str, call: Callable[..., Any]) -> bool:
        """Claim the certificate for ``owner`` (an invocation); False when another holds a live claim."""
        now = int(self.clock())
        until = now + self.lease_seconds
        try:
            call(
                self.dynamodb.put_item,
                TableName=self.table,
                Item={
                    "certificateId": {"S": certificate_id},
                    "owner": {"S": owner},
                    "leaseUntil": {"N": str(until)},
                    "expiresAt": {"N": str(until)},
                },
                # free, or its lease is over, or it is this invocation's own: Lambda retries a failed or timed-out
                # asynchronous invocation with the same request id, after the attempt that held the claim ended
                ConditionExpression="attribute_not_exists(certificateId) OR leaseUntil < :now OR #owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":now": {"N": str(now)}, ":owner": {"S": owner}},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release(self, certificate_id: str, owner: str, call: Callable[..., Any]) -> None:
        """Give the claim up, if it is still ``owner``'s (a later invocation may have taken it over)."""
        try:
            call(
                self.dynamodb.delete_item,
                TableName=self.table,
                Key={"certificateId": {"S": certificate_id}},
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
