# Shared helpers for the integration environment scripts (sourced).
np_wait() { # np_wait TRIES SLEEP CMD... : retry CMD until it succeeds
  local tries=$1 pause=$2; shift 2
  for _ in $(seq 1 "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep "$pause"; done
  return 1
}
np_stop_pid() { # np_stop_pid PIDFILE [TRIES]: TERM, wait, then KILL
  local pid; pid=$(cat "$1" 2>/dev/null) || return 0
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 "${2:-100}"); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null; return 0
}
np_umount_under() { # lazily unmount DIR and everything mounted below it (exact prefix)
  awk -v d="$1" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m"; done
}
np_free_port() { # a free TCP port on 127.0.0.1 (the kernel's choice; bound and released)
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
np_ms() { # milliseconds since the epoch
  echo $(( $(date +%s%N) / 1000000 ))
}
