//! Two archivers on one PostgreSQL index and one container share a backlog of many blobs: no record
//! twice, none missing. One is killed with -9 mid-run; the other finishes its blobs once their
//! leases lapse.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret as _;

use crate::support::{Setup, get, message, write_json_blob};

fn spawn(setup: &Setup, api: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_storage-archiver"))
        .arg("serve")
        .env("STORAGE_ARCHIVER_INDEX", setup.config.index.expose_secret())
        .env(
            "STORAGE_ARCHIVER_CONTAINER__CONNECTION_STRING",
            setup.config.container.connection_string.expose_secret(),
        )
        .env("STORAGE_ARCHIVER_CONTAINER__NAME", &setup.config.container.name)
        .env("STORAGE_ARCHIVER_POLL_INTERVAL_MS", "100")
        .env("STORAGE_ARCHIVER_LEASE_SECS", "5")
        .env("STORAGE_ARCHIVER_BATCH_RECORDS", "50")
        .env("STORAGE_ARCHIVER_API", format!("127.0.0.1:{api}"))
        .env("STORAGE_ARCHIVER_ADMIN", format!("127.0.0.1:{}", free_port()))
        .env("STORAGE_ARCHIVER_TELEMETRY__LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_a_backlog_and_survive_a_kill() {
    let setup = Setup::new(true);
    let per_blob = 200u64;
    let blobs = 60u64;
    for b in 0..blobs {
        let messages: Vec<_> = (0..per_blob)
            .map(|i| {
                let n = b * per_blob + i;
                message(
                    &format!("d{}", n % 10),
                    n,
                    Some("storage"),
                    15.0,
                    1_795_651_200_000 + n as i64 * 10,
                )
            })
            .collect();
        write_json_blob(
            &setup.container,
            &format!("hub/{}/2026/11/26/00/{b:02}.json", b % 2),
            &messages,
        );
    }
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = spawn(&setup, port_a);
    let mut b = spawn(&setup, port_b);
    // Let them get going, then kill one mid-run.
    let started = Instant::now();
    loop {
        let (_, stats) = get(&format!("http://127.0.0.1:{port_b}/v1/stats")).await;
        if stats["records"].as_u64().unwrap_or(0) > 1000 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "indexing started: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.kill().unwrap();
    a.wait().unwrap();
    let expected = blobs * per_blob;
    loop {
        let (_, stats) = get(&format!("http://127.0.0.1:{port_b}/v1/stats")).await;
        let indexed = stats["blobs"]["indexed"].as_u64().unwrap_or(0);
        if indexed == blobs {
            assert_eq!(stats["records"], expected, "every record exactly once: {stats}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the survivor finishes: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.kill().unwrap();
    b.wait().unwrap();
}
