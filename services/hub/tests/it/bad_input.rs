//! Bad input on the live MQTT listener — garbage, truncated packets, huge remaining lengths,
//! protocol violations, slow clients and a CONNECT flood — affects only its own connection: the hub
//! closes it (or serves it, slowly), and a good device connected alongside keeps publishing and
//! getting PUBACKs throughout.

use std::time::Duration;

use bytes::BytesMut;
use rumqttc::QoS;
use rumqttc::mqttbytes::v4::{Connect, Publish};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::events::message_id;
use crate::support::mqtt::{Link, MqttDevice, Outcome};
use crate::support::{Device, HOST, TestHub, within};

/// The connect timeout of these tests' hub, in seconds (the smallest the hub allows).
const CONNECT_TIMEOUT_SECS: u64 = 1;

fn hub() -> TestHub {
    TestHub::start_with(|config| config.limits.connect_timeout_secs = CONNECT_TIMEOUT_SECS)
}

/// A valid CONNECT of `device`, asking for this keep-alive (the hub allows 1.5 times it between
/// complete packets).
fn connect_packet(device: &Device, keep_alive: u16) -> Vec<u8> {
    let mut connect = Connect::new(device.id.clone());
    connect.keep_alive = keep_alive;
    connect.set_login(
        format!(
            "{HOST}/{}/?api-version={}",
            device.id,
            iothub_protocol::API_VERSION
        ),
        device.token(),
    );
    let mut buffer = BytesMut::new();
    connect.write(&mut buffer).unwrap();
    buffer.to_vec()
}

/// A valid QoS 1 PUBLISH of `device`'s telemetry, packet id 1.
fn publish_packet(device: &Device, payload: &str) -> Vec<u8> {
    let mut publish = Publish::new(
        device.topic("$.mid=slow"),
        QoS::AtLeastOnce,
        payload.as_bytes().to_vec(),
    );
    publish.pkid = 1;
    let mut buffer = BytesMut::new();
    publish.write(&mut buffer).unwrap();
    buffer.to_vec()
}

const CONNACK_OK: [u8; 4] = [0x20, 0x02, 0x00, 0x00];
const PUBACK_1: [u8; 4] = [0x40, 0x02, 0x00, 0x01];

/// How the bad client sends its bytes.
#[derive(Debug, Clone)]
enum Send {
    /// All at once, then it waits.
    Once(Vec<u8>),
    /// All at once, then it closes its side.
    ThenClose(Vec<u8>),
    /// One byte at a time, this far apart.
    Dribble(Vec<u8>, Duration),
}

/// A bad client: whether it logs in first (and with which keep-alive), what it sends, and what it
/// must get back before the hub closes the connection.
#[derive(Debug)]
struct Case {
    name: &'static str,
    logged_in: Option<u16>,
    send: Send,
    reply: &'static [u8],
}

fn cases(bad: &Device) -> Vec<Case> {
    let connect = connect_packet(bad, 60);
    let publish = publish_packet(bad, "dribbled");
    let garbage = b"\xff\xfe\xfd\x00 not MQTT at all \x00\x01\x02".to_vec();
    let huge_length = |first: u8| vec![first, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x04, b't', b'o', b'p', b'i'];
    let slow = Duration::from_millis(50);
    vec![
        Case {
            name: "garbage before CONNECT",
            logged_in: None,
            send: Send::Once(garbage.clone()),
            reply: &[],
        },
        Case {
            name: "an HTTP request on the MQTT port",
            logged_in: None,
            send: Send::Once(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec()),
            reply: &[],
        },
        Case {
            name: "a truncated CONNECT, then close",
            logged_in: None,
            send: Send::ThenClose(connect[..connect.len() / 2].to_vec()),
            reply: &[],
        },
        Case {
            name: "a truncated CONNECT, then silence",
            logged_in: None,
            send: Send::Once(connect[..20].to_vec()),
            reply: &[],
        },
        Case {
            name: "a 256 MB remaining length before CONNECT",
            logged_in: None,
            send: Send::Once(huge_length(0x10)),
            reply: &[],
        },
        Case {
            name: "a remaining length of five bytes",
            logged_in: None,
            send: Send::Once(vec![0x10, 0xff, 0xff, 0xff, 0xff, 0x01]),
            reply: &[],
        },
        Case {
            name: "PUBLISH before CONNECT",
            logged_in: None,
            send: Send::Once(publish.clone()),
            reply: &[],
        },
        Case {
            name: "a CONNECT dribbled slower than the connect timeout",
            logged_in: None,
            send: Send::Dribble(connect.clone(), slow),
            reply: &[],
        },
        Case {
            name: "garbage after CONNECT",
            logged_in: Some(60),
            send: Send::Once(b"\x00\x05hello, not MQTT".to_vec()),
            reply: &[],
        },
        // A frame that never completes: the keep-alive (1.5 s here) ends it.
        Case {
            name: "garbage declaring a long frame after CONNECT",
            logged_in: Some(1),
            send: Send::Once(garbage),
            reply: &[],
        },
        Case {
            name: "a truncated PUBLISH, then silence",
            logged_in: Some(1),
            send: Send::Once(publish[..10].to_vec()),
            reply: &[],
        },
        Case {
            name: "a truncated PUBLISH, then close",
            logged_in: Some(60),
            send: Send::ThenClose(publish[..10].to_vec()),
            reply: &[],
        },
        Case {
            name: "a 256 MB remaining length after CONNECT",
            logged_in: Some(60),
            send: Send::Once(huge_length(0x32)),
            reply: &[],
        },
        Case {
            name: "a second CONNECT",
            logged_in: Some(60),
            send: Send::Once(connect),
            reply: &[],
        },
        Case {
            name: "a CONNACK from the client",
            logged_in: Some(60),
            send: Send::Once(CONNACK_OK.to_vec()),
            reply: &[],
        },
        // Slow but valid: served, slowly, while the good device is not held up.
        Case {
            name: "a PUBLISH dribbled byte by byte",
            logged_in: Some(60),
            send: Send::Dribble(publish, slow),
            reply: &PUBACK_1,
        },
    ]
}

