#!/usr/bin/env bash
# Checks the OpenAPI document `aps run` serves, as crates/cli/tests/openapi.rs saved it
# (APS_OPENAPI_DOCUMENT_OUT): openapi-spec-validator must accept it, and
# openapi-python-client must generate a client from it without a warning (it exits 0
# even when it leaves operations or schemas out, so its output is read).
#
# Usage: scripts/check-openapi.sh DOCUMENT.json
set -euo pipefail

doc=${1:?usage: scripts/check-openapi.sh DOCUMENT.json}
[ -s "$doc" ] || { echo "FAILED: $doc is missing or empty: the test that saves the served document did not run" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# On failure the validator prints the whole document after its message: the start is enough.
if ! openapi-spec-validator "$doc" >"$work/validate.log" 2>&1; then
  cut -c1-2000 "$work/validate.log" >&2
  echo "FAILED: openapi-spec-validator refused $doc" >&2
  exit 1
fi
echo "  openapi-spec-validator accepted $doc"
status=0
(cd "$work" && openapi-python-client generate --path "$doc" --meta none --output-path client) \
  >"$work/generate.log" 2>&1 || status=$?
if [ "$status" -ne 0 ] || grep -qiE 'warning|unable to' "$work/generate.log"; then
  cat "$work/generate.log" >&2
  echo "FAILED: openapi-python-client on $doc (exit status $status)" >&2
  exit 1
fi
[ -f "$work/client/client.py" ] || { echo "FAILED: openapi-python-client wrote no client" >&2; exit 1; }
echo "  openapi-python-client generated a client from $doc with no warning"
