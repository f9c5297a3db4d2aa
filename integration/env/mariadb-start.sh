#!/bin/bash
# A private MariaDB (Debian's mariadb-server) for the eventer's MySQL sink tests: its own data
# directory under D, a private socket, 127.0.0.1 on a free port (or the one it had, when D
# already holds a data directory: a restart keeps data, port and account). Creates the
# database kube_eventer and an account with a password (all privileges: the server is
# private). Prints the NODEPROBE_IT_MYSQL_* lines for services.env. Stop with mariadb-stop.sh D.
# NODEPROBE_IT_MYSQL_FLUSH: innodb_flush_log_at_trx_commit (default 2: no fsync per commit;
# 1 = durable, as production servers run).
set -euo pipefail
D=$1
. "$(dirname "$0")/lib.sh"
mkdir -p "$D"; chmod 700 "$D"
fresh=0
if [ ! -d "$D/data/mysql" ]; then
  fresh=1
  mariadb-install-db --no-defaults --datadir="$D/data" --user=root \
    --auth-root-authentication-method=normal --skip-test-db > "$D/install.log" 2>&1 ||
    { cat "$D/install.log" >&2; exit 1; }
  np_free_port > "$D/port"
fi
PORT=$(cat "$D/port")
/usr/sbin/mariadbd --no-defaults --datadir="$D/data" --socket="$D/sock" --port="$PORT" \
  --bind-address=127.0.0.1 --user=root --pid-file="$D/pid" --log-error="$D/err.log" \
  --skip-log-bin --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit="${NODEPROBE_IT_MYSQL_FLUSH:-2}" \
  --max-connections=200 < /dev/null > /dev/null 2>&1 &
echo $! > "$D/bgpid"
np_wait 300 0.05 mariadb --no-defaults -S "$D/sock" -uroot -e 'select 1' ||
  { echo "mariadbd did not come up" >&2; cat "$D/err.log" >&2; exit 1; }
if [ "$fresh" = 1 ]; then
  PW="np-$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  echo "$PW" > "$D/password"
  mariadb --no-defaults -S "$D/sock" -uroot -e "CREATE DATABASE kube_eventer CHARACTER SET utf8mb4;
    CREATE USER 'nodeprobe'@'%' IDENTIFIED BY '$PW'; GRANT ALL ON *.* TO 'nodeprobe'@'%';"
fi
echo "NODEPROBE_IT_MYSQL_HOST=127.0.0.1"
echo "NODEPROBE_IT_MYSQL_PORT=$PORT"
echo "NODEPROBE_IT_MYSQL_USER=nodeprobe"
echo "NODEPROBE_IT_MYSQL_PASSWORD=$(cat "$D/password")"
echo "NODEPROBE_IT_MYSQL_DATABASE=kube_eventer"
echo "NODEPROBE_IT_MYSQL_SOCK=$D/sock"
echo "NODEPROBE_IT_MYSQL_DIR=$D"
