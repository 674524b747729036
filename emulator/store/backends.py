"""moto's backends, reached from here only: the one place the emulator touches moto's models.

The emulator keeps its AWS state in moto's in-memory backends (IoT, S3, Lambda) and adds what moto
lacks beside them (:mod:`emulator.store.state`). Every other layer asks these functions, so a moto
upgrade that moves a backend changes this module and the store's, nothing else. moto is imported
when first needed: it is large, and the CLI should not pay for it unless the emulator runs.
"""

from __future__ import annotations

from typing import Any


def iot_backend(account: str, region: str) -> Any:
    """moto's AWS IoT backend of one account and region, its thing attachments indexed both ways
    (:mod:`emulator.store.principal_things`)."""
    from moto.iot.models import iot_backends

    from emulator.store.principal_things import indexed

    return indexed(iot_backends[account][region])


def iot_backends_in_use(account: str) -> dict[str, Any]:
    """moto's AWS IoT backends of one account by region, only the regions something has used so far."""
    from moto.iot.models import iot_backends

    return dict(dict.items(iot_backends[account]))  # dict's own items: moto creates a region on first access


def s3_backend(account: str) -> Any:
    """moto's S3 backend of one account (S3's buckets are global)."""
    from moto.s3.models import s3_backends

    return s3_backends[account]["global"]


def lambda_backend(account: str, region: str) -> Any:
    """moto's Lambda backend of one account and region."""
    from moto.awslambda.models import lambda_backends

    return lambda_backends[account][region]


def account_id_from(access_key: str) -> str:
    """The account moto gives an access key (its default account unless the key was made by STS or IAM)."""
    from moto.iam.models import get_account_id_from

    return get_account_id_from(access_key)


def iot_arn(region: str, account: str, resource: str) -> str:
    """An AWS IoT ARN in the region's partition (``aws``, ``aws-cn``, ``aws-us-gov``)."""
    from moto.utilities.utils import get_partition

    return f"arn:{get_partition(region)}:iot:{region}:{account}:{resource}"


def dynamodb_backend(account: str, region: str) -> Any:
    """moto's DynamoDB backend of one account and region."""
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[account][region]


def untrack_model_instances() -> None:
    """Stop moto keeping every model object it ever made (idempotent).

    moto's ``BaseModel.__new__`` appends each instance (an S3 object, its ACL and grants, a thing, a
    certificate) to a class-wide ``instances_tracked`` list, for its dashboard (``/moto-api/``) and for
    ``reset``; nothing removes them, deleted ones included, so an emulator that archives every device
    message grew by every object ever made. The emulator never resets moto (a snapshot replaces the
    backends) and serves no dashboard, so it makes them untracked and drops the lists.
    """
    from moto.core.common_models import BaseModel
    from moto.core.model_instances import reset_model_data

    if getattr(BaseModel.__new__, "__untracked_by_jitr__", False):
        return

    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return super(BaseModel, cls).__new__(cls)  # type: ignore[misc]  # moto's, without the list

    new.__untracked_by_jitr__ = True  # type: ignore[attr-defined]
    BaseModel.__new__ = staticmethod(new)  # type: ignore[method-assign]
    reset_model_data()
