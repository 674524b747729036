#!/usr/bin/env bash
# Deploy the jitr-kit stack for a CA of its own and mint one device certificate. Safe to re-run:
# the CA, its registration and the device are reused, and the stack is updated only when needed.
#
# Order (JITR and JITP alike): create the CA -> deploy the stack with the CA's id -> register the CA
# -> mint. The CA's id is the SHA-256 of its DER certificate, known before AWS IoT registers it, so
# the stack goes first: under JITR the activation rule listens before the CA auto-registers anyone,
# and JITP needs the stack's ProvisioningRoleArn to register. Should AWS IoT answer another id,
# the stack is deployed again with it.
#
# PROVISIONING=api deploys the provisioning API as well (devices shipped with a serial and a token get their
# certificate over HTTPS): THING_NAME is admitted as a serial instead of minted, and its token is printed once.
#
# USERS=true (with PROVISIONING=api) deploys the users API too: a Cognito user pool where people sign up, bind
# their device with the binding code 'jitr fleet admit' hands out, and get credentials for it ('jitr app'), and
# the web page: web/ is built (scripts/build-web.sh, npm) and uploaded to the stack's hosting bucket.
#
# Environment: PROVISIONING=jitr|jitp|api (default jitr), USERS=true|false (default false), PKI_ROOT (default pki: the CA goes to
# PKI_ROOT/STACK), JITR_PASSPHRASE_ENV (name of the variable holding the CA key passphrase),
# JITR and SAM (the commands to run), AWS_ENDPOINT_URL (set: the local emulator, 'jitr local
# deploy' instead of 'sam deploy'; SAM_BUCKET is then unused), JITR_MQTT_ENDPOINT and JITR_ROOT_CA
# (printed in the connect line; 'eval "$(jitr local env)"' sets them for the emulator).
set -euo pipefail

usage() {
  echo "usage: $0 STACK SAM_BUCKET COUNTRY_CODE THING_NAME   (PROVISIONING=jitr|jitp|api, USERS=true)" >&2
  echo "  STACK [A-Za-z][A-Za-z0-9-]*, SAM_BUCKET for sam deploy's artifacts, COUNTRY_CODE such as DE," >&2
  echo "  THING_NAME [a-zA-Z0-9:_-]{1,64}" >&2
  exit 2
}
bad() { echo "$0: $*" >&2; usage; }
die() { echo "$0: error: $*" >&2; exit 1; }
step() { echo "==> $*"; }
json_field() { # json_field PATH < JSON, PATH such as outputs.ProvisioningRoleArn or 0.certificateId
  # no input (the command before the pipe failed and said why): print nothing, and pipefail keeps its exit code
  "${PYTHON:-python3}" -c 'import json, sys
text = sys.stdin.read()
if not text.strip():
    sys.exit(0)
value = json.loads(text)
for key in sys.argv[1].split("."):
    value = value[int(key)] if isinstance(value, list) else (value or {}).get(key)
print("" if value is None else value)' "$1"
}

[ $# -eq 4 ] || bad "expected 4 arguments, got $#"
STACK=$1 SAM_BUCKET=$2 COUNTRY=$3 THING=$4
[[ $STACK =~ ^[A-Za-z][A-Za-z0-9-]{0,127}$ ]] || bad "invalid STACK '$STACK'"
[[ $SAM_BUCKET =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || bad "invalid SAM_BUCKET '$SAM_BUCKET'"
[[ $COUNTRY =~ ^[A-Z]{2}$ ]] || bad "invalid COUNTRY_CODE '$COUNTRY': two upper-case letters"
[[ $THING =~ ^[a-zA-Z0-9:_-]{1,64}$ ]] || bad "invalid THING_NAME '$THING'"
PROVISIONING=${PROVISIONING:-jitr}
case $PROVISIONING in
  jitr) MODE=JITR ;;
  jitp) MODE=JITP ;;
  api) MODE="JITR and the provisioning API" ;;
  *) bad "PROVISIONING must be jitr, jitp or api, not '$PROVISIONING'" ;;
esac
API=false
if [ "$PROVISIONING" = api ]; then API=true; fi
USERS=${USERS:-false}
case $USERS in
  true | false) ;;
  *) bad "USERS must be true or false, not '$USERS'" ;;
