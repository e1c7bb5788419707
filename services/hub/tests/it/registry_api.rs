//! The registry REST API: who may call it (401 for a missing, malformed, wrong, expired or unknown
//! token; 403 for a policy without the right), and create/read/update/delete with etags and
//! `If-Match` (409 on creating an existing device, 412 on a stale etag).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    OWNER, READER, TestHub, device_token, expired_expiry, random_key, service_token, valid_expiry,
};

/// Who calls.
#[derive(Debug, Clone, Copy)]
enum Caller {
    Nobody,
    Owner,
    Reader,
    WrongSignature,
    Expired,
    UnknownPolicy,
    DeviceToken,
    OtherHost,
    NotSas,
}

fn authorization(hub: &TestHub, caller: Caller) -> Option<String> {
    let valid = valid_expiry();
    let other_host = iothub_protocol::sas::SasToken::generate(
        &iothub_protocol::sas::ResourceUri::hub("otherhub.azure-devices.net"),
        &hub.owner_key,
        Some(OWNER),
        valid,
    );
    match caller {
        Caller::Nobody => None,
        Caller::Owner => Some(hub.owner_token()),
        Caller::Reader => Some(service_token(READER, &hub.reader_key, valid)),
        Caller::WrongSignature => Some(service_token(OWNER, &random_key(), valid)),
        Caller::Expired => Some(service_token(OWNER, &hub.owner_key, expired_expiry())),
        Caller::UnknownPolicy => Some(service_token("nosuchpolicy", &hub.owner_key, valid)),
        Caller::DeviceToken => Some(device_token("dev1", &hub.owner_key, valid)),
        Caller::OtherHost => Some(other_host.expose_secret()),
        Caller::NotSas => Some(format!("Bearer {}", hub.owner_key.expose_secret())),
    }
}

#[tokio::test]
async fn the_registry_api_needs_a_service_token_with_the_right() {
    let hub = TestHub::start();
    hub.create_device("dev1").await;
    let put = Some(json!({"deviceId": "dev1", "status": "enabled"}));
    // (caller, method, path, expected status, expected error code)
    let cases = [
        (
            Caller::Nobody,
            Method::GET,
            "/devices",
            StatusCode::UNAUTHORIZED,
            "missing_credentials",
        ),
        (
            Caller::Nobody,
            Method::PUT,
            "/devices/dev1",
            StatusCode::UNAUTHORIZED,
            "missing_credentials",
        ),
        (
            Caller::Nobody,
            Method::DELETE,
            "/devices/dev1",
            StatusCode::UNAUTHORIZED,
            "missing_credentials",
        ),
        (
            Caller::WrongSignature,
            Method::GET,
            "/devices/dev1",
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            Caller::WrongSignature,
            Method::PUT,
            "/devices/dev1",
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            Caller::Expired,
            Method::GET,
            "/devices",
            StatusCode::UNAUTHORIZED,
            "expired_token",
        ),
        (
            Caller::Expired,
            Method::DELETE,
            "/devices/dev1",
            StatusCode::UNAUTHORIZED,
            "expired_token",
        ),
        (
            Caller::UnknownPolicy,
            Method::GET,
            "/devices",
            StatusCode::UNAUTHORIZED,
            "unknown_policy",
        ),
        (
            Caller::DeviceToken,
            Method::GET,
            "/devices",
            StatusCode::UNAUTHORIZED,
            "unknown_policy",
        ),
        (
            Caller::OtherHost,
            Method::GET,
            "/devices",
            StatusCode::UNAUTHORIZED,
            "unknown_host",
        ),
        (
            Caller::NotSas,
            Method::GET,
            "/devices",
            StatusCode::UNAUTHORIZED,
            "malformed_token",
        ),
        (
            Caller::Reader,
            Method::PUT,
            "/devices/dev1",
            StatusCode::FORBIDDEN,
            "missing_right",
        ),
        (
            Caller::Reader,
            Method::DELETE,
            "/devices/dev1",
            StatusCode::FORBIDDEN,
            "missing_right",
        ),
        (Caller::Reader, Method::GET, "/devices/dev1", StatusCode::OK, ""),
        (Caller::Reader, Method::GET, "/devices", StatusCode::OK, ""),
        (Caller::Owner, Method::GET, "/devices/dev1", StatusCode::OK, ""),
    ];
    for (caller, method, path, status, code) in cases {
        let case = format!("{caller:?} {method} {path}");
        let body = (method == Method::PUT).then(|| put.clone()).flatten();
        let answer = hub
            .registry(
                method,
                path,
                authorization(&hub, caller).as_deref(),
                Some("*"),
                body,
            )
            .await;
        assert_eq!(answer.status, status, "{case}: {}", answer.body);
        if !code.is_empty() {
            assert_eq!(answer.body["code"], code, "{case}");
        }
    }
    // The device survived every refused PUT and DELETE.
    let shown = hub
        .registry(Method::GET, "/devices/dev1", Some(&hub.owner_token()), None, None)
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    // So does a call without api-version.
    let url = format!("http://{}/devices", hub.http);
    let response = hub
        .client()
        .get(url)
        .header("authorization", hub.owner_token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "no api-version");
}

