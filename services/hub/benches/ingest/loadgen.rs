//! An MQTT 3.1.1 load generator: N device connections publishing 200-byte JSON records, QoS 0 or 1,
//! with a per-connection in-flight window, several PUBLISHes per write, optional pacing, and
//! publish→PUBACK latency in an HDR histogram. The same generator drives Mosquitto and the hub.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hdrhistogram::Histogram;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, Packet, PubAck, Publish, Subscribe};
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use tokio::sync::Semaphore;

/// One simulated device.
#[derive(Clone)]
pub(crate) struct Device {
    pub(crate) client_id: String,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) topic: String,
}

/// What to send.
#[derive(Clone)]
pub(crate) struct Load {
    pub(crate) addr: SocketAddr,
    pub(crate) devices: Vec<Device>,
    pub(crate) qos: QoS,
    /// QoS 1 PUBLISHes awaiting PUBACK per connection.
    pub(crate) inflight: usize,
    /// PUBLISHes per socket write.
    pub(crate) batch: usize,
    /// Total messages per second, or as fast as possible.
    pub(crate) rate: Option<u64>,
    /// QoS 0 with a subscriber: most messages sent but not yet delivered, across connections.
    pub(crate) window: Option<i64>,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
}

/// Counters shared by every connection.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) outstanding: AtomicI64,
    pub(crate) measuring: AtomicBool,
    pub(crate) stop: AtomicBool,
}

/// What one run measured.
pub(crate) struct Outcome {
    pub(crate) seconds: f64,
    pub(crate) acked: u64,
    pub(crate) delivered: u64,
    pub(crate) latency_us: Histogram<u64>,
}

pub(crate) fn payload(seq: u64) -> Vec<u8> {
    let mut text = format!(
        r#"{{"seq":{seq:020},"deviceId":"dev","level":"critical","temperature":21.53,"humidity":55.1,"battery":47,"fw":"1.3.13","pad":""#
    );
    while text.len() < 198 {
        text.push('x');
    }
    text.push_str("\"}");
    text.into_bytes()
}

async fn connect(addr: SocketAddr, device: &Device) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut connect = Connect::new(device.client_id.clone());
    connect.keep_alive = 60;
    if let (Some(u), Some(p)) = (&device.username, &device.password) {
        connect.set_login(u.clone(), p.clone());
    }
    let mut buf = BytesMut::new();
    connect.write(&mut buf).map_err(std::io::Error::other)?;
    stream.write_all(&buf).await?;
    let mut read = BytesMut::with_capacity(64);
    loop {
        if stream.read_buf(&mut read).await? == 0 {
            return Err(std::io::Error::other("closed before CONNACK"));
        }
        match Packet::read(&mut read, 1 << 20) {
            Ok(Packet::ConnAck(ack)) if ack.code == rumqttc::mqttbytes::v4::ConnectReturnCode::Success => {
                return Ok(stream);
            }
            Ok(other) => return Err(std::io::Error::other(format!("CONNACK refused: {other:?}"))),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => continue,
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
    }
}

