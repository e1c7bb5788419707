//! Query API bad input: malformed times, huge limits, invalid conditions (with their position),
//! unknown parameters and SQL-injection attempts in every parameter → clear 400s (or simply no
//! match), and nothing else touched.

use crate::support::{Running, Setup, encode, message, write_json_blob};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_get_clear_400s_and_touch_nothing() {
    let setup = Setup::new(false);
    let messages: Vec<_> = (0..10)
        .map(|n| message("d1", n, Some("storage"), 20.0, 1_795_651_200_000 + n as i64))
        .collect();
    write_json_blob(&setup.container, "hub/0/2026/11/26/00/00.json", &messages);
    let running = Running::start(setup.config.clone());
    running.wait_for_records(10).await;

    let bad: &[(&str, &str)] = &[
        ("/v1/messages?from=yesterday", "invalid_time"),
        ("/v1/messages?to=2026-13-01T00:00:00Z", "invalid_time"),
        (
            "/v1/messages?from=2026-11-27T00:00:00Z&to=2026-11-26T00:00:00Z",
            "invalid_time",
        ),
        ("/v1/messages?limit=0", "invalid_limit"),
        ("/v1/messages?limit=100000000", "invalid_limit"),
        ("/v1/messages?limit=-5", "invalid_limit"),
        ("/v1/messages?cursor=not-a-cursor", "invalid_cursor"),
        ("/v1/messages?deviceld=typo", "invalid_parameter"),
        ("/v1/blobs?status=deleted", "invalid_status"),
    ];
    for (path, code) in bad {
        let (status, body) = running.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["code"], *code, "{path}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{path}: {body}"
        );
    }

    // A condition that does not compile names its position.
    let (status, body) = running
        .get(&format!("/v1/messages?where={}", encode("level = 3")))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_condition");
    assert!(body["compilationErrors"][0]["location"].is_object(), "{body}");

    // SQL in every parameter: no match, no error, nothing dropped.
    for injection in [
        "' OR 1=1 --",
        "\"; DROP TABLE records; --",
        "d1' UNION SELECT * FROM blobs --",
    ] {
        let e = encode(injection);
        for path in [
            format!("/v1/messages?deviceId={e}"),
            format!("/v1/messages/{e}"),
            format!("/v1/devices?after={e}"),
            format!("/v1/blobs?after={e}"),
        ] {
            let (status, body) = running.get(&path).await;
            assert!(status == 200 || status == 404, "{path}: {status} {body}");
            if path.starts_with("/v1/messages?") {
                assert_eq!(body["messages"].as_array().unwrap().len(), 0, "{path}: {body}");
            }
        }
    }
    let (_, stats) = running.get("/v1/stats").await;
    assert_eq!(stats["records"], 10, "nothing touched: {stats}");
    running.stop().await;
}
