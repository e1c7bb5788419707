//! 1,000 devices at 5,000 msg/s for 30 s against the hub: the report's counts match what the hub
//! received.

use std::collections::BTreeSet;

use crate::support::{TestHub, simulate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_devices_at_five_thousand_messages_per_second() {
    let hub = TestHub::start();
    let mut config = hub.sim_config(1000);
    config.rate = Some(5000.0);
    config.duration_secs = Some(30);
    let report = simulate(config).await;
    let events = hub.events();
    assert_eq!(report.devices, 1000);
    assert_eq!(report.acked, events.len() as u64, "{report:?}");
    assert_eq!(report.sent, report.acked, "{report:?}");
    assert!(report.failed.values().all(|n| *n == 0), "{report:?}");
    assert!(report.achieved_rate > 4000.0, "{report:?}");
    let devices: BTreeSet<_> = events.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(devices.len(), 1000, "every device sent");
}