/// A subscriber counting every message on `devices/#`, at `qos`: the baseline's other half, as
/// perf-baselines B2 (QoS 0) and B4 (QoS 1, PUBACKing every message) define it.
pub(crate) async fn subscriber(
    addr: SocketAddr,
    qos: QoS,
    counters: Arc<Counters>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let device = Device {
        client_id: "bench-sub".into(),
        username: None,
        password: None,
        topic: String::new(),
    };
    let mut stream = connect(addr, &device).await?;
    let mut buf = BytesMut::new();
    let mut subscribe = Subscribe::new("devices/#", qos);
    subscribe.pkid = 1;
    subscribe.write(&mut buf).map_err(std::io::Error::other)?;
    stream.write_all(&buf).await?;
    Ok(tokio::spawn(async move {
        let mut read = BytesMut::with_capacity(1 << 20);
        let mut acks = BytesMut::new();
        while !counters.stop.load(Ordering::Relaxed) {
            match stream.read_buf(&mut read).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            loop {
                match Packet::read(&mut read, 1 << 20) {
                    Ok(Packet::Publish(publish)) => {
                        counters.delivered.fetch_add(1, Ordering::Relaxed);
                        counters.outstanding.fetch_sub(1, Ordering::Relaxed);
                        if publish.qos == QoS::AtLeastOnce
                            && PubAck::new(publish.pkid).write(&mut acks).is_err()
                        {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            if !acks.is_empty() && stream.write_all(&acks.split()).await.is_err() {
                return;
            }
        }
    }))
}

/// Runs `load` and measures its window.
pub(crate) async fn run(load: &Load, counters: Arc<Counters>) -> std::io::Result<Outcome> {
    let histograms: Arc<Mutex<Histogram<u64>>> = Arc::new(Mutex::new(
        Histogram::new_with_bounds(1, 60_000_000, 3).map_err(std::io::Error::other)?,
    ));
    let mut tasks = Vec::new();
    let per_connection_rate = load.rate.map(|r| r as f64 / load.devices.len() as f64);
    for device in &load.devices {
        let stream = connect(load.addr, device).await?;
        let (reader, writer) = stream.into_split();
        let window = Arc::new(Semaphore::new(load.inflight));
        let sent_at = Arc::new(std::sync::Mutex::new(vec![None::<Instant>; 65536]));
        tasks.push(tokio::spawn(read_acks(
            reader,
            Arc::clone(&window),
            Arc::clone(&sent_at),
            Arc::clone(&counters),
            Arc::clone(&histograms),
        )));
        tasks.push(tokio::spawn(write_publishes(
            writer,
            device.topic.clone(),
            load.clone(),
            window,
            sent_at,
            Arc::clone(&counters),
            per_connection_rate,
        )));
    }
    tokio::time::sleep(load.warmup).await;
    let (_, acked0, delivered0) = snapshot(&counters);
    counters.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(load.duration).await;
    let seconds = started.elapsed().as_secs_f64();
    counters.measuring.store(false, Ordering::Relaxed);
    let (_, acked1, delivered1) = snapshot(&counters);
    counters.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.abort();
    }
    let latency_us = histograms.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(Outcome {
        seconds,
        acked: acked1 - acked0,
        delivered: delivered1 - delivered0,
        latency_us,
    })
}

fn snapshot(c: &Counters) -> (u64, u64, u64) {
    (
        c.sent.load(Ordering::Relaxed),
        c.acked.load(Ordering::Relaxed),
        c.delivered.load(Ordering::Relaxed),
    )
}

async fn write_publishes(
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    topic: String,
    load: Load,
    window: Arc<Semaphore>,
    sent_at: Arc<std::sync::Mutex<Vec<Option<Instant>>>>,
    counters: Arc<Counters>,
    rate: Option<f64>,
) {
    let mut pkid: u16 = 0;
    let mut seq = 0u64;
    let started = Instant::now();
    let mut buf = BytesMut::with_capacity(load.batch * 300);
    while !counters.stop.load(Ordering::Relaxed) {
        let mut n = load.batch;
        if let Some(rate) = rate {
            n = 1;
            let due = started + Duration::from_secs_f64(seq as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        if let Some(limit) = load.window {
            while counters.outstanding.load(Ordering::Relaxed) > limit
                && !counters.stop.load(Ordering::Relaxed)
            {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        if load.qos == QoS::AtLeastOnce {
            match window.acquire_many(n as u32).await {
                Ok(permit) => permit.forget(),
                Err(_) => return,
            }
        }
        buf.clear();
        let now = Instant::now();
        {
            let mut times = sent_at.lock().unwrap_or_else(|e| e.into_inner());
            for _ in 0..n {
                let mut publish = Publish::new(topic.clone(), load.qos, payload(seq));
                seq += 1;
                if load.qos == QoS::AtLeastOnce {
                    pkid = if pkid == u16::MAX { 1 } else { pkid + 1 };
                    publish.pkid = pkid;
                    times[pkid as usize] = Some(now);
                }
                let _ = publish.write(&mut buf);
            }
        }
        if writer.write_all(&buf).await.is_err() {
            return;
        }
        counters.sent.fetch_add(n as u64, Ordering::Relaxed);
        counters.outstanding.fetch_add(n as i64, Ordering::Relaxed);
    }
}

async fn read_acks(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    window: Arc<Semaphore>,
    sent_at: Arc<std::sync::Mutex<Vec<Option<Instant>>>>,
    counters: Arc<Counters>,
    histogram: Arc<Mutex<Histogram<u64>>>,
) {
    let mut read = BytesMut::with_capacity(64 * 1024);
    let mut latencies = Vec::with_capacity(1024);
    loop {
        match reader.read_buf(&mut read).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let now = Instant::now();
        let measuring = counters.measuring.load(Ordering::Relaxed);
        let mut acked = 0u64;
        {
            let mut times = sent_at.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                match Packet::read(&mut read, 1 << 20) {
                    Ok(Packet::PubAck(ack)) => {
                        acked += 1;
                        if let Some(sent) = times[ack.pkid as usize].take()
                            && measuring
                        {
                            latencies.push(now.duration_since(sent).as_micros().max(1) as u64);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        if acked > 0 {
            counters.acked.fetch_add(acked, Ordering::Relaxed);
            counters.outstanding.fetch_sub(acked as i64, Ordering::Relaxed);
            window.add_permits(acked as usize);
        }
        if !latencies.is_empty() {
            let mut shared = histogram.lock().unwrap_or_else(|e| e.into_inner());
            for l in latencies.drain(..) {
                let _ = shared.record(l);
            }
        }
        if counters.stop.load(Ordering::Relaxed) {
            break;
        }
    }
}
