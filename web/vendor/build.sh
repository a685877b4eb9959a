#!/bin/sh
# Rebuilds ../assets/vendor/noble.js, the one bundled ES module of the
# audited @noble libraries the explorer uses (entry.js), from the exact
# versions of package-lock.json. The bundle is committed: building and
# testing thingnet never needs npm; only changing the bundle does.
#
#   web/vendor/build.sh          rebuild the bundle
#   web/vendor/build.sh --check  rebuild into a temporary file and fail if
#                                it differs from the committed one
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --ignore-scripts >/dev/null
out=../assets/vendor/noble.js
lic=../assets/vendor/LICENSE-noble
dst=$out
licdst=$lic
if [ "${1:-}" = "--check" ]; then
	dst=$(mktemp)
	licdst=$(mktemp)
	trap 'rm -f "$dst" "$licdst"' EXIT
fi
{
	printf '/*! thingnet explorer vendor bundle: built by web/vendor/build.sh from entry.js\n'
	for p in hashes ciphers curves post-quantum; do
		v=$(node -p "require('./node_modules/@noble/$p/package.json').version")
		printf ' * @noble/%s %s\n' "$p" "$v"
	done
	printf ' * Licence (MIT, every package): see vendor/LICENSE-noble next to this file.\n */\n'
	npx --no-install esbuild entry.js --bundle --format=esm --target=es2022 --charset=utf8 --legal-comments=none --log-level=warning
} >"$dst"
{
	cat node_modules/@noble/hashes/LICENSE
	for p in ciphers curves post-quantum; do
		cmp -s node_modules/@noble/hashes/LICENSE "node_modules/@noble/$p/LICENSE" || {
			printf '\n--- @noble/%s ---\n' "$p"
			cat "node_modules/@noble/$p/LICENSE"
		}
	done
} >"$licdst"
if [ "$dst" != "$out" ]; then
	if ! cmp -s "$dst" "$out" || ! cmp -s "$licdst" "$lic"; then
		echo "web/vendor/build.sh: $out or $lic differs from a fresh build of entry.js" >&2
		exit 1
	fi
	echo "$out is the build of entry.js"
fi
