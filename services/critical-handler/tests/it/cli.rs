//! The binary: a bad configuration stops it with exit code 64 and one line naming the setting; the
//! dead-letter tools list, show and replay.

use std::process::{Command, Output};
use std::time::Duration;

use queue::QueueOptions;

use crate::crm::{Answer, Crm, SECRET};
use crate::support::{Kind, Running, TestQueue, config, init_tracing};

fn handler(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_critical-handler"));
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

#[test]
fn a_bad_configuration_exits_64_naming_the_setting() {
    let good = [
        (
            "CRITICAL_HANDLER_QUEUE__CONNECTION_STRING",
            "sqlite:///tmp/never-opened.db",
        ),
        ("CRITICAL_HANDLER_WEBHOOK__URL", "https://crm.example.com/tickets"),
        ("CRITICAL_HANDLER_WEBHOOK__SIGNING_SECRET", SECRET),
    ];
    let cases: &[(&str, &str, &str)] = &[
        ("CRITICAL_HANDLER_WEBHOOK__URL", "", "webhook.url: required"),
        (
            "CRITICAL_HANDLER_WEBHOOK__URL",
            "http://crm.example.com/tickets",
            "webhook.url",
        ),
        (
            "CRITICAL_HANDLER_WEBHOOK__URL",
            "https://10.0.0.5/tickets",
            "webhook.url",
        ),
        ("CRITICAL_HANDLER_WEBHOOK__URL", "not a url", "webhook.url"),
        (
            "CRITICAL_HANDLER_WEBHOOK__SIGNING_SECRET",
            "hunter2",
            "webhook.signing_secret",
        ),
        (
            "CRITICAL_HANDLER_QUEUE__CONNECTION_STRING",
            "ftp://queue",
            "queue.connection_string",
        ),
        ("CRITICAL_HANDLER_CONCURRENCY", "0", "concurrency"),
        ("CRITICAL_HANDLER_WEBHOOK__PRESET", "salesforce", "salesforce"),
        ("CRITICAL_HANDLER_WEBHOOK__TIMEOUTSECS", "5", "timeoutsecs"),
    ];
    for (key, value, expected) in cases {
        let mut env: Vec<(&str, &str)> = good.iter().filter(|(k, _)| k != key).copied().collect();
        env.push((key, value));
        let out = handler(&["serve"], &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{key}={value}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{key}={value}: {stderr:?} should name {expected:?}"
        );
        assert!(
            !stderr.contains("C2FVsBQIhrscChlQIMV"),
            "the secret is never printed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_can_be_listed_shown_and_replayed() {
    init_tracing();
    let queue = TestQueue::new(Kind::Sqlite, QueueOptions::default()).await;
    let crm = Crm::start();
    crm.script([Answer::Status(422, vec![]), Answer::Status(422, vec![])]);
    queue.send_critical("dlq", 2).await;
    let running = Running::start(config(&queue, &crm));
    crate::support::eventually(Duration::from_secs(20), "both dead-lettered", || async {
        queue.queue.dead_letter_len().await.unwrap() == 2
    })
    .await;
    running.stop().await;

    let env = [
        (
            "CRITICAL_HANDLER_QUEUE__CONNECTION_STRING",
            queue.connection.as_str(),
        ),
        ("CRITICAL_HANDLER_QUEUE__NAME", queue.name.as_str()),
    ];
    let list = handler(&["dlq", "list"], &env);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    assert!(text.contains("dlq-0") && text.contains("dlq-1"), "{text}");
    assert!(
        text.contains("WebhookRejected") && text.contains("turbine-7"),
        "{text}"
    );
    assert!(text.contains("2 message(s)"), "{text}");

    let show = handler(&["dlq", "show", "dlq-1"], &env);
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["reason"], "WebhookRejected");
    assert!(shown["body"]["text"].as_str().unwrap().contains("windSpeed"));
    assert_eq!(shown["properties"]["level"], "critical");

    let missing = handler(&["dlq", "show", "nope"], &env);
    assert!(!missing.status.success());

    let replay = handler(&["dlq", "replay", "--id", "dlq-1"], &env);
    let text = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(text.contains("replayed 1 message(s); 1 left"), "{text}");
    assert_eq!(queue.queue.dead_letter_len().await.unwrap(), 1);

    // The CRM accepts it now: the replayed message becomes a ticket, without its old reason.
    let running = Running::start(config(&queue, &crm));
    crm.wait_for_tickets(1, Duration::from_secs(20)).await;
    running.stop().await;
    let ticket = &crm.tickets()["dlq-1"];
    assert!(
        ticket["data"]["properties"].get("DeadLetterReason").is_none(),
        "{ticket}"
    );

    let replay_all = handler(&["dlq", "replay", "--all"], &env);
    assert!(String::from_utf8_lossy(&replay_all.stdout).contains("replayed 1 message(s); 0 left"));
    assert_eq!(queue.queue.dead_letter_len().await.unwrap(), 0);
}