esac
if [ "$USERS" = true ] && [ "$API" != true ]; then bad "USERS=true needs PROVISIONING=api (the binding codes live there)"; fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TEMPLATE=$ROOT/sam/template.yaml
JITR=${JITR:-jitr}
SAM=${SAM:-sam}
PKI=${PKI_ROOT:-pki}/$STACK
EMULATOR=${AWS_ENDPOINT_URL:+yes}
# One region for jitr and sam alike (sam reads only AWS_DEFAULT_REGION or the profile; jitr defaults to us-east-1).
export AWS_REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}
secret=()
if [ -n "${JITR_PASSPHRASE_ENV:-}" ]; then secret=(--passphrase-env "$JITR_PASSPHRASE_ENV"); fi
command -v "$JITR" >/dev/null || die "'$JITR' not found: run 'make deps' and use .venv/bin/jitr (or set JITR)"
[ -n "$EMULATOR" ] || command -v "$SAM" >/dev/null || die "'$SAM' not found: install the AWS SAM CLI (or set SAM)"

deploy_stack() { # deploy_stack CA_ID
  if [ -n "$EMULATOR" ]; then
    # 'jitr local deploy' updates the stack as CloudFormation does (what is unchanged stays, the archive bucket
    # keeps its objects); skipped when the CA and the options are those deployed.
    described=$("$JITR" fleet describe --stack "$STACK" --json)
    deployed=$(json_field parameters.CaCertificateId <<<"$described")
    deployed_api=$(json_field parameters.ProvisioningApi <<<"$described")
    deployed_users=$(json_field parameters.UsersApi <<<"$described")
    if [ "$deployed" = "$1" ] && [ "${deployed_api:-false}" = "$API" ] && [ "${deployed_users:-false}" = "$USERS" ]; then
      step "stack $STACK is already in the emulator for CA $1"
      return
    fi
    step "deploying stack $STACK into the emulator at $AWS_ENDPOINT_URL"
    "$JITR" local deploy --stack "$STACK" --template "$TEMPLATE" --parameter-overrides "CaCertificateId=$1" \
      "ProvisioningApi=$API" "UsersApi=$USERS"
  else
    step "deploying stack $STACK with sam deploy in $AWS_REGION"
    "$SAM" deploy --template-file "$TEMPLATE" --stack-name "$STACK" --s3-bucket "$SAM_BUCKET" --region "$AWS_REGION" \
      --capabilities CAPABILITY_IAM --parameter-overrides "CaCertificateId=$1" "ProvisioningApi=$API" "UsersApi=$USERS" \
      --no-fail-on-empty-changeset
  fi
}

# Before anything is made: can we reach AWS (or the emulator) with credentials? Forgetting
# 'eval "$(jitr local env)"' then fails here, with jitr's sentence and exit code 6, not after the CA exists.
step "checking access to AWS IoT${EMULATOR:+ (the emulator at $AWS_ENDPOINT_URL)}"
"$JITR" fleet endpoint >/dev/null

if [ -f "$PKI/ca.json" ]; then
  step "reusing the CA in $PKI"
else
  step "creating a CA (country $COUNTRY) in $PKI"
  "$JITR" ca init --dir "$PKI" --country "$COUNTRY" --intermediate ${secret[@]+"${secret[@]}"}
fi
signer=$PKI/certs/intermediate-ca.pem
[ -f "$signer" ] || signer=$PKI/certs/root-ca.pem
ca_id=$("$JITR" ca show --json "$signer" | json_field 0.certificateId)

deploy_stack "$ca_id"

# AWS IoT's own logs (one setting per account and region): on with the stack's role, unless on already.
step "turning AWS IoT logging on unless it is"
"$JITR" fleet logging --stack "$STACK" >/dev/null

