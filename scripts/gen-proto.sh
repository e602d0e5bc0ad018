#!/usr/bin/env bash
# Regenerate the TypeScript for proto/ into packages/shared/src/gen.
# With --check, generate into a temporary folder and fail when the committed
# code differs, so CI catches a proto change without regenerated code.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1-}" == "--check" ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  sed "s|out: packages/shared/src/gen|out: $tmp/gen|" buf.gen.yaml >"$tmp/buf.gen.yaml"
  node_modules/.bin/buf generate --template "$tmp/buf.gen.yaml"
  if ! diff -r "$tmp/gen" packages/shared/src/gen >/dev/null; then
    echo "generated code in packages/shared/src/gen is stale: run 'bun run gen'" >&2
    exit 1
  fi
  echo "generated code is current"
  exit 0
fi

node_modules/.bin/buf generate
echo "generated packages/shared/src/gen"
