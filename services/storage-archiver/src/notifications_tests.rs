//! Reading BlobCreated notifications in both of Event Grid's schemas, and refusing what is not one.

use super::{BlobCreated, NotificationError, blobs_created};

fn event_grid(container: &str, name: &str) -> serde_json::Value {
    serde_json::json!({
        "topic": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/a",
        "subject": format!("/blobServices/default/containers/{container}/blobs/{name}"),
        "eventType": "Microsoft.Storage.BlobCreated",
        "id": "831e1650-001e-001b-66ab-eeb76e069631",
        "data": {
            "api": "PutBlockList",
            "eTag": "0x8D4BCC2E4835CD0",
            "contentType": "application/octet-stream",
            "contentLength": 524288,
            "blobType": "BlockBlob",
            "url": format!("https://a.blob.core.windows.net/{container}/{name}")
        },
        "dataVersion": "",
        "metadataVersion": "1",
        "eventTime": "2026-11-26T10:00:00.0000000Z"
    })
}

fn blob(name: &str) -> BlobCreated {
    BlobCreated {
        name: name.to_owned(),
        etag: "0x8D4BCC2E4835CD0".to_owned(),
        size: Some(524_288),
    }
}

#[test]
fn event_grid_schema_one_event_or_an_array() {
    let one = event_grid("archive", "hub/00/2026/11/26/10/00.json");
    let body = serde_json::to_vec(&one).unwrap();
    assert_eq!(
        blobs_created(&body, "archive", "hub/"),
        Ok(vec![blob("hub/00/2026/11/26/10/00.json")])
    );
    let many = serde_json::json!([one, event_grid("archive", "hub/01/2026/11/26/10/00.json")]);
    let body = serde_json::to_vec(&many).unwrap();
    assert_eq!(blobs_created(&body, "archive", "").unwrap().len(), 2);
}

#[test]
fn cloud_events_schema() {
    let event = serde_json::json!({
        "specversion": "1.0",
        "type": "Microsoft.Storage.BlobCreated",
        "source": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/a",
        "id": "1",
        "subject": "/blobServices/default/containers/archive/blobs/hub/00/x.avro",
        "data": {"eTag": "0x8D4BCC2E4835CD0", "contentLength": 524288}
    });
    let body = serde_json::to_vec(&event).unwrap();
    assert_eq!(
        blobs_created(&body, "archive", ""),
        Ok(vec![blob("hub/00/x.avro")])
    );
}

#[test]
fn other_containers_prefixes_and_event_types_are_ignored() {
    let mut deleted = event_grid("archive", "hub/x.json");
    deleted["eventType"] = "Microsoft.Storage.BlobDeleted".into();
    let events = serde_json::json!([
        event_grid("other", "hub/x.json"),
        event_grid("archive", "elsewhere/x.json"),
        deleted
    ]);
    let body = serde_json::to_vec(&events).unwrap();
    assert_eq!(blobs_created(&body, "archive", "hub/"), Ok(vec![]));
}

#[test]
fn what_is_not_a_notification_is_an_error() {
    assert!(matches!(
        blobs_created(b"not json", "archive", ""),
        Err(NotificationError::NotAnEvent(_))
    ));
    assert!(matches!(
        blobs_created(br#"{"hello": "world"}"#, "archive", ""),
        Err(NotificationError::NotAnEvent(_))
    ));
    let mut no_etag = event_grid("archive", "hub/x.json");
    no_etag["data"].as_object_mut().unwrap().remove("eTag");
    let body = serde_json::to_vec(&no_etag).unwrap();
    assert_eq!(
        blobs_created(&body, "archive", ""),
        Err(NotificationError::Incomplete("data.eTag"))
    );
    let mut no_name = event_grid("archive", "");
    no_name["data"]["eTag"] = "x".into();
    let body = serde_json::to_vec(&no_name).unwrap();
    assert_eq!(
        blobs_created(&body, "archive", ""),
        Err(NotificationError::Incomplete("a blob name in subject"))
    );
}
