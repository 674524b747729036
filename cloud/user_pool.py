"""A user's calls to a Cognito user pool through its app client: sign up, confirm, sign in, refresh.

These are Cognito's public calls (no AWS credentials needed: a phone has none). Where the shell has AWS
credentials (the local emulator, an operator's machine) the requests are signed, which Cognito accepts as
well; without any they go unsigned. The answers' errors are sentences for the person at the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from base.errors import AwsError, InvalidInputError, NotFoundError
from cloud.session import aws_error_parts, aws_failure, client_config

# Cognito's error codes, and what the person typing should hear
_SENTENCES = {
    "NotAuthorizedException": "Wrong e-mail or password (or the account is disabled).",
    "UserNotConfirmedException": "The account is not confirmed yet: run 'jitr app confirm CODE' (the e-mailed code).",
    "UsernameExistsException": "An account with this e-mail exists already: sign in with 'jitr app login'.",
    "CodeMismatchException": "The confirmation code is wrong.",
    "ExpiredCodeException": "The confirmation code has expired: sign up again for a new one.",
    "InvalidPasswordException": "The password is too weak: {message}",
    "UserNotFoundException": "Wrong e-mail or password (or the account is disabled).",
    "TooManyRequestsException": "Cognito is throttling these requests; wait a little and try again.",
    "LimitExceededException": "Too many attempts; wait a while and try again.",
}


class SignInRefusedError(AwsError):
    """Cognito refused the sign-up, confirmation or sign-in: one sentence says why."""


@dataclass(frozen=True)
class Tokens:
    id_token: str
    access_token: str
    refresh_token: str | None
    expires_in: int


class UserPool:
    """The app client ``client_id`` of a user pool in ``region``."""

    def __init__(self, client_id: str, region: str, session: Any) -> None:
        if not client_id:
            raise InvalidInputError("The user pool's app client id is empty.")
        self.client_id, self.region = client_id, region
        from botocore import UNSIGNED

        options: dict[str, Any] = {} if session.get_credentials() is not None else {"signature_version": UNSIGNED}
        self._idp = session.client("cognito-idp", region_name=region, config=client_config(**options))

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._idp, operation)(ClientId=self.client_id, **kwargs)
        except Exception as exc:
            code, message = aws_error_parts(exc)
            if code == "ResourceNotFoundException":
                raise NotFoundError(f"The user pool has no app client {self.client_id} in {self.region}.") from exc
            if code in _SENTENCES:
                raise SignInRefusedError(_SENTENCES[code].format(message=message.rstrip("."))) from exc
            failure = aws_failure(exc)
            if failure is not None:
                raise failure from exc
            raise

    def sign_up(self, email: str, password: str) -> bool:
        """A new account; True when Cognito confirmed it at once (no code to enter)."""
        answer = self._call(
            "sign_up", Username=email, Password=password, UserAttributes=[{"Name": "email", "Value": email}]
        )
        return bool(answer.get("UserConfirmed"))

    def confirm(self, email: str, code: str) -> None:
        self._call("confirm_sign_up", Username=email, ConfirmationCode=code)

    def sign_in(self, email: str, password: str) -> Tokens:
        answer = self._call(
            "initiate_auth", AuthFlow="USER_PASSWORD_AUTH", AuthParameters={"USERNAME": email, "PASSWORD": password}
        )
        return _tokens(answer, None)

    def refresh(self, refresh_token: str) -> Tokens:
        answer = self._call(
            "initiate_auth", AuthFlow="REFRESH_TOKEN_AUTH", AuthParameters={"REFRESH_TOKEN": refresh_token}
        )
        return _tokens(answer, refresh_token)


def _tokens(answer: dict[str, Any], refresh_token: str | None) -> Tokens:
    result = answer.get("AuthenticationResult")
    if not result:
        challenge = answer.get("ChallengeName", "a challenge")
        raise SignInRefusedError(f"Cognito asks for {challenge}, which 'jitr app' does not answer.")
    return Tokens(
        id_token=result["IdToken"],
        access_token=result["AccessToken"],
        refresh_token=result.get("RefreshToken") or refresh_token,
        expires_in=int(result.get("ExpiresIn", 3600)),
    )
