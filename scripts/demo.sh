#!/bin/sh
# Demonstrate vault-stork against the local test stack. Run by `make demo`
# through `python -m tests.stack run`, which provides VAULT_ADDR,
# AWS_EC2_METADATA_SERVICE_ENDPOINT and the STORK_TEST_* variables.
#
# Shows the token's accessor, policies and TTL from lookup-self, never the
# token itself.
set -eu

bin="${1:-target/debug/vault-stork}"
python="${STORK_TEST_VENV:?run through make demo}/bin/python"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT

show_token() {
  "$python" - "$1" <<'PY'
import json, os, sys, urllib.request
token = open(sys.argv[1]).read()
request = urllib.request.Request(os.environ["VAULT_ADDR"] + "/v1/auth/token/lookup-self",
                                 headers={"X-Vault-Token": token})
data = json.load(urllib.request.urlopen(request))["data"]
print(f"  lookup-self: accessor={data['accessor']} policies={data['policies']} ttl={data['ttl']}s")
PY
}

echo "== EC2 login: VAULT_ADDR=$VAULT_ADDR AWS_EC2_METADATA_SERVICE_ENDPOINT=$AWS_EC2_METADATA_SERVICE_ENDPOINT $bin login"
"$bin" login --token "$dir/token" --nonce "$dir/nonce" --verbose
echo "  files:"
ls -l "$dir" | sed 's/^/    /'
show_token "$dir/token"

echo
echo "== Second EC2 login reuses the nonce file"
before="$(sha256sum "$dir/nonce")"
"$bin" login --token "$dir/token" --nonce "$dir/nonce"
[ "$before" = "$(sha256sum "$dir/nonce")" ] && echo "  nonce file unchanged"
show_token "$dir/token"

echo
echo "== A different nonce is refused with exit code 80"
printf 'not-the-nonce' >"$dir/other-nonce"
set +e
"$bin" login --token "$dir/token" --nonce "$dir/other-nonce"
echo "  exit code: $?"
set -e

if [ -n "${STORK_TEST_IAM_ROLE:-}" ]; then
  # Every IAM login is signed for moto's STS: OpenBao replays the signed
  # request to its configured sts_endpoint, which is moto too.
  echo
  echo "== IAM login: instance role credentials from IMDS, signed for STS at $STORK_TEST_MOTO_URL"
  echo "   (no --role: the binary sends the IAM role name, $STORK_TEST_IAM_ROLE)"
  "$bin" login --method iam --sts-endpoint "$STORK_TEST_MOTO_URL" --token "$dir/iam-token" --verbose
  show_token "$dir/iam-token"

  echo
  echo "== IAM login to auth/$STORK_TEST_IAM_HEADER_MOUNT, which requires X-Vault-AWS-IAM-Server-ID: $STORK_TEST_IAM_SERVER_ID"
  "$bin" login --method iam --sts-endpoint "$STORK_TEST_MOTO_URL" --mount "$STORK_TEST_IAM_HEADER_MOUNT" \
    --header-value "$STORK_TEST_IAM_SERVER_ID" --token "$dir/iam-header-token"
  show_token "$dir/iam-header-token"

  echo
  echo "== A wrong header value is rejected with exit code 77"
  set +e
  "$bin" login --method iam --sts-endpoint "$STORK_TEST_MOTO_URL" --mount "$STORK_TEST_IAM_HEADER_MOUNT" \
    --header-value "vault.wrong.test" --token "$dir/iam-header-token" --max-wait 0
  echo "  exit code: $?"
  set -e
fi
