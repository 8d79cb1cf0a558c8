# Sourced by .ci/servers/*.sh. A server script declares the Debian packages it needs on a line of its own
#   # apt: pkg1 pkg2 ...
# scripts/test-all.sh collects those lines and installs every missing package in one apt-get call before
# the scripts' own installs run (parallel apt-get calls would only wait on each other's dpkg lock).
# `need_apt pkg...` is for running one script by hand: it installs what is missing and waits for the lock.

# missing_apt PKG...: prints the packages of the list that are not installed.
missing_apt() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}

# need_apt PKG...: installs the missing ones (as root, or through sudo -n).
need_apt() {
  local missing
  missing="$(missing_apt "$@" | tr '\n' ' ')"
  [ -z "${missing// /}" ] && return 0
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "cannot install $missing: not root and no sudo" >&2; return 1; }
    sudo=(sudo -n)
  fi
  echo "installing Debian packages: $missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086
  "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=1200 install -y --no-install-recommends $missing >&2 \
    || { "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=1200 update >&2 \
         && "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=1200 install -y --no-install-recommends $missing >&2; }
}

# declared_apt SCRIPT...: the packages declared by "# apt:" lines.
declared_apt() {
  sed -n 's/^# apt: *//p' "$@" | tr ' ' '\n' | sed '/^$/d' | sort -u
}
