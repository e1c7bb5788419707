//! Property bags: the C# `UrlEncodedDictionarySerializer` rules edgeHub uses, and the Python SDK's
//! encoding (spec §2).

use iothub_protocol::Message;
use iothub_protocol::mqtt::{PropertyBagError, decode_property_bag, encode_property_bag};

type Pairs<'a> = &'a [(&'a str, Option<&'a str>)];

#[track_caller]
fn check(bag: &str, expected: Result<Pairs<'_>, PropertyBagError>) {
    let expected = expected.map(|pairs| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect::<Vec<_>>()
    });
    assert_eq!(decode_property_bag(bag), expected, "{bag:?}");
}

#[test]
fn decodes_like_edgehub() {
    check("", Ok(&[]));
    check("/", Ok(&[]));
    check("/anything=goes&&", Ok(&[]));
    check("a=1", Ok(&[("a", Some("1"))]));
    check("a=1&b=2", Ok(&[("a", Some("1")), ("b", Some("2"))]));
    // The DOC-MQTT C2D table: null → `key`, empty → `key=`, value → `key=value`.
    check(
        "prop1&prop2=&prop3=a%20string",
        Ok(&[("prop1", None), ("prop2", Some("")), ("prop3", Some("a string"))]),
    );
    // `/` ends the bag, even right after `&`.
    check("a=1/b=2", Ok(&[("a", Some("1"))]));
    check("a/b=2", Ok(&[("a", None)]));
    check("a=1&/", Ok(&[("a", Some("1"))]));
    // Percent-decoding only: `+` stays a plus; broken escapes stay as written.
    check(
        "a=1+1&b=%2B&c=100%&d=%FF",
        Ok(&[
            ("a", Some("1+1")),
            ("b", Some("+")),
            ("c", Some("100%")),
            ("d", Some("%FF")),
        ]),
    );
    // Both `$` forms name the same key.
    check(
        "$.mid=1&%24.cid=2",
        Ok(&[("$.mid", Some("1")), ("$.cid", Some("2"))]),
    );
    // A repeated key keeps its first place and takes the last value (a dictionary).
    check("a=1&b=2&a=3", Ok(&[("a", Some("3")), ("b", Some("2"))]));
    check("a=1&A=2", Ok(&[("a", Some("1")), ("A", Some("2"))]));
    check("k%3Dx=v%26w", Ok(&[("k=x", Some("v&w"))]));

    check("a=1&", Err(PropertyBagError::TrailingSeparator));
    check("&a=1", Err(PropertyBagError::EmptyName(1)));
    check("a=1&&b=2", Err(PropertyBagError::EmptyName(2)));
    check("=1", Err(PropertyBagError::EmptyName(1)));
    check("a=1=2", Err(PropertyBagError::SecondEquals("a".into())));
    check("a=1&b==", Err(PropertyBagError::SecondEquals("b".into())));
    assert_eq!(
        PropertyBagError::SecondEquals("a".into()).to_string(),
        "the value of property `a` contains a second `=`"
    );
    assert_eq!(
        PropertyBagError::EmptyName(2).to_string(),
        "property 2 of the property bag has an empty name"
    );
    assert_eq!(
        PropertyBagError::TrailingSeparator.to_string(),
        "the property bag ends with `&`"
    );
}

#[test]
fn encodes_like_the_python_sdk() {
    let cases: [(Pairs<'_>, &str); 5] = [
        (&[], ""),
        (
            &[("$.mid", Some("msg-1")), ("$.cid", Some("corr 1"))],
            "%24.mid=msg-1&%24.cid=corr%201",
        ),
        (&[("a", None), ("b", Some("")), ("c", Some("x"))], "a&b=&c=x"),
        (&[("k=&/", Some("v=&/+"))], "k%3D%26%2F=v%3D%26%2F%2B"),
        (&[("unit", Some("°C/s"))], "unit=%C2%B0C%2Fs"),
    ];
    for (pairs, expected) in cases {
        assert_eq!(encode_property_bag(pairs.iter().copied()), expected);
    }
}

/// `$.` keys become system properties; everything else (`$.cdid` included) application ones.
#[test]
fn maps_system_keys() {
    let bag = "%24.mid=m&%24.cid=c&%24.uid=u&%24.ct=t&%24.ce=e&%24.to=%2Fdevices%2Fd&%24.exp=x&%24.ctime=2021-04-21T11%3A30%3A16Z\
               &%24.on=o&%24.ifid=i&%24.sub=s&%24.schema=sch&%24.cdid=spoof&%24.cmid=spoof&%24.unknown=1&level=critical&%24.mid2";
    let message = Message::from_property_bag(Vec::new(), decode_property_bag(bag).unwrap());
    let system = &message.system;
    let actual = [
        &system.message_id,
        &system.correlation_id,
        &system.user_id,
        &system.content_type,
        &system.content_encoding,
        &system.to,
        &system.absolute_expiry_time,
        &system.creation_time,
        &system.output_name,
        &system.interface_id,
        &system.dt_subject,
        &system.message_schema,
    ]
    .map(|value| value.as_deref());
    let expected = [
        "m",
        "c",
        "u",
        "t",
        "e",
        "/devices/d",
        "x",
        "2021-04-21T11:30:16Z",
        "o",
        "i",
        "s",
        "sch",
    ]
    .map(Some);
    assert_eq!(actual, expected);
    assert_eq!(system.connection_device_id, None);
    assert_eq!(system.connection_module_id, None);
    let app: Vec<(&str, Option<&str>)> = message
        .app_properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect();
    assert_eq!(
        app,
        [
            ("$.cdid", Some("spoof")),
            ("$.cmid", Some("spoof")),
            ("$.unknown", Some("1")),
            ("level", Some("critical")),
            ("$.mid2", None)
        ]
    );
    // A system key without a value leaves the property unset.
    let empty = Message::from_property_bag(Vec::new(), decode_property_bag("$.mid").unwrap());
    assert_eq!((empty.system.message_id, empty.app_properties.len()), (None, 0));
}
