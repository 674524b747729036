#!/usr/bin/env bash
# Delete a stack that deploy.sh made, and what the kit made for it. Safe to re-run.
#
# BUCKET is the stack's archive bucket (its ArchiveBucketName output), not the SAM artifact bucket:
# it is emptied (every version and delete marker) so the stack can delete it; any other bucket is
# refused before anything is touched. A stack deployed with USERS=true also has the web page's hosting
# bucket (HostingBucketName): it is found from the stack's outputs and emptied too, without being named. 'jitr fleet reset' first stops the CA auto-registering, then
# deletes the certificates under the stack's CA with the things only they use, detaches the stack's
# policy, deletes the CA registration (unless --keep-ca) and empties the bucket; then the stack goes.
# Nothing that the stack did not create is deleted. The CA files in PKI_ROOT/STACK are kept.
#
# Environment: PKI_ROOT (default pki), JITR and SAM (the commands to run), AWS_ENDPOINT_URL (set:
# the local emulator, 'jitr local destroy' instead of 'sam delete').
set -euo pipefail

usage() {
  echo "usage: $0 STACK BUCKET [--keep-ca]   (BUCKET: the stack's archive bucket, its ArchiveBucketName output)" >&2
  exit 2
}
bad() { echo "$0: $*" >&2; usage; }
die() { echo "$0: error: $*" >&2; exit 1; }
step() { echo "==> $*"; }

keep_ca=()
positional=()
for arg in "$@"; do
  case $arg in
    --keep-ca) keep_ca=(--keep-ca) ;;
    -*) bad "unknown option '$arg'" ;;
    *) positional+=("$arg") ;;
  esac
done
[ ${#positional[@]} -eq 2 ] || bad "expected STACK and BUCKET"
STACK=${positional[0]} BUCKET=${positional[1]}
[[ $STACK =~ ^[A-Za-z][A-Za-z0-9-]{0,127}$ ]] || bad "invalid STACK '$STACK'"
[[ $BUCKET =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || bad "invalid BUCKET '$BUCKET'"

JITR=${JITR:-jitr}
SAM=${SAM:-sam}
PKI=${PKI_ROOT:-pki}/$STACK
EMULATOR=${AWS_ENDPOINT_URL:+yes}
# One region for jitr and sam alike (sam reads only AWS_DEFAULT_REGION or the profile; jitr defaults to us-east-1).
export AWS_REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}
command -v "$JITR" >/dev/null || die "'$JITR' not found: run 'make deps' and use .venv/bin/jitr (or set JITR)"
[ -n "$EMULATOR" ] || command -v "$SAM" >/dev/null || die "'$SAM' not found: install the AWS SAM CLI (or set SAM)"

step "resetting the fleet of stack $STACK and emptying $BUCKET"
"$JITR" fleet reset --stack "$STACK" --dir "$PKI" --bucket "$BUCKET" --yes ${keep_ca[@]+"${keep_ca[@]}"}
step "turning AWS IoT logging off if it uses the stack's role"
"$JITR" fleet logging --stack "$STACK" --off >/dev/null

described=$("$JITR" fleet describe --stack "$STACK" --json)
if [[ $described != *'"exists": true'* ]]; then
  step "stack $STACK is already gone"
elif [ -n "$EMULATOR" ]; then
  step "deleting stack $STACK from the emulator"
  "$JITR" local destroy --stack "$STACK"
else
  step "deleting stack $STACK with sam delete in $AWS_REGION"
  "$SAM" delete --stack-name "$STACK" --region "$AWS_REGION" --no-prompts
fi
