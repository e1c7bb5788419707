"""The official Azure IoT Python device SDK (azure-iot-device) against the local hub.

    sdk_check.py send CA_FILE      send the messages below, connection string in
                                   HUB_DEVICE_CONNECTION_STRING (it holds a key: not on argv)
    sdk_check.py check MONITOR_OUT check `hub monitor -p sys app` output shows them

Exit status 0 on success, 1 with a message on stderr otherwise.
"""

import json
import os
import sys

DEVICE = "sdk-device"

# What the SDK sends and `hub monitor` must show: payload, system and application properties.
MESSAGES = [
    {
        "payload": {"deviceId": DEVICE, "windSpeed": 10 + i, "unit": "m/s"},
        "system": {
            "message_id": f"sdk-msg-{i}",
            "correlation_id": f"sdk-corr-{i}",
            "content_type": "application/json",
            "content_encoding": "utf-8",
        },
        "application": {"level": "critical" if i == 0 else "storage", "sequence": str(i), "unit": "°C/s"},
    }
    for i in range(3)
]


def send(ca_file):
    from azure.iot.device import IoTHubDeviceClient, Message

    connection_string = os.environ["HUB_DEVICE_CONNECTION_STRING"]
    with open(ca_file, encoding="ascii") as f:
        ca_pem = f.read()
    client = IoTHubDeviceClient.create_from_connection_string(
        connection_string, server_verification_cert=ca_pem, connection_retry=False
    )
    client.connect()
    try:
        for expected in MESSAGES:
            message = Message(json.dumps(expected["payload"]))
            system = expected["system"]
            message.message_id = system["message_id"]
            message.correlation_id = system["correlation_id"]
            message.content_type = system["content_type"]
            message.content_encoding = system["content_encoding"]
            message.custom_properties.update(expected["application"])
            # Returns once the hub's PUBACK arrived (QoS 1).
            client.send_message(message)
            print(f"sent {system['message_id']} with {expected['application']}")
    finally:
        client.shutdown()


def events(text):
    """The JSON documents of `hub monitor` output, after its banner line."""
    decoder = json.JSONDecoder()
    banner, _, rest = text.partition("\n")
    if not banner.startswith("Starting event monitor"):
        raise SystemExit(f"unexpected monitor output: {banner!r}")
    found, i = [], 0
    while True:
        while i < len(rest) and rest[i].isspace():
            i += 1
        if i == len(rest):
            return found
        document, i = decoder.raw_decode(rest, i)
        found.append(document["event"])


def check(monitor_out):
    with open(monitor_out, encoding="utf-8") as f:
        shown = [e for e in events(f.read()) if e.get("origin") == DEVICE]
    problems = []
    if len(shown) != len(MESSAGES):
        problems.append(f"{len(shown)} events of {DEVICE}, expected {len(MESSAGES)}")
    for expected, event in zip(MESSAGES, shown):
        name = expected["system"]["message_id"]
        properties = event.get("properties", {})
        system = properties.get("system", {})
        for key, value in expected["system"].items():
            if system.get(key) != value:
                problems.append(f"{name}: system.{key} is {system.get(key)!r}, expected {value!r}")
        if properties.get("application") != expected["application"]:
            problems.append(f"{name}: application is {properties.get('application')!r}, expected {expected['application']!r}")
        if event.get("payload") != expected["payload"]:
            problems.append(f"{name}: payload is {event.get('payload')!r}, expected {expected['payload']!r}")
    if problems:
        print("hub monitor does not show what the SDK sent:", *problems, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    print(f"hub monitor shows the {len(MESSAGES)} messages with their system and application properties")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("send", "check"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    {"send": send, "check": check}[sys.argv[1]](sys.argv[2])
