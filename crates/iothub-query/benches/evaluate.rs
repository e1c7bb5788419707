//! Route-condition evaluation speed, with the baselines it is judged against measured in the same run:
//! a plain serde_json parse of the same body (full DOM, and a typed read of the one field needed).
//! `scripts/bench-query` runs this and writes the medians and ratios to docs/PERFORMANCE.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iothub_query::{Condition, ConditionSet, SimpleMessage};
use serde::Deserialize;

/// A 200-byte telemetry record, like the tutorial's device with a few more fields.
const BODY: &str = r#"{"deviceId":"turbine-0042","windSpeed":12.74,"temperature":21.53,"humidity":55.1,"battery":47,"location":{"lat":47.2671,"lon":-122.208},"seq":123456,"fw":"1.3.13","status":"running","pad":"xxxxxxxxx"}"#;

const ROUTES: [&str; 10] = [
    "level = \"critical\"",
    "$body.windSpeed > 10 AND level = \"storage\"",
    "$body.temperature > 30",
    "$connectionDeviceId = 'turbine-7'",
    "$body.location.lat > 47 AND $body.location.lon < -122",
    "starts_with($body.fw, '1.3')",
    "as_number(priority) > 3",
    "$body.battery < 20 OR $body.status = 'fault'",
    "is_defined($body.alarm)",
    "lower($body.status) = 'running' AND level <> 'debug'",
];

fn message() -> SimpleMessage {
    SimpleMessage::new(BODY.as_bytes().to_vec())
        .with_app_property("level", Some("storage"))
        .with_app_property("priority", Some("2"))
        .with_app_property("site", Some("north"))
        .with_system_property("messageId", Some("message_123456"))
        .with_system_property("correlationId", Some("correlation_123456"))
        .with_system_property("contentType", Some("application/json"))
        .with_system_property("contentEncoding", Some("utf-8"))
        .with_system_property("connectionDeviceId", Some("turbine-0042"))
}

#[derive(Deserialize)]
struct WindSpeedOnly {
    #[serde(rename = "windSpeed")]
    wind_speed: f64,
}

fn benches(c: &mut Criterion) {
    assert_eq!(BODY.len(), 200);
    let message = message();
    let mut group = c.benchmark_group("query");
    group.throughput(Throughput::Elements(1));

    let property = Condition::compile("level = \"critical\"").unwrap();
    group.bench_function("a_app_property", |b| {
        b.iter(|| black_box(property.evaluate(black_box(&message))))
    });

    let body = Condition::compile("$body.windSpeed > 10 AND level = \"storage\"").unwrap();
    group.bench_function("b_body_and_property", |b| {
        b.iter(|| black_box(body.evaluate(black_box(&message))))
    });

    let routes = ConditionSet::new(ROUTES.iter().map(|r| Condition::compile(r).unwrap()).collect());
    let mut outcomes = Vec::with_capacity(ROUTES.len());
    group.bench_function("c_ten_routes", |b| {
        b.iter(|| black_box(routes.evaluate_into(black_box(&message), &mut outcomes)))
    });

    // Baselines: what parsing the same body costs with serde_json alone.
    group.bench_function("baseline_serde_json_dom", |b| {
        b.iter(|| black_box(serde_json::from_slice::<serde_json::Value>(black_box(BODY.as_bytes())).unwrap()))
    });
    group.bench_function("baseline_serde_json_one_field", |b| {
        b.iter(|| {
            black_box(
                serde_json::from_slice::<WindSpeedOnly>(black_box(BODY.as_bytes()))
                    .unwrap()
                    .wind_speed,
            )
        })
    });
    group.finish();
}

criterion_group!(name = query; config = Criterion::default().sample_size(60); targets = benches);
criterion_main!(query);
