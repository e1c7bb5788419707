//! Kill -9 the hub mid-run and restart it: devices reconnect with backoff and resume; nothing the
//! hub acknowledged is counted as failed, and everything not acknowledged is reported.

use std::time::Duration;

use crate::support::{HubProcess, read_events, simulate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_ride_out_a_hub_crash() {
    let mut hub = HubProcess::start();
    let mut config = hub.sim_config(10);
    config.interval_ms = Some(20);
    config.duration_secs = Some(12);
    let run = tokio::spawn(simulate(config));
    tokio::time::sleep(Duration::from_secs(3)).await;
    hub.kill();
    let before_restart = read_events(&hub.data_dir).len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    hub.restart();
    let report = run.await.unwrap();
    let stored = read_events(&hub.data_dir).len();

    assert!(
        report.acked > 0 && stored > before_restart,
        "devices resumed after the restart: {report:?}"
    );
    assert!(
        stored as u64 >= report.acked,
        "every acknowledged message is in the hub: {stored} stored, {} acked",
        report.acked
    );
    let unacked = report.failed.get("unacknowledged").copied().unwrap_or(0);
    assert_eq!(
        report.sent,
        report.acked + unacked,
        "everything not acknowledged is reported: {report:?}"
    );
    assert!(report.device_errors.is_empty(), "{report:?}");
}
