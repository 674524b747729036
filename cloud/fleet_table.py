"""The provisioning API's fleet table, as the kit's commands use it (``jitr fleet admit``, reset).

One item per admitted serial: ``serial`` (the key), ``tokenHash`` (hex SHA-256 of the device's token;
the token itself is never stored), ``bindingCodeHash`` (likewise, of the code its user binds it with),
``status`` (ADMITTED, CLAIMED, REGISTERED), ``disabled``, ``failures`` and, once registered,
``certificateId`` and ``certificateArn`` (the thing is named after the serial). The provisioning function
(``functions/provisioning/fleet_rows.py``) reads and claims the same items. Errors are sentences
(:class:`base.errors.AwsError`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from base.errors import NotFoundError
from cloud.session import aws_error_code, failed_call

ADMITTED = "ADMITTED"
BATCH_GET = 100  # BatchGetItem takes at most 100 keys


@dataclass(frozen=True)
class FleetRow:
    serial: str
    status: str
    disabled: bool
    failures: int
    thing_name: str | None
    certificate_id: str | None
    certificate_arn: str | None

    @classmethod
    def of(cls, item: dict[str, Any]) -> FleetRow:
        def text(name: str) -> str | None:
            return item[name]["S"] if name in item else None

        return cls(
            serial=item["serial"]["S"],
            status=text("status") or ADMITTED,
            disabled=item.get("disabled", {}).get("BOOL", False),
            failures=int(item.get("failures", {}).get("N", "0")),
            thing_name=item["serial"]["S"] if text("certificateId") else None,
            certificate_id=text("certificateId"),
            certificate_arn=text("certificateArn"),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "status": self.status,
            "disabled": self.disabled,
            "failures": self.failures,
            "thingName": self.thing_name,
            "certificateId": self.certificate_id,
        }


class FleetTable:
    """The calls on one fleet table, through a boto3 DynamoDB client."""

    def __init__(self, client: Any, name: str) -> None:
        self._db = client
        self.name = name

    def _call(self, what: str, operation: Any, **kwargs: Any) -> Any:
        try:
            return operation(TableName=self.name, **kwargs)
        except Exception as exc:
            raise failed_call(exc, f"DynamoDB {what} on table {self.name}") from exc

    def existing(self, serials: list[str]) -> set[str]:
        """Which of ``serials`` are admitted already."""
        found: set[str] = set()
        for start in range(0, len(serials), BATCH_GET):
            keys: list[dict[str, Any]] = [{"serial": {"S": s}} for s in serials[start : start + BATCH_GET]]
            while keys:
                try:
                    answer = self._db.batch_get_item(
                        RequestItems={self.name: {"Keys": keys, "ProjectionExpression": "serial"}}
                    )
                except Exception as exc:
                    raise failed_call(exc, f"DynamoDB BatchGetItem on table {self.name}") from exc
                found.update(item["serial"]["S"] for item in answer["Responses"].get(self.name, []))
                keys = answer.get("UnprocessedKeys", {}).get(self.name, {}).get("Keys", [])
        return found

    def admit(self, serial: str, token_hash: str, now: int, binding_code_hash: str | None = None) -> bool:
        """A new row; False when the serial is admitted already (someone else got there first)."""
        try:
            self._db.put_item(
                TableName=self.name,
                Item={
                    "serial": {"S": serial},
                    "tokenHash": {"S": token_hash},
                    "status": {"S": ADMITTED},
                    "disabled": {"BOOL": False},
                    "admittedAt": {"N": str(now)},
                    **({"bindingCodeHash": {"S": binding_code_hash}} if binding_code_hash else {}),
                },
                ConditionExpression="attribute_not_exists(serial)",
            )
        except Exception as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise failed_call(exc, f"DynamoDB PutItem on table {self.name}") from exc
        return True

    def rotate(self, serial: str, token_hash: str) -> bool:
        """A new token for an admitted serial, which also enables it again; False when it is not admitted."""
        return self._update(
            serial,
            "SET tokenHash = :hash, disabled = :false REMOVE failures",
            {":hash": {"S": token_hash}, ":false": {"BOOL": False}},
        )

    def disable(self, serial: str) -> bool:
        """No request for the serial is accepted any more; False when it is not admitted."""
        return self._update(serial, "SET disabled = :true", {":true": {"BOOL": True}})

    def _update(self, serial: str, expression: str, values: dict[str, Any]) -> bool:
        try:
            self._db.update_item(
                TableName=self.name,
                Key={"serial": {"S": serial}},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(serial)",
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise failed_call(exc, f"DynamoDB UpdateItem on table {self.name}") from exc
        return True

    def remove(self, serial: str) -> None:
        self._call("DeleteItem", self._db.delete_item, Key={"serial": {"S": serial}})

    def rows(self) -> Iterator[FleetRow]:
        """Every row, a page at a time."""
        start: dict[str, Any] | None = None
        while True:
            page = self._call("Scan", self._db.scan, **({"ExclusiveStartKey": start} if start else {}))
            yield from (FleetRow.of(item) for item in page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                return


def fleet_table_of(session: Any, outputs: Mapping[str, str], stack: str, *, connections: int = 10) -> FleetTable:
    """The stack's fleet table (its FleetTableName output), or one sentence saying the stack has none;
    ``connections``: how many calls may be under way at once (botocore's pool keeps 10 by default)."""
    name = outputs.get("FleetTableName")
    if not name:
        raise NotFoundError(
            f"Stack {stack} has no provisioning API (no FleetTableName output): deploy it with "
            "PROVISIONING=api ./deploy.sh, or ProvisioningApi=true."
        )
    from botocore.config import Config

    return FleetTable(session.client("dynamodb", config=Config(max_pool_connections=max(10, connections))), name)
