# Helpers shared by scripts/demo.sh and the scripts/check-*.sh tests.
# Sourced, not run.

step() { printf '\n==> %s\n' "$*"; }
say() { printf '    %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# A TCP port on 127.0.0.1 nobody listens on, below the ephemeral range (so a
# restarted service gets it back), picked at random.
free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  die "no free port found"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.25 s.
wait_for() {
  local timeout=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { printf 'timed out after %ss waiting for %s\n' "$timeout" "$what" >&2; return 1; }
    sleep 0.25
  done
}

# Installs a Debian package when COMMAND is missing (as the test command does
# for redis-server). Needs root or sudo.
ensure_tool() {
  local cmd=$1 pkg=$2 sudo=""
  command -v "$cmd" >/dev/null 2>&1 && return 0
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  say "installing $pkg (apt) for $cmd"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq "$pkg" >/dev/null
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after installing $pkg"
}

# The process runs (a zombie waiting to be reaped does not count).
alive() { [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }

# Stops the process whose pid is in FILE if it still runs COMMAND_SUBSTRING
# (a recycled pid of another program is left alone), then removes FILE.
stop_pidfile() {
  local file=$1 what=$2 pid i
  [ -s "$file" ] || { rm -f "$file"; return 0; }
  pid=$(cat "$file")
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$what"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 40); do
      alive "$pid" || break
      sleep 0.25
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

# The CRD is Established. Polled, not `kubectl wait`: right after a create,
# kubectl wait fails at once ("accessor error") while .status.conditions is
# still empty.
crd_established() {
  [ "$(k get crd "$1" -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null)" = True ]
}
