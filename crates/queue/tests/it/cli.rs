//! The `queue` operator CLI on a SQLite file: create, send, len, peek, dead-letters, requeue.

use std::process::Command;
use std::time::Duration;

use queue::QueueClient;

fn cli(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_queue"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[tokio::test]
async fn dead_letters_can_be_inspected_and_requeued() {
    let dir = tempfile::tempdir().unwrap();
    let conn = format!("sqlite://{}", dir.path().join("q.db").display());
    assert_eq!(cli(&["create", &conn, "critical"]).0, 0);
    assert_eq!(
        cli(&[
            "send",
            &conn,
            "critical",
            "{\"windSpeed\":9}",
            "--id",
            "m1",
            "--property",
            "level=critical"
        ])
        .0,
        0
    );

    let client = QueueClient::connect(&conn).await.unwrap();
    let q = client.queue("critical").await.unwrap();
    let m = q
        .receive(1, Duration::from_secs(10))
        .await
        .unwrap()
        .pop()
        .unwrap();
    q.dead_letter(&m.lock_token, "CrmDown", "webhook answered 500")
        .await
        .unwrap();

    assert_eq!(
        cli(&["len", &conn, "critical"]),
        (0, "active 0\ndead-lettered 1\n".to_owned())
    );
    let (code, out) = cli(&["dead-letters", &conn, "critical"]);
    assert_eq!(code, 0);
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["message_id"], "m1");
    assert_eq!(line["properties"]["DeadLetterReason"], "CrmDown");
    assert_eq!(line["body"]["text"], "{\"windSpeed\":9}");

    assert_eq!(
        cli(&["requeue", &conn, "critical"]),
        (0, "requeued 1\n".to_owned())
    );
    let (_, peeked) = cli(&["peek", &conn, "critical"]);
    let line: serde_json::Value = serde_json::from_str(peeked.trim()).unwrap();
    assert_eq!(line["message_id"], "m1");
    assert_eq!(
        line["properties"],
        serde_json::json!({"level": "critical"}),
        "dead-letter properties removed"
    );
}

#[test]
fn bad_input_exits_with_usage_codes() {
    assert_eq!(cli(&["len", "sqlite://x.db?bogus=1", "critical"]).0, 64);
    let dir = tempfile::tempdir().unwrap();
    let conn = format!("sqlite://{}", dir.path().join("q.db").display());
    assert_eq!(cli(&["len", &conn, "missing"]).0, 69);
}
