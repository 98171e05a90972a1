#!/usr/bin/env bash
# Vendors the browser pages' JavaScript and CSS into gateway/static/vendor/ from the npm
# registry, so GraphiQL (/graphql) and the REST docs (/api/v1/docs) load nothing from another
# origin (issue 19: air-gapped installs, CI). Run it once after changing a version below, then
# commit gateway/static/vendor/ with its SHA256SUMS.
#
# Each package is one tarball of the registry at a pinned version, checked against the sha512
# integrity the registry publishes for it (`npm view <package>@<version> dist.integrity`) before
# anything is taken out of it. What is kept: the built files the pages load and the licence
# files. SHA256SUMS lists every vendored file; tests/platform/test_web_pages.py holds the
# directory to it.
#
#   package                      version  licence      kept
#   react                        18.2.0   MIT          umd/react.production.min.js
#   react-dom                    18.2.0   MIT          umd/react-dom.production.min.js
#   graphiql                     3.8.3    MIT          graphiql.min.js, graphiql.min.css
#   @graphiql/plugin-explorer    1.0.2    MIT          dist/index.umd.js, dist/style.css
#   swagger-ui-dist              5.36.0   Apache-2.0   swagger-ui-bundle.js, swagger-ui.css
#
# The versions of React, GraphiQL and the explorer plugin are those of Strawberry's own
# GraphiQL page (strawberry/static/graphiql.html), which loaded them from unpkg.com; that page
# also loaded js-cookie to send Django's CSRF cookie, which this gateway (bearer tokens, no
# cookies) has no use for, so it is not vendored. The explorer plugin's tarball has no licence
# file: it is MIT in its package.json, from the graphql/graphiql repository whose LICENSE
# graphiql's tarball carries, and it bundles OneGraph's graphiql-explorer (MIT), whose LICENSE
# is taken from that package's tarball.
set -euo pipefail
cd "$(dirname "$0")/.."

REGISTRY="${NPM_REGISTRY:-https://registry.npmjs.org}"
DEST=gateway/static/vendor
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# fetch NAME VERSION INTEGRITY: the package's tarball, checked, unpacked in $WORK/NAME@VERSION.
fetch() {
  local name="$1" version="$2" integrity="$3"
  local tarball="$WORK/$(basename "$name")-$version.tgz"
  curl -sSfL -o "$tarball" "$REGISTRY/$name/-/$(basename "$name")-$version.tgz"
  local actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [[ "$actual" != "$integrity" ]]; then
    echo "$name@$version: the tarball's integrity is $actual, expected $integrity" >&2
    exit 1
  fi
  mkdir -p "$WORK/$name@$version"
  tar -xzf "$tarball" -C "$WORK/$name@$version"
}

# keep NAME VERSION DIR FILE...: copies the package's FILEs (paths in its tarball) into DIR.
keep() {
  local name="$1" version="$2" dir="$DEST/$3"
  shift 3
  mkdir -p "$dir"
  for file in "$@"; do
    cp "$WORK/$name@$version/package/$file" "$dir/$(basename "$file")"
  done
}

rm -rf "$DEST"
fetch react 18.2.0 \
  sha512-/3IjMdb2L9QbBdWiW5e3P2/npwMBaU9mHCSCUzNln0ZCYbcfTsGbTJrU/kGemdH2IWmB2ioZ+zkxtmq6g09fGQ==
keep react 18.2.0 react-18.2.0 umd/react.production.min.js LICENSE

fetch react-dom 18.2.0 \
  sha512-6IMTriUmvsjHUjNtEDudZfuDQUoWXVxKHhlEGSk81n4YFS+r/Kl99wXiwlVXtPBtJenozv2P+hxDsw9eA7Xo6g==
keep react-dom 18.2.0 react-dom-18.2.0 umd/react-dom.production.min.js LICENSE

fetch graphiql 3.8.3 \
  sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==
keep graphiql 3.8.3 graphiql-3.8.3 graphiql.min.js graphiql.min.css LICENSE

fetch @graphiql/plugin-explorer 1.0.2 \
  sha512-9j+kg2UjtLZD5EBmGjeWHkoVVxtbShYg2DzbUVebibnZYZM/iMBEF4vaccXJIAm5KaomIPLx0aoNs4LbODyc3Q==
fetch graphiql-explorer 0.9.0 \
  sha512-fZC/wsuatqiQDO2otchxriFO0LaWIo/ovF/CQJ1yOudmY0P7pzDiP+l9CEHUiWbizk3e99x6DQG4XG1VxA+d6A==
keep @graphiql/plugin-explorer 1.0.2 graphiql-plugin-explorer-1.0.2 dist/index.umd.js dist/style.css
cp "$WORK/graphiql@3.8.3/package/LICENSE" "$DEST/graphiql-plugin-explorer-1.0.2/LICENSE"
cp "$WORK/graphiql-explorer@0.9.0/package/LICENSE" \
  "$DEST/graphiql-plugin-explorer-1.0.2/LICENSE.graphiql-explorer"

fetch swagger-ui-dist 5.36.0 \
  sha512-Lt6/Kb0gXmLdiabLhvso4VdJP9V7qJWB0zh0gzeXUV3+CMOTzMmvpJRSXN7EAjfwixwmoi9ezDbLHiexC7lA9A==
keep swagger-ui-dist 5.36.0 swagger-ui-dist-5.36.0 swagger-ui-bundle.js swagger-ui.css \
  swagger-ui-bundle.js.LICENSE.txt LICENSE NOTICE

(cd "$DEST" && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | LC_ALL=C sort \
  | xargs sha256sum > SHA256SUMS)
echo "vendored into $DEST:"
cat "$DEST/SHA256SUMS"
