#!/bin/bash
D=$1
. "$(dirname "$0")/lib.sh"
np_stop_pid "$D/cli/bgpid" & np_stop_pid "$D/srv/bgpid" & wait
rm -rf --one-file-system "$D"