/// Reads until the hub closes the connection (EOF or reset) or `enough` bytes came; returns them.
async fn read_until_closed(stream: &mut TcpStream, enough: usize) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 256];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
        if enough > 0 && received.len() >= enough {
            return received;
        }
    }
}

/// Sends the case's bytes; a write the hub already refused (closed) ends the sending.
async fn send(stream: &mut TcpStream, send: &Send) {
    match send {
        Send::Once(bytes) => {
            let _ = stream.write_all(bytes).await;
        }
        Send::ThenClose(bytes) => {
            let _ = stream.write_all(bytes).await;
            let _ = stream.shutdown().await;
        }
        Send::Dribble(bytes, gap) => {
            for byte in bytes {
                if stream.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(*gap).await;
            }
        }
    }
}

/// Runs one bad client to its end; returns what it received after logging in (if it did).
async fn run_bad_client(addr: std::net::SocketAddr, bad: Device, case: &Case) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    if let Some(keep_alive) = case.logged_in {
        stream.write_all(&connect_packet(&bad, keep_alive)).await.unwrap();
        let mut connack = [0u8; 4];
        stream.read_exact(&mut connack).await.unwrap();
        assert_eq!(connack, CONNACK_OK, "{}: the bad client's own login", case.name);
    }
    send(&mut stream, &case.send).await;
    read_until_closed(&mut stream, case.reply.len()).await
}

/// The good device publishes `count` QoS 1 messages; each must be acknowledged.
async fn good_device_publishes(good: &mut MqttDevice, device: &Device, count: usize, case: &str) {
    for i in 0..count {
        let outcome = good
            .publish(&device.topic(""), QoS::AtLeastOnce, format!("{case} #{i}"))
            .await;
        assert_eq!(outcome, Outcome::Acked, "{case}: the good device's message #{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_affects_only_its_own_connection() {
    let hub = hub();
    let device = hub.create_device("good").await;
    let bad = hub.create_device("bad").await;
    let mut good = hub.connect(&device, Link::Tcp).await;
    for case in cases(&bad) {
        let name = case.name;
        let client = tokio::spawn({
            let addr = hub.mqtt_tcp;
            let bad = bad.clone();
            async move {
                let received = run_bad_client(addr, bad, &case).await;
                (case, received)
            }
        });
        // While the bad client does its worst, the good device carries on.
        good_device_publishes(&mut good, &device, 5, "during").await;
        let (case, received) = within(&format!("the hub to close: {name}"), client)
            .await
            .unwrap();
        assert_eq!(
            received, case.reply,
            "{}: what the bad client got before the hub closed it",
            case.name
        );
        good_device_publishes(&mut good, &device, 1, case.name).await;
    }
    // The hub is still up for everyone: a fresh login works and the admin server answers.
    let mut fresh = hub.connect(&bad, Link::Tls).await;
    assert_eq!(
        fresh
            .publish(&bad.topic("$.mid=after"), QoS::AtLeastOnce, "after")
            .await,
        Outcome::Acked
    );
    assert_eq!(hub.admin("/live").await.0, 200);
    // Of all the bad client sent, only the complete (dribbled) PUBLISH was stored.
    let stored = hub.events_until_marker(&bad.id, "after").await;
    let ids: Vec<&str> = stored.iter().map(message_id).collect();
    assert_eq!(ids, ["slow", "after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_flood_is_closed_by_the_connect_timeout() {
    const FLOOD_TCP: usize = 200;
    const FLOOD_TLS: usize = 50;
    let hub = hub();
    let device = hub.create_device("good").await;
    let mut good = hub.connect(&device, Link::Tls).await;
    // Connections that never send CONNECT (nor, on the TLS port, a ClientHello).
    let mut flood = Vec::new();
    for i in 0..FLOOD_TCP + FLOOD_TLS {
        let addr = if i < FLOOD_TCP { hub.mqtt_tcp } else { hub.mqtt_tls };
        flood.push(
            within("a flood connection", TcpStream::connect(addr))
                .await
                .unwrap(),
        );
    }
    good_device_publishes(&mut good, &device, 20, "during the flood").await;
    let newcomer = hub.create_device("newcomer").await;
    let mut second = hub.connect(&newcomer, Link::Tcp).await;
    assert_eq!(
        second.publish(&newcomer.topic(""), QoS::AtLeastOnce, "x").await,
        Outcome::Acked
    );

    // Every idle connection is closed by the hub, with nothing sent to it.
    let closed = futures_util::future::join_all(flood.iter_mut().map(|stream| read_until_closed(stream, 0)));
    let received = within("the hub to close the flood", closed).await;
    assert!(received.iter().all(Vec::is_empty), "a flood connection got bytes");
    let timeouts = hub
        .metric("hub_connects_total{outcome=\"connect_timeout\"}")
        .await;
    assert_eq!(
        timeouts, FLOOD_TCP as f64,
        "the plain-TCP flood counted as connect timeouts"
    );
    good_device_publishes(&mut good, &device, 1, "after the flood").await;
    let (mut again, _) = MqttDevice::connect(hub.mqtt_options(Link::Tcp, "newcomer", &newcomer.token()))
        .await
        .unwrap();
    assert_eq!(
        again.publish(&newcomer.topic(""), QoS::AtLeastOnce, "y").await,
        Outcome::Acked
    );
}
