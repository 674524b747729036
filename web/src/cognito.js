// The user pool's public calls (no AWS credentials: a browser has none), as AWS's JavaScript SDK makes them:
// a JSON POST to cognito-idp with the operation in X-Amz-Target.
const TIMEOUT_MS = 10000;
const SENTENCES = {
  NotAuthorizedException: "Wrong e-mail or password.",
  UserNotFoundException: "Wrong e-mail or password.",
  UserNotConfirmedException: "Your account is not confirmed yet: enter the code we e-mailed you.",
  UsernameExistsException: "An account with this e-mail exists already: sign in instead.",
  CodeMismatchException: "The confirmation code is wrong.",
  ExpiredCodeException: "The confirmation code has expired: create the account again for a new one.",
  InvalidPasswordException: "The password is too weak: use at least 12 characters with a lowercase letter and a digit.",
  InvalidParameterException: "The e-mail or password is not acceptable: check them and try again.",
  TooManyRequestsException: "Too many attempts: wait a little and try again.",
  LimitExceededException: "Too many attempts: wait a while and try again.",
};

export class SignInError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

export class UserPool {
  constructor(config) {
    this.endpoint = config.cognitoEndpoint;
    this.clientId = config.clientId;
  }

  async call(operation, body, { withClient = true } = {}) {
    let response;
    try {
      response = await fetch(this.endpoint + "/", {
        method: "POST",
        headers: {
          "Content-Type": "application/x-amz-json-1.1",
          "X-Amz-Target": `AWSCognitoIdentityProviderService.${operation}`,
        },
        body: JSON.stringify(withClient ? { ClientId: this.clientId, ...body } : body),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch {
      throw new SignInError("The sign-in service cannot be reached: check your connection and try again.", "Unreachable");
    }
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const code = String(answer.__type || answer.code || "").split("#").pop();
      throw new SignInError(SENTENCES[code] || "The sign-in service refused the request: try again later.", code);
    }
    return answer;
  }

  signUp(email, password) {
    return this.call("SignUp", { Username: email, Password: password, UserAttributes: [{ Name: "email", Value: email }] });
  }

  confirm(email, code) {
    return this.call("ConfirmSignUp", { Username: email, ConfirmationCode: code });
  }

  async signIn(email, password) {
    const answer = await this.call("InitiateAuth", {
      AuthFlow: "USER_PASSWORD_AUTH",
      AuthParameters: { USERNAME: email, PASSWORD: password },
    });
    return tokens(answer, null);
  }

  signOut(accessToken) {
    // GlobalSignOut: the refresh token stops working; an ID token already issued lasts until it expires
    return this.call("GlobalSignOut", { AccessToken: accessToken }, { withClient: false });
  }

  async refresh(refreshToken) {
    const answer = await this.call("InitiateAuth", {
      AuthFlow: "REFRESH_TOKEN_AUTH",
      AuthParameters: { REFRESH_TOKEN: refreshToken },
    });
    return tokens(answer, refreshToken);
  }
}

function tokens(answer, refreshToken) {
  const result = answer.AuthenticationResult;
  if (!result || !result.IdToken) throw new SignInError("The sign-in needs a step this page does not offer.", "Challenge");
  return { idToken: result.IdToken, accessToken: result.AccessToken, refreshToken: result.RefreshToken || refreshToken };
}
