//! The storage endpoint's connection strings and settings: each bad one names the key at fault and
//! never the secret; good ones pick the backend (Azure Blob, Azurite, a local directory).

use super::*;

#[track_caller]
fn check_connection_error(connection_string: &str, expect: &str) {
    let error = StorageSinkConfig::new(
        connection_string,
        "container",
        "hub",
        "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
        Encoding::Json,
    )
    .unwrap_err();
    assert_eq!(error.kind(), SinkErrorKind::Invalid);
    assert_eq!(error.message(), expect, "{connection_string}");
    let text = format!("{error} {error:?}");
    assert!(
        !text.contains(&SECRET_KEY[..16]) && !text.contains("not-base64!"),
        "{text}"
    );
}

#[test]
fn bad_connection_strings_name_the_key_and_never_the_secret() {
    check_connection_error("", "the storage connection string is empty");
    check_connection_error(
        "file://",
        "the storage connection string `file://` has no directory",
    );
    check_connection_error(
        &format!("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={SECRET_KEY};Colour=blue"),
        "the storage connection string has an unknown key `Colour`",
    );
    check_connection_error(
        &format!("AccountName=acct;AccountKey={SECRET_KEY};AccountKey={SECRET_KEY}"),
        "the storage connection string has `AccountKey` twice",
    );
    check_connection_error(
        "DefaultEndpointsProtocol=https;AccountName=acct",
        "the storage connection string has no `AccountKey`",
    );
    check_connection_error(
        &format!("AccountKey={SECRET_KEY}"),
        "the storage connection string has no `AccountName`",
    );
    check_connection_error(
        "AccountName=acct;AccountKey=not-base64!",
        "the storage connection string's `AccountKey` is invalid: not base64",
    );
    check_connection_error(
        &format!("AccountName=acct;AccountKey={SECRET_KEY};justtext"),
        "the storage connection string's part 3 is not `Key=Value`",
    );
    // A misplaced secret (it has `=` padding, so it parses as a key) is not echoed back.
    check_connection_error(
        &format!("AccountName=acct;AccountKey={SECRET_KEY};{SECRET_KEY}"),
        "the storage connection string has an unknown key in part 3",
    );
    check_connection_error(
        &format!("AccountName=acct;AccountKey={SECRET_KEY};BlobEndpoint=ftp://host/acct"),
        "the storage connection string's `BlobEndpoint` is invalid: expected an http or https URL",
    );
    check_connection_error(
        &format!("DefaultEndpointsProtocol=gopher;AccountName=acct;AccountKey={SECRET_KEY}"),
        "the storage connection string's `DefaultEndpointsProtocol` is invalid: expected http or https",
    );
    check_connection_error(
        "UseDevelopmentStorage=false",
        "the storage connection string's `UseDevelopmentStorage` is invalid: only `true` is supported",
    );
    check_connection_error(
        &format!("UseDevelopmentStorage=true;AccountKey={SECRET_KEY}"),
        "the storage connection string's `AccountKey` is invalid: not allowed with UseDevelopmentStorage=true",
    );
    check_connection_error(
        "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2020&sig=abc",
        "the storage connection string's `SharedAccessSignature` is invalid: SAS connection strings are not supported here; use AccountName and AccountKey",
    );
}

#[test]
fn other_settings_are_checked_too() {
    let config = |container: &str, hub: &str| {
        StorageSinkConfig::new(
            "file:///tmp/x",
            container,
            hub,
            "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
            Encoding::Json,
        )
        .err()
        .map(|error| (error.kind(), error.message().to_owned()))
    };
    assert_eq!(config("storagecontainer", "ContosoTestHub"), None);
    assert_eq!(
        config("Storage_Container", "hub"),
        Some((SinkErrorKind::Invalid, "containerName `Storage_Container` is invalid: only lowercase letters, digits and `-` are allowed".to_owned()))
    );
    assert_eq!(
        config("ab", "hub"),
        Some((
            SinkErrorKind::Invalid,
            "containerName `ab` is invalid: it must have 3 to 63 characters".to_owned()
        ))
    );
    assert_eq!(
        config("a--b", "hub"),
        Some((
            SinkErrorKind::Invalid,
            "containerName `a--b` is invalid: `-` must sit between letters or digits".to_owned()
        ))
    );
    assert_eq!(
        config("container", "a/b"),
        Some((SinkErrorKind::Invalid, "hub name `a/b` cannot be used in blob names: the hub name must not contain `/` or be `.` or `..`".to_owned()))
    );
    let format_error =
        StorageSinkConfig::new("file:///tmp/x", "container", "hub", "{iothub}", Encoding::Json).unwrap_err();
    assert_eq!(format_error.kind(), SinkErrorKind::Invalid);
    assert!(
        format_error
            .message()
            .starts_with("fileNameFormat `{iothub}` is missing {partition} {YYYY}"),
        "{format_error}"
    );
}

#[test]
fn connection_strings_pick_the_backend_and_hide_the_key() {
    let azure: StorageConnection = format!("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={SECRET_KEY};EndpointSuffix=core.windows.net")
        .parse()
        .unwrap();
    assert_eq!(azure.location(), "https://acct.blob.core.windows.net");
    let debug = format!("{azure:?}");
    assert!(!debug.contains(SECRET_KEY), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");

    // Keys are case-insensitive; BlobEndpoint wins; the explicit Azurite form.
    let explicit: StorageConnection = format!(
        "defaultendpointsprotocol=http;accountname=devstoreaccount1;ACCOUNTKEY={SECRET_KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    )
    .parse()
    .unwrap();
    assert_eq!(explicit.location(), "http://127.0.0.1:10000/devstoreaccount1");

    let dev: StorageConnection = "UseDevelopmentStorage=true".parse().unwrap();
    assert_eq!(dev.location(), "http://127.0.0.1:10000/devstoreaccount1");
    let proxied: StorageConnection = "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://azurite"
        .parse()
        .unwrap();
    assert_eq!(proxied.location(), "http://azurite:10000/devstoreaccount1");
    assert!(!format!("{dev:?}").contains("Eby8vdM02x"));

    let local: StorageConnection = "file://data/blobs".parse().unwrap();
    assert_eq!(local.location(), "file://data/blobs");

    let config = StorageSinkConfig::new(
        &format!("AccountName=acct;AccountKey={SECRET_KEY}"),
        "container",
        "hub",
        "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
        Encoding::Json,
    )
    .unwrap();
    let sink = StorageSink::new(config).unwrap();
    assert_eq!(sink.location(), "https://acct.blob.core.windows.net/container");
    let debug = format!("{sink:?}");
    assert!(!debug.contains(SECRET_KEY), "{debug}");
    // Nor the key decoded, as a client's `Debug` would print it.
    let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, SECRET_KEY).unwrap();
    let decoded = format!("{decoded:?}");
    assert!(!debug.contains(decoded.trim_matches(['[', ']'])), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
}
