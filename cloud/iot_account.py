"""AWS IoT calls about the account rather than one device: provisioning templates and the claim certificate
(``jitr fleet claim``), the account-wide reads of ``jitr audit``, and AWS IoT's logging settings.

:class:`IotAccount` is :class:`cloud.iot.IotApi` (the one seam: same errors, same retries) with these
calls added; the commands that need them connect with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from base.errors import AwsError
from cloud.iot import IotApi


class IotAccount(IotApi):
    """:class:`IotApi` plus templates, the account's reads (audit) and its logging settings."""

    # -- provisioning templates (jitr fleet claim) -------------------------------------------------------

    def describe_provisioning_template(self, name: str) -> dict | None:
        """The provisioning template ``name`` as AWS IoT describes it, or None if there is none."""
        return self.found("describe_provisioning_template", templateName=name)

    def create_provisioning_template(self, name: str, body: str, *, role_arn: str, hook: dict | None) -> str:
        """Create an enabled FLEET_PROVISIONING template; its ARN."""
        params: dict[str, Any] = {"preProvisioningHook": hook} if hook else {}
        answer = self.call(
            "create_provisioning_template",
            templateName=name,
            templateBody=body,
            provisioningRoleArn=role_arn,
            enabled=True,
            type="FLEET_PROVISIONING",
            **params,
        )
        return answer["templateArn"]

    def update_provisioning_template(self, name: str, **params: Any) -> None:
        self.call("update_provisioning_template", templateName=name, **params)

    def list_provisioning_templates(self) -> list[dict]:
        return self.pages("list_provisioning_templates", "templates", "nextToken", "nextToken")

    def delete_provisioning_template(self, name: str) -> bool:
        return self._unless_missing("delete_provisioning_template", templateName=name)

    def create_keys_and_certificate(self) -> dict:
        """An ACTIVE certificate and its key pair, made by AWS IoT (``certificateId``, ``certificateArn``,
        ``certificatePem``, ``keyPair.PrivateKey``)."""
        return self.call("create_keys_and_certificate", setAsActive=True)

    def certificate_status(self, certificate_id: str) -> str | None:
        """The certificate's status, or None if AWS IoT does not have it."""
        described = self.describe_certificate(certificate_id)
        return None if described is None else described["status"]

    # -- reading the account (jitr audit) ------------------------------------------------------------

    def certificate_pages(self, *, page_size: int = 250, ca_certificate_id: str | None = None) -> Iterator[list[dict]]:
        """The account's certificates (or one CA's), a page at a time: ``certificateId``, ``certificateArn``,
        ``status``, ``creationDate``. Only the page in hand is held."""
        operation = "list_certificates"
        params: dict[str, Any] = {"pageSize": page_size}
        if ca_certificate_id is not None:
            operation, params = "list_certificates_by_ca", {**params, "caCertificateId": ca_certificate_id}
        marker = None
        while True:
            answer = self.call(operation, **params, **({"marker": marker} if marker else {}))
            yield answer.get("certificates") or []
            marker = answer.get("nextMarker")
            if not marker:
                return

    def describe_certificate(self, certificate_id: str) -> dict | None:
        """DescribeCertificate's ``certificateDescription`` (with ``certificatePem``), or None if it is gone."""
        answer = self.found("describe_certificate", certificateId=certificate_id)
        return None if answer is None else answer["certificateDescription"]

    def list_ca_certificates(self) -> list[dict]:
        return self.pages("list_ca_certificates", "certificates", "marker", "nextMarker", pageSize=250)

    def list_policies(self) -> list[dict]:
        return self.pages("list_policies", "policies", "marker", "nextMarker", pageSize=250)

    def policy_document(self, policy_name: str) -> str | None:
        """The policy's default version's document (JSON text), or None if the policy is gone."""
        answer = self.found("get_policy", policyName=policy_name)
        return None if answer is None else answer["policyDocument"]

    def thing_pages(self, *, page_size: int = 250) -> Iterator[list[dict]]:
        """Every thing (``thingName``, ``attributes``), a page at a time."""
        token = None
        while True:
            answer = self.call("list_things", maxResults=page_size, **({"nextToken": token} if token else {}))
            yield answer.get("things") or []
            token = answer.get("nextToken")
            if not token:
                return

    def topic_rule_sqls(self) -> dict[str, str]:
        """Each enabled topic rule's SQL, by rule name."""
        rules = self.pages("list_topic_rules", "rules", "nextToken", "nextToken")
        found = {}
        for rule in rules:
            if rule.get("ruleDisabled"):
                continue
            payload = self.call("get_topic_rule", ruleName=rule["ruleName"]).get("rule") or {}
            found[rule["ruleName"]] = payload.get("sql", "")
        return found

    def v2_logging_options(self) -> dict | None:
        """GetV2LoggingOptions' answer, or None when logging was never configured (NotConfiguredException)."""
        try:
            answer = self.call("get_v2_logging_options")
        except AwsError as exc:
            if exc.code == "NotConfiguredException":
                return None
            raise
        return {key: value for key, value in answer.items() if key != "ResponseMetadata"}

    def set_v2_logging_options(self, *, role_arn: str | None, level: str, disable_all: bool = False) -> None:
        params: dict[str, Any] = {"defaultLogLevel": level, "disableAllLogs": disable_all}
        if role_arn:
            params["roleArn"] = role_arn
        self.call("set_v2_logging_options", **params)
