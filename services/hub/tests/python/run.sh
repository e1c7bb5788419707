#!/usr/bin/env bash
# Interoperability check: the official Azure IoT Python device SDK (azure-iot-device, from PyPI)
# connects to the hub over MQTT/TLS on 127.0.0.1:8883 (the SDK hard-codes 8883) with a device
# connection string plus GatewayHostName=localhost and the hub's development CA as
# server_verification_cert, sends 3 messages with custom properties, message id, correlation id and
# content type, and `hub monitor` must show them with those properties.
#
# Usage: services/hub/tests/python/run.sh
#   CARGO_TARGET_DIR   where the hub is built and the venv lives (default: <repo>/target)
#   HUB_BIN            a hub binary to use instead of building one
# Needs python3 (with venv) and, the first time, PyPI. Port 8883 must be free.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
venv="$target/pyvenv"
device=sdk-device

say() { printf 'python-sdk: %s\n' "$*"; }
fail() { printf 'python-sdk: FAILED: %s\n' "$*" >&2; exit 1; }

# The hub's own settings come from the file below only.
unset HUB_CONFIG HUB_URL HUB_SERVICE_CONNECTION_STRING HUB_CA_FILE

# Port 8883 first: nothing else is worth doing without it.
if ! python3 - <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", 8883))
except OSError as e:
    sys.exit(f"{e}")
EOF
then
    holder="$( (ss -ltnp 2>/dev/null || true) | awk '$4 ~ /:8883$/' )"
    fail "port 8883 on 127.0.0.1 is taken, and the Python SDK can only connect to 8883. Stop what listens there and rerun. ${holder}"
fi

if [ -n "${HUB_BIN:-}" ]; then
    hub="$HUB_BIN"
else
    say "building the hub (cargo build -p hub --bin hub)"
    (cd "$repo" && cargo build --quiet -p hub --bin hub)
    hub="$target/debug/hub"
fi
[ -x "$hub" ] || fail "no hub binary at $hub"

if ! "$venv/bin/python" -c 'import azure.iot.device' 2>/dev/null; then
    say "creating $venv and installing azure-iot-device from PyPI"
    python3 -m venv "$venv" || fail "python3 -m venv failed (is python3-venv installed?)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check azure-iot-device || fail "pip install azure-iot-device failed"
fi
sdk_version="$("$venv/bin/python" -c 'import azure.iot.device.constant as c; print(c.VERSION)' 2>/dev/null || echo unknown)"
say "azure-iot-device $sdk_version"

work="$(mktemp -d "${TMPDIR:-/tmp}/hub-python-sdk.XXXXXX")"
hub_pid=""
cleanup() {
    status=$?
    if [ -n "$hub_pid" ] && kill -0 "$hub_pid" 2>/dev/null; then
        kill "$hub_pid" 2>/dev/null || true
        wait "$hub_pid" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ -f "$work/hub.log" ]; then
        echo "--- hub log (last 40 lines) ---" >&2
        tail -n 40 "$work/hub.log" >&2
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

http_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
config="$work/hub.yaml"
cat >"$config" <<EOF
hub_name: pythonsdk
host_names: [localhost]
data_dir: $work/data
listeners:
  mqtt_tls: 127.0.0.1:8883
  mqtt_tcp: null
  https: null
  http: 127.0.0.1:$http_port
  admin: null
grace_period_secs: 1
telemetry:
  log_format: json
EOF

say "starting the hub: mqtt_tls 127.0.0.1:8883, http 127.0.0.1:$http_port, data in $work/data"
"$hub" serve -c "$config" >"$work/hub.log" 2>&1 &
hub_pid=$!
for _ in $(seq 1 300); do
    grep -q '"message":"hub started"' "$work/hub.log" 2>/dev/null && break
    kill -0 "$hub_pid" 2>/dev/null || fail "the hub exited at start (see its log below)"
    sleep 0.1
done
grep -q '"message":"hub started"' "$work/hub.log" || fail "the hub did not start within 30 s"

say "hub device create $device"
"$hub" device create "$device" -c "$config" >/dev/null
connection_string="$("$hub" device connection-string "$device" --gateway-host-name localhost -c "$config")"
ca_file="$("$hub" cert -c "$config")"
say "connection string: $(printf '%s' "$connection_string" | sed 's/SharedAccessKey=[^;]*/SharedAccessKey=<redacted>/')"
say "CA: $ca_file"

say "sending 3 messages with the SDK (MQTT/TLS to localhost:8883)"
HUB_DEVICE_CONNECTION_STRING="$connection_string" "$venv/bin/python" "$here/sdk_check.py" send "$ca_file" \
    || fail "the SDK could not send"

say "hub monitor --from earliest --timeout 5 -p sys app"
"$hub" monitor -c "$config" --device "$device" --from earliest --timeout 5 -p sys app >"$work/monitor.out" \
    || fail "hub monitor failed"
cat "$work/monitor.out"
"$venv/bin/python" "$here/sdk_check.py" check "$work/monitor.out"
say "passed"
