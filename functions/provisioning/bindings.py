"""The bindings table: which user owns which device (``thingName`` -> ``owner``, the user pool's ``sub``),
with the index ``byOwner`` for a user's devices. A device has one owner: a binding is one conditional
write, so two users binding one device at once cannot both win.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from retrying import error_code

OWNER_INDEX = "byOwner"
MAX_DEVICES = 100  # what one user lists or binds; more is refused when binding


@dataclass(frozen=True)
class Binding:
    thing_name: str
    owner: str
    bound_at: int


class Bindings:
    def __init__(self, name: str, dynamodb: Any, call: Callable[..., Any]) -> None:
        self.name, self.dynamodb, self.call = name, dynamodb, call

    def bind(self, thing_name: str, owner: str, now: float | None = None) -> Binding | None:
        """Bind the device to ``owner`` (again, if it is theirs already); None when another user owns it."""
        bound_at = int(now if now is not None else time.time())
        item = {"thingName": {"S": thing_name}, "owner": {"S": owner}, "boundAt": {"N": str(bound_at)}}
        done = self._if_owner(self.dynamodb.put_item, owner, "attribute_not_exists(thingName) OR ", Item=item)
        return Binding(thing_name, owner, bound_at) if done else None

    def unbind(self, thing_name: str, owner: str) -> bool:
        """Remove the binding if it is ``owner``'s; False when it is not (or there is none)."""
        return self._if_owner(self.dynamodb.delete_item, owner, "", Key={"thingName": {"S": thing_name}})

    def _if_owner(self, operation: Callable[..., Any], owner: str, unless: str, **kwargs: Any) -> bool:
        """``operation`` on the row if ``owner`` owns it (or ``unless`` holds); False when the condition fails."""
        try:
            self.call(
                operation,
                TableName=self.name,
                ConditionExpression=f"{unless}#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
                **kwargs,
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def of_owner(self, owner: str, limit: int = MAX_DEVICES) -> list[Binding]:
        """The owner's devices, by name (at most ``limit``)."""
        found: list[Binding] = []
        start: dict[str, Any] | None = None
        while len(found) < limit:
            page = self.call(
                self.dynamodb.query,
                TableName=self.name,
                IndexName=OWNER_INDEX,
                KeyConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
                **({"ExclusiveStartKey": start} if start else {}),
            )
            found += [
                Binding(item["thingName"]["S"], item["owner"]["S"], int(item.get("boundAt", {}).get("N", "0")))
                for item in page.get("Items", [])
            ]
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        return sorted(found, key=lambda b: b.thing_name)[:limit]
