#!/bin/bash
# Stop the MariaDB of mariadb-start.sh D; `--keep` keeps its data directory (to start it again).
D=$1
. "$(dirname "$0")/lib.sh"
np_stop_pid "$D/bgpid" 400
[ "${2:-}" = "--keep" ] || rm -rf --one-file-system "$D"