# The stack's devices publish under devices/<stack>/<thing>/: their policy allows only that, and only this
# stack's archive rule hears it, so two stacks in one account keep their telemetry apart.
topic_root=$("$JITR" fleet describe --stack "$STACK" --json | json_field outputs.DeviceTopicRoot)
[ -n "$topic_root" ] || die "stack $STACK has no DeviceTopicRoot output"
register=("$JITR" ca register --dir "$PKI" --json ${secret[@]+"${secret[@]}"})
if [ "$PROVISIONING" = jitp ]; then
  role=$("$JITR" fleet describe --stack "$STACK" --json | json_field outputs.ProvisioningRoleArn)
  [ -n "$role" ] || die "stack $STACK has no ProvisioningRoleArn output"
  register+=(--jitp --role-arn "$role" --topic-root "$topic_root")
fi
step "registering CA $ca_id for $MODE"
registered=$("${register[@]}" | json_field caCertificateId)
if [ "$registered" != "$ca_id" ]; then
  step "AWS IoT registered the CA as $registered: deploying the stack again with that id"
  deploy_stack "$registered"
fi

if [ "$USERS" = true ]; then
  # the web page: built from web/ (npm's pinned libraries), uploaded with a config.json of the stack's settings
  step "building the web page and uploading it to the stack's hosting bucket"
  bash "$ROOT/scripts/build-web.sh" >/dev/null
  website=$("$JITR" fleet website --stack "$STACK" --site "$ROOT/build/web" --json | json_field url)
fi

if [ "$PROVISIONING" = api ]; then
  api_url=$("$JITR" fleet describe --stack "$STACK" --json | json_field outputs.ProvisioningApiUrl)
  [ -n "$api_url" ] || die "stack $STACK has no ProvisioningApiUrl output"
  admitted=$("$JITR" fleet admit --stack "$STACK" --list --json | THING=$THING "${PYTHON:-python3}" -c 'import json, os, sys
print(any(d["serial"] == os.environ["THING"] for d in json.load(sys.stdin)["devices"]))')
  tokens=$PKI/tokens/$THING.json
  echo
  if [ "$admitted" = True ]; then
    echo "Stack $STACK is deployed with its provisioning API at $api_url."
    echo "$THING is admitted already; its token was printed when it was admitted (and is in $tokens)."
    echo "A new one: $JITR fleet admit --stack $STACK --serial $THING --rotate-token"
    if [ "$USERS" = true ]; then echo "The web page: $website"; fi
    exit 0
  fi
  mkdir -p "$PKI/tokens"
  step "admitting $THING to the provisioning API"
  admitted=$("$JITR" fleet admit --stack "$STACK" --serial "$THING" --out "$tokens" --json)
  token=$(json_field devices.0.token <<<"$admitted")
  code=$(json_field devices.0.bindingCode <<<"$admitted")
  enroll=("$JITR" device enroll --api "$api_url" --serial "$THING" --token "$token" --out "$PKI/enrolled")
  echo
  echo "Stack $STACK is deployed with its provisioning API at $api_url."
  echo "The token of $THING, shown this once (also in $tokens, mode 0600): $token"
  if [ "$USERS" = true ]; then
    echo "Its binding code, for its user (print it on the device or its box): $code"
    echo "Users sign up with: $JITR app signup --stack $STACK --email EMAIL, or on the web page: $website"
  fi
  echo "Enroll the device (it makes its key, gets its certificate, prints how to connect) with:"
  printf ' %q' "${enroll[@]}"
  echo
  exit 0
fi

chain=$PKI/devices/certs/$THING.chain.pem
key=$PKI/devices/private/$THING.key
if [ -f "$chain" ] && [ -f "$key" ]; then
  step "reusing the certificate of $THING"
else
  step "minting the certificate of $THING"
  "$JITR" device mint --dir "$PKI" --thing "$THING" --country "$COUNTRY" ${secret[@]+"${secret[@]}"}
fi

endpoint=${JITR_MQTT_ENDPOINT:-$("$JITR" fleet endpoint)}
connect=("$JITR" device connect --endpoint "$endpoint" --cert "$chain" --key "$key" --topic-root "$topic_root")
if [ -n "${JITR_ROOT_CA:-}" ]; then connect+=(--root-ca "$JITR_ROOT_CA"); fi
echo
echo "Stack $STACK is deployed for CA $registered ($MODE). Connect $THING with:"
printf ' %q' "${connect[@]}"
echo
