#!/usr/bin/env bash
# Build the stack's web page into build/web: web/'s own files as they are, and its two browser libraries
# (mqtt.js and aws4fetch, pinned by web/package-lock.json) copied from npm's packages into vendor/.
# No bundler: the page is plain JavaScript modules. 'make web' runs this; deploy.sh uploads the result.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null || bash scripts/install-debian-packages.sh nodejs npm
out=build/web
# npm ci again only when the lock file changed since the last install (it deletes and rewrites node_modules)
stamp=web/node_modules/.installed-lock.sha256
want=$(sha256sum web/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  npm ci --prefix web --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
  echo "$want" >"$stamp"
fi
rm -rf "$out.new"
mkdir -p "$out.new/src" "$out.new/vendor"
cp web/index.html web/error.html web/app.css "$out.new/"
cp web/src/*.js "$out.new/src/"
cp web/node_modules/mqtt/dist/mqtt.esm.js "$out.new/vendor/mqtt.esm.js"
cp web/node_modules/aws4fetch/dist/aws4fetch.esm.mjs "$out.new/vendor/aws4fetch.js"
rm -rf "$out"
mv "$out.new" "$out"
echo "Built the web page in $out ($(find "$out" -type f | wc -l) files)."
