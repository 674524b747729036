"""The fleet table: one row per admitted serial, written by ``jitr fleet admit`` and read here.

A row holds the hash of the device's token (``tokenHash``, hex SHA-256; the token itself is never
stored), its ``status`` (ADMITTED, CLAIMED while a request works on it, REGISTERED), ``disabled``
(always present: true once too many wrong tokens were sent, or the operator disabled it), ``failures``,
and once registered its ``certificateId`` and ``certificateArn`` (the thing is named after the serial).

A request claims the row with one conditional write before any IoT call (the token's hash, the status it
expects, not disabled), so two requests for one serial never both register: the second finds it CLAIMED
and is answered 409. Only when the claim fails is the row read, to say why. The claim is a lease
(``claimedUntil``): a request that died holding it is taken over once the lease has passed. Finishing
or undoing a claim is conditional on the claim being this request's (``claimId``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from retrying import error_code

ADMITTED, CLAIMED, REGISTERED = "ADMITTED", "CLAIMED", "REGISTERED"
_DUMMY_HASH = hashlib.sha256(b"no such serial").hexdigest()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Row:
    serial: str
    token_hash: str
    status: str
    disabled: bool
    failures: int
    certificate_id: str | None = None
    certificate_arn: str | None = None
    claimed_until: int = 0
    previous_status: str | None = None  # while CLAIMED: the status the claim undoes to
    binding_code_hash: str | None = None  # the hash of the code that proves a user holds the device

    @property
    def status_before_claim(self) -> str:
        return (self.previous_status or ADMITTED) if self.status == CLAIMED else self.status

    @classmethod
    def of(cls, item: dict[str, Any]) -> Row:
        def text(name: str) -> str | None:
            return item[name]["S"] if name in item else None

        return cls(
            serial=item["serial"]["S"],
            token_hash=text("tokenHash") or "",
            status=text("status") or ADMITTED,
            disabled=item.get("disabled", {}).get("BOOL", False),
            failures=int(item.get("failures", {}).get("N", "0")),
            certificate_id=text("certificateId"),
            certificate_arn=text("certificateArn"),
            claimed_until=int(item.get("claimedUntil", {}).get("N", "0")),
            previous_status=text("previousStatus"),
            binding_code_hash=text("bindingCodeHash"),
        )


def token_matches(row: Row | None, token: str) -> bool:
    """Constant-time comparison of the token's hash with the row's (an unknown serial costs the same)."""
    same = hmac.compare_digest(token_hash(token), row.token_hash if row is not None else _DUMMY_HASH)
    return same and row is not None


def binding_code_hash(code: str) -> str:
    """The hash kept of a binding code, read as printed: case, blanks and dashes do not count."""
    return hashlib.sha256("".join(code.split()).replace("-", "").upper().encode()).hexdigest()


def code_matches(row: Row | None, code: str) -> bool:
    """Constant-time comparison of the code's hash with the row's (a device without a code costs the same)."""
    kept = row.binding_code_hash if row is not None and row.binding_code_hash else _DUMMY_HASH
    return hmac.compare_digest(binding_code_hash(code), kept) and kept != _DUMMY_HASH


@dataclass(frozen=True)
class FleetTable:
    name: str
    dynamodb: Any
    call: Callable[..., Any]

    def _key(self, serial: str) -> dict[str, Any]:
        return {"serial": {"S": serial}}

    def get(self, serial: str) -> Row | None:
        item = self.call(self.dynamodb.get_item, TableName=self.name, Key=self._key(serial), ConsistentRead=True)
        return Row.of(item["Item"]) if "Item" in item else None

    def record_failure(self, serial: str, limit: int) -> bool:
        """Count a wrong token for an admitted serial; True when that disabled it."""
        try:
            answer = self.call(
                self.dynamodb.update_item,
                TableName=self.name,
                Key=self._key(serial),
                UpdateExpression="ADD failures :one",
                ConditionExpression="attribute_exists(serial)",
                ExpressionAttributeValues={":one": {"N": "1"}},
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False  # not admitted: nothing to count
            raise
        if int(answer["Attributes"]["failures"]["N"]) < limit:
            return False
        self.call(
            self.dynamodb.update_item,
            TableName=self.name,
            Key=self._key(serial),
            UpdateExpression="SET disabled = :true",
            ExpressionAttributeValues={":true": {"BOOL": True}},
        )
        return True

    def claim(
        self, serial: str, hashed: str, expected: str, claim_id: str, *, now: int, lease: int, lapsed: bool = False
    ) -> Row | None:
        """Claim the row in one conditional write: its token hash is ``hashed``, it is not disabled and its status
        is ``expected`` (``lapsed``: it is CLAIMED by a request that found it so and whose lease has passed). The
        row as it was, or None when a condition fails (the caller reads the row to say which). The expressions are
        kept short: moto's DynamoDB parses them anew on every call, and that is most of what a request costs the
        emulator."""
        condition = "tokenHash = :hash AND disabled = :false AND #s = :before"
        values = {":hash": {"S": hashed}, ":false": {"BOOL": False}, ":before": {"S": expected}}
        if lapsed:
            condition = (
                "tokenHash = :hash AND disabled = :false AND #s = :claimed AND claimedUntil < :now "
                "AND previousStatus = :before"
            )
            values |= {":now": {"N": str(now)}}
        try:
            answer = self.call(
                self.dynamodb.update_item,
                TableName=self.name,
                Key=self._key(serial),
                UpdateExpression="SET #s = :claimed, claimId = :id, claimedUntil = :until, previousStatus = :before",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values
                | {":claimed": {"S": CLAIMED}, ":id": {"S": claim_id}, ":until": {"N": str(now + lease)}},
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise
        return Row.of(answer["Attributes"])

    def _settle(self, serial: str, claim_id: str, update: str, values: dict[str, Any]) -> None:
        self.call(
            self.dynamodb.update_item,
            TableName=self.name,
            Key=self._key(serial),
            UpdateExpression=update,
            ConditionExpression="claimId = :id",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":id": {"S": claim_id}, **values},
        )

    def registered(self, serial: str, claim_id: str, *, certificate_id: str, arn: str) -> None:
        self._settle(
            serial,
            claim_id,
            "SET #s = :registered, certificateId = :cert, certificateArn = :arn",
            {":registered": {"S": REGISTERED}, ":cert": {"S": certificate_id}, ":arn": {"S": arn}},
        )

    def release(self, serial: str, claim_id: str, status: str) -> None:
        """Undo the claim: the row goes back to ``status``, as it was before it."""
        self._settle(serial, claim_id, "SET #s = :before", {":before": {"S": status}})

    def deprovisioned(self, serial: str, claim_id: str, *, disable: bool) -> None:
        """The device is gone from AWS IoT: admitted again (or disabled), its token unchanged."""
        self._settle(
            serial,
            claim_id,
            "SET #s = :admitted, disabled = :disabled REMOVE certificateId, certificateArn",
            {":admitted": {"S": ADMITTED}, ":disabled": {"BOOL": disable}},
        )
