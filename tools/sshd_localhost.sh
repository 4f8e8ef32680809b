#!/usr/bin/env bash
# An sshd of its own on 127.0.0.1, for the tests of `--dask ssh:HOSTS` (and for trying the SSH
# recipe of docs/clusters.md on one machine).
#
#   tools/sshd_localhost.sh start DIR [VAR=VALUE...]
#       install openssh-server if missing (apt-get, as root); make DIR/host_key (the server's)
#       and DIR/client_key (the one key it accepts, for the user running this), DIR/sshd_config
#       (127.0.0.1 only, a free port, keys only; each VAR=VALUE set in the sessions' environment,
#       e.g. PYTHONPATH=...), and DIR/ssh_config (Host 127.0.0.1: that port, that key, that host
#       key only), then start sshd and wait until it answers.
#   tools/sshd_localhost.sh stop DIR
#
# A client uses it as ~/.ssh/config: copy DIR/ssh_config to HOME/.ssh/config (the tests give
# depth-eval a HOME of their own) or `ssh -F DIR/ssh_config 127.0.0.1`.
set -euo pipefail

# Seconds to wait for sshd to answer after starting it.
START_TIMEOUT_S=30

usage() { echo "usage: $0 start DIR [VAR=VALUE...] | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
shift 2

start() {
    if [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null 2>&1; then
        echo "installing openssh-server" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null; }
    fi
    chmod 700 "$dir"
    [ -f "$dir/host_key" ] || ssh-keygen -q -t ed25519 -N "" -f "$dir/host_key"
    [ -f "$dir/client_key" ] || ssh-keygen -q -t ed25519 -N "" -f "$dir/client_key"
    cp "$dir/client_key.pub" "$dir/authorized_keys"
    chmod 600 "$dir/authorized_keys"
    echo "127.0.0.1 $(cut -d' ' -f1,2 "$dir/host_key.pub")" > "$dir/known_hosts"
    # sshd refuses a privilege separation folder it does not own; Debian's is made by systemd.
    mkdir -p /run/sshd && chmod 755 /run/sshd
    local port user
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    user=$(id -un)
    {
        echo "ListenAddress 127.0.0.1:$port"
        echo "HostKey $dir/host_key"
        echo "PidFile $dir/sshd.pid"
        echo "AuthorizedKeysFile $dir/authorized_keys"
        echo "AllowUsers $user"
        echo "PubkeyAuthentication yes"
        echo "PasswordAuthentication no"
        echo "KbdInteractiveAuthentication no"
        echo "PermitRootLogin prohibit-password"
        echo "UsePAM no"
        echo "StrictModes no"
        echo "LogLevel ERROR"
        echo "Subsystem sftp internal-sftp"
        if [ $# -gt 0 ]; then echo "SetEnv $*"; fi
    } > "$dir/sshd_config"
    cat > "$dir/ssh_config" <<EOF
Host 127.0.0.1
    Port $port
    User $user
    IdentityFile $dir/client_key
    IdentitiesOnly yes
    UserKnownHostsFile $dir/known_hosts
    StrictHostKeyChecking yes
EOF
    /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until ssh -F "$dir/ssh_config" -o BatchMode=yes -o ConnectTimeout=2 127.0.0.1 true 2>/dev/null; do
        if [ $SECONDS -ge $deadline ]; then
            echo "$0: sshd does not answer after ${START_TIMEOUT_S} s; log in $dir/sshd.log" >&2
            stop
            exit 1
        fi
        sleep 0.2
    done
    echo "sshd up on 127.0.0.1:$port: ssh -F $dir/ssh_config 127.0.0.1"
}

stop() {
    [ -f "$dir/sshd.pid" ] || return 0
    local pid
    pid=$(cat "$dir/sshd.pid")
    # The listener only: sessions still open end when their client goes.
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/sshd.pid"
}

case $action in
    start) start "$@" ;;
    stop) stop ;;
    *) usage ;;
esac