/// `"etag"`, quoted as a client sends it back.
fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

#[tokio::test]
async fn the_registry_api_creates_reads_updates_and_deletes_with_etags() {
    let hub = TestHub::start();
    let token = hub.owner_token();
    let auth = Some(token.as_str());
    let path = "/devices/dev1";
    let primary = random_key().expose_secret().to_owned();
    let secondary = random_key().expose_secret().to_owned();
    let body = json!({
        "deviceId": "dev1",
        "authentication": {"type": "sas", "symmetricKey": {"primaryKey": primary, "secondaryKey": secondary}},
    });

    let created = hub
        .registry(Method::PUT, path, auth, None, Some(body.clone()))
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let first_etag = created.etag.clone().unwrap();
    assert_eq!(created.body["etag"], first_etag.as_str());
    assert_eq!(created.body["status"], "enabled");
    assert_eq!(created.body["connectionState"], "Disconnected");
    assert_eq!(
        created.body["authentication"]["symmetricKey"]["primaryKey"],
        primary.as_str()
    );
    assert_eq!(
        created.body["authentication"]["symmetricKey"]["secondaryKey"],
        secondary.as_str()
    );
    let generation = created.body["generationId"].as_str().unwrap().to_owned();

    let again = hub.registry(Method::PUT, path, auth, None, Some(body)).await;
    assert_eq!(
        (again.status, again.body["code"].clone()),
        (StatusCode::CONFLICT, json!("device_already_exists"))
    );

    let read = hub.registry(Method::GET, path, auth, None, None).await;
    assert_eq!(
        (read.status, read.etag.as_deref()),
        (StatusCode::OK, Some(first_etag.as_str()))
    );

    let disable = json!({"deviceId": "dev1", "status": "disabled"});
    let stale = hub
        .registry(
            Method::PUT,
            path,
            auth,
            Some("\"not-the-etag\""),
            Some(disable.clone()),
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let updated = hub
        .registry(
            Method::PUT,
            path,
            auth,
            Some(&quoted(&first_etag)),
            Some(disable.clone()),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    let second_etag = updated.etag.clone().unwrap();
    assert_ne!(second_etag, first_etag, "an update changes the etag");
    assert_eq!(updated.body["status"], "disabled");
    assert_eq!(
        updated.body["generationId"],
        generation.as_str(),
        "an update keeps the generation"
    );
    assert_eq!(
        updated.body["authentication"]["symmetricKey"]["primaryKey"],
        primary.as_str(),
        "keys are kept"
    );
    let stale = hub
        .registry(Method::PUT, path, auth, Some(&quoted(&first_etag)), Some(disable))
        .await;
    assert_eq!(
        stale.status,
        StatusCode::PRECONDITION_FAILED,
        "the first etag is stale now"
    );
    let enable = json!({"deviceId": "dev1", "status": "enabled"});
    let forced = hub
        .registry(Method::PUT, path, auth, Some("*"), Some(enable))
        .await;
    assert_eq!(forced.status, StatusCode::OK, "If-Match: * always matches");
    let third_etag = forced.etag.clone().unwrap();

    let dev2 = hub.create_device("dev2").await;
    let read = hub.registry(Method::GET, "/devices/dev2", auth, None, None).await;
    assert_eq!(read.etag, Some(dev2.etag), "GET answers the etag PUT answered");
    let list = hub.registry(Method::GET, "/devices", auth, None, None).await;
    let ids: Vec<&Value> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["deviceId"])
        .collect();
    assert_eq!(ids, [&json!("dev1"), &json!("dev2")]);
    let top = hub
        .registry(Method::GET, "/devices?top=1", auth, None, None)
        .await;
    assert_eq!(top.body.as_array().unwrap().len(), 1);

    let stale = hub
        .registry(Method::DELETE, path, auth, Some(&quoted(&second_etag)), None)
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let deleted = hub
        .registry(Method::DELETE, path, auth, Some(&quoted(&third_etag)), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = hub.registry(Method::GET, path, auth, None, None).await;
    assert_eq!(
        (gone.status, gone.body["code"].clone()),
        (StatusCode::NOT_FOUND, json!("device_not_found"))
    );
    let gone = hub.registry(Method::DELETE, path, auth, Some("*"), None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    let recreated = hub
        .registry(Method::PUT, path, auth, None, Some(json!({"deviceId": "dev1"})))
        .await;
    assert_eq!(recreated.status, StatusCode::OK);
    assert_ne!(
        recreated.body["generationId"],
        generation.as_str(),
        "a re-created device is a new generation"
    );
    assert_ne!(
        recreated.body["authentication"]["symmetricKey"]["primaryKey"],
        primary.as_str(),
        "with new keys"
    );
}

#[tokio::test]
async fn the_registry_api_refuses_bad_device_requests() {
    let hub = TestHub::start();
    let token = hub.owner_token();
    // (case, path, body, expected error code) — all 400
    let cases = [
        (
            "body names another device",
            "/devices/dev1",
            json!({"deviceId": "dev2"}),
            "invalid_device",
        ),
        ("id with a space", "/devices/dev%201", json!({}), "invalid_device"),
        (
            "key that is not base64",
            "/devices/dev1",
            json!({"authentication": {"type": "sas", "symmetricKey": {"primaryKey": "not base64!"}}}),
            "invalid_device",
        ),
        (
            "key too short",
            "/devices/dev1",
            json!({"authentication": {"type": "sas", "symmetricKey": {"primaryKey": "c2hvcnQ="}}}),
            "invalid_device",
        ),
        (
            "x509 authentication",
            "/devices/dev1",
            json!({"authentication": {"type": "selfSigned"}}),
            "invalid_device",
        ),
        ("not JSON", "/devices/dev1", json!("{"), "invalid_json"),
    ];
    for (case, path, body, code) in cases {
        let body = if body == json!("{") { None } else { Some(body) };
        let mut request = hub
            .client()
            .put(hub.http_url(path))
            .header("authorization", &token);
        request = match body {
            Some(body) => request.json(&body),
            None => request.header("content-type", "application/json").body("{"),
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            (status, answer["code"].as_str().unwrap()),
            (StatusCode::BAD_REQUEST, code),
            "{case}: {answer}"
        );
    }
    let list = hub
        .registry(Method::GET, "/devices", Some(&token), None, None)
        .await;
    assert_eq!(list.body, json!([]), "nothing was created");
}
