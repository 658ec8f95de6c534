#!/usr/bin/env bash
# tools/setup-deps.sh -- install what shimcheck needs to build and test.
#
#   a. Debian packages (apt-get), only the ones that are missing.
#      SHIMCHECK_SKIP_APT=1 skips this step.
#   b. Unicorn >= 2.1. Debian 12 ships 2.0.1, so unless pkg-config already
#      finds >= 2.1, the Debian 13 (trixie) packages libunicorn2t64 and
#      libunicorn-dev are downloaded with a private apt configuration (the
#      system's apt setup is not touched) and unpacked into
#      $SHIMCHECK_DEPS_DIR/unicorn (default: <repo>/build/deps/unicorn).
#
# Idempotent and quiet when there is nothing to do. Exit status: 0 ok,
# 1 failure, 2 packages missing and not root.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
deps=${SHIMCHECK_DEPS_DIR:-$repo/build/deps}
uc_root=$deps/unicorn
apt_dir=$deps/apt
log=$deps/setup-deps.log

apt_packages=(
  cmake nasm pkg-config gcc make
  libcapstone-dev libcmocka-dev libjansson-dev
  qemu-system-x86 bochs bochsbios vgabios
  grub-pc-bin grub-common xorriso mtools grub-efi-ia32-bin grub-efi-amd64-bin ovmf gdb
  gcc-multilib clang afl++ graphviz valgrind binutils
)

say() { printf 'setup-deps: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# The log is started afresh by the first command that does any work.
log_init() {
  [ -n "${log_started:-}" ] && return 0
  mkdir -p "$deps" && : >"$log" && log_started=1
}

# Run a command with its output sent to the log; on failure show the tail.
logged() {
  log_init
  printf '\n$ %s\n' "$*" >>"$log"
  if ! "$@" >>"$log" 2>&1; then
    say "command failed: $*"
    tail -n 25 "$log" >&2
    return 1
  fi
}

# Like logged, but waits (up to 5 min) while another apt/dpkg holds a lock.
logged_apt() {
  local waited=0
  log_init
  while :; do
    local mark
    mark=$(wc -l <"$log" 2>/dev/null || echo 0)
    if logged "$@" 2>/dev/null; then return 0; fi
    if tail -n "+$((mark + 1))" "$log" | grep -qiE 'could not get lock|unable to acquire|is another process using it' &&
       [ "$waited" -lt 300 ]; then
      [ "$waited" -eq 0 ] && say "apt/dpkg is locked by another process; waiting (up to 5 min)"
      sleep 5; waited=$((waited + 5))
      continue
    fi
    say "command failed: $*"
    tail -n 25 "$log" >&2
    return 1
  done
}

# ---------------------------------------------------------------- a. apt
install_debian_packages() {
  local installed missing=() p
  installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${apt_packages[@]}" 2>/dev/null |
              awk '$2=="install" && $4=="installed" {print $1}' || true)
  for p in "${apt_packages[@]}"; do
    grep -qxF -- "$p" <<<"$installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0

  if [ "$(id -u)" -ne 0 ]; then
    say "missing Debian packages (run as root, or: apt-get install ${missing[*]})"
    exit 2
  fi
  say "installing Debian packages: ${missing[*]}"
  logged_apt apt-get -o DPkg::Lock::Timeout=300 update
  DEBIAN_FRONTEND=noninteractive logged_apt \
    apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------- b. unicorn
# First URL of the Debian main archive (not security) in the system's apt
# configuration; prefers an entry for this system's own codename.
debian_mirror() {
  local codename files=() f
  codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
  [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ "${#files[@]}" -gt 0 ] || return 0
  # Emit "URI SUITE..." for every enabled deb entry, one line each.
  awk '
    function flush() {
      if (types ~ /(^|[ \t])deb([ \t]|$)/ && uris != "" && tolower(enabled) != "no") {
        split(uris, u, /[ \t]+/); print u[1], suites
      }
      types = uris = suites = enabled = ""
    }
    FNR == 1 { flush() }
    FILENAME ~ /\.sources$/ {
      if ($0 ~ /^[ \t]*$/) { flush(); next }
      if ($0 ~ /^#/) next
      line = $0; key = tolower(line); sub(/:.*/, "", key)
      val = line; sub(/^[^:]*:[ \t]*/, "", val)
      if (key == "types") types = val
      else if (key == "uris") uris = val
      else if (key == "suites") suites = val
      else if (key == "enabled") enabled = val
      next
    }
    {
      sub(/#.*/, "")
      if ($1 != "deb") next
      i = 2
      if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
      print $i, $(i + 1)
    }
    END { flush() }
  ' "${files[@]}" |
  awk -v cn="$codename" '
    $1 !~ /^(https?|ftp|file):/ || $1 ~ /security/ { next }
    {
      for (i = 2; i <= NF; i++) {
        if ($i ~ /-security$/) next
        if (cn != "" && $i == cn && best == "") best = $1
      }
      if (first == "") first = $1
    }
    END { print (best != "" ? best : first) }
  '
}

unicorn_pc_dir() {
  local pc
  pc=$(find "$uc_root" -path '*/pkgconfig/unicorn.pc' -print -quit 2>/dev/null || true)
  [ -n "$pc" ] && dirname "$pc"
}

unicorn_ok() {  # usable unicorn >= 2.1: the system's (or PKG_CONFIG_PATH's), else ours
  pkg-config --atleast-version=2.1 unicorn 2>/dev/null && return 0
  local dir
  dir=$(unicorn_pc_dir) || return 1
  PKG_CONFIG_PATH=$dir pkg-config --atleast-version=2.1 unicorn 2>/dev/null &&
    [ -e "$(PKG_CONFIG_PATH=$dir pkg-config --variable=libdir unicorn)/libunicorn.so" ]
}

install_unicorn() {
  unicorn_ok && return 0

  local mirror arch
  [ -r /usr/share/keyrings/debian-archive-keyring.gpg ] ||
    die "/usr/share/keyrings/debian-archive-keyring.gpg missing (apt-get install debian-archive-keyring)"
  mirror=${SHIMCHECK_DEBIAN_MIRROR:-$(debian_mirror)}
  [ -n "$mirror" ] || die "no Debian archive URL found in /etc/apt/sources.list{,.d} (set SHIMCHECK_DEBIAN_MIRROR)"
  arch=$(dpkg --print-architecture)
  say "fetching unicorn >= 2.1 (Debian trixie packages) into $uc_root"

  rm -rf "$apt_dir/debs" "$uc_root"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
  printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie main\n' \
    "$mirror" >"$apt_dir/sources.list"

  local opts=(
    -o "Dir::Etc::SourceList=$apt_dir/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::Cache=$apt_dir/cache"
    -o "APT::Architectures=$arch"
    -o "Acquire::Languages=none"
    -o "APT::Sandbox::User=root"
  )
  logged_apt apt-get "${opts[@]}" update
  (cd "$apt_dir/debs" && logged apt-get "${opts[@]}" download libunicorn2t64 libunicorn-dev)

  local deb
  for deb in "$apt_dir"/debs/*.deb; do
    [ -f "$deb" ] || die "apt-get download produced no .deb files (see $log)"
    logged dpkg-deb -x "$deb" "$uc_root"
  done

  local dir
  dir=$(unicorn_pc_dir || true)
  [ -n "$dir" ] || die "unicorn.pc not found in the extracted packages under $uc_root"
  # The .pc says prefix=/usr; point it (and any hard-coded /usr path) at our copy.
  sed -i -E "s#^(prefix|exec_prefix|libdir|includedir|sharedlibdir)=/usr(/|\$)#\\1=$uc_root/usr\\2#" \
    "$dir/unicorn.pc"

  local libdir ver
  libdir=$(PKG_CONFIG_PATH=$dir pkg-config --variable=libdir unicorn)
  [ -e "$libdir/libunicorn.so" ] ||
    die "$libdir/libunicorn.so missing after extracting libunicorn-dev"
  ver=$(PKG_CONFIG_PATH=$dir pkg-config --modversion unicorn 2>/dev/null || true)
  PKG_CONFIG_PATH=$dir pkg-config --atleast-version=2.1 unicorn ||
    die "extracted unicorn is version '${ver:-?}', need >= 2.1"
  say "unicorn $ver ready; use: PKG_CONFIG_PATH=$dir"
}

if [ "${SHIMCHECK_SKIP_APT:-0}" != 1 ]; then
  install_debian_packages
fi
install_unicorn
