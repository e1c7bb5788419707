//! Tests of `url_policy`.
use super::*;

const OPEN: UrlPolicy = UrlPolicy {
    allow_http: false,
    allow_private_networks: true,
};
const STRICT: UrlPolicy = UrlPolicy {
    allow_http: false,
    allow_private_networks: false,
};
const HTTP: UrlPolicy = UrlPolicy {
    allow_http: true,
    allow_private_networks: false,
};
const EVERYTHING: UrlPolicy = UrlPolicy {
    allow_http: true,
    allow_private_networks: true,
};

/// Expected verdicts for one address: (strict, strict with a loopback host, private networks allowed).
#[track_caller]
fn check_address(ip: &str, expect: (bool, bool, bool)) {
    let ip: IpAddr = ip.parse().unwrap();
    let got = (
        STRICT.address_allowed(ip, false),
        STRICT.address_allowed(ip, true),
        OPEN.address_allowed(ip, false),
    );
    assert_eq!(got, expect, "{ip}");
}

const PUBLIC: (bool, bool, bool) = (true, true, true);
const PRIVATE: (bool, bool, bool) = (false, false, true);
const LOOPBACK: (bool, bool, bool) = (false, true, false);
const NEVER: (bool, bool, bool) = (false, false, false);

#[test]
fn ipv4_addresses() {
    for ip in [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.215.14",
        "172.15.255.255",
        "172.32.0.0",
    ] {
        check_address(ip, PUBLIC);
    }
    for ip in [
        "100.63.255.255",
        "100.128.0.0",
        "169.253.255.255",
        "223.255.255.255",
    ] {
        check_address(ip, PUBLIC);
    }
    for ip in [
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
    ] {
        check_address(ip, PRIVATE);
    }
    for ip in [
        "100.64.0.1",
        "100.127.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "198.51.100.7",
    ] {
        check_address(ip, PRIVATE);
    }
    for ip in ["203.0.113.9", "198.18.0.1", "198.19.255.255", "192.88.99.1"] {
        check_address(ip, PRIVATE);
    }
    for ip in ["127.0.0.1", "127.0.0.2", "127.255.255.255"] {
        check_address(ip, LOOPBACK);
    }
    for ip in [
        "169.254.169.254",
        "169.254.0.1",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
    ] {
        check_address(ip, NEVER);
    }
    for ip in ["239.255.255.250", "240.0.0.1", "255.255.255.255"] {
        check_address(ip, NEVER);
    }
}

#[test]
fn ipv6_addresses() {
    for ip in [
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "2a00:1450:4001:81b::200e",
    ] {
        check_address(ip, PUBLIC);
    }
    for ip in [
        "fc00::1",
        "fd12:3456:789a::1",
        "fd00:ec2::254",
        "fec0::1",
        "2001:db8::1",
    ] {
        check_address(ip, PRIVATE);
    }
    for ip in ["3fff::1", "100::1", "64:ff9b:1::a00:1", "2001::1", "2001:2::1"] {
        check_address(ip, PRIVATE);
    }
    check_address("::1", LOOPBACK);
    for ip in [
        "::",
        "fe80::1",
        "febf::1",
        "ff02::1",
        "ff0e::1",
        "::8.8.8.8",
        "4000::1",
    ] {
        check_address(ip, NEVER);
    }
}

#[test]
fn ipv6_forms_of_ipv4_addresses() {
    // IPv4-mapped: exactly as the IPv4 address.
    check_address("::ffff:8.8.8.8", PUBLIC);
    check_address("::ffff:10.0.0.1", PRIVATE);
    check_address("::ffff:192.168.0.1", PRIVATE);
    check_address("::ffff:100.64.0.1", PRIVATE);
    check_address("::ffff:127.0.0.1", LOOPBACK);
    check_address("::ffff:169.254.169.254", NEVER);
    check_address("::ffff:0.0.0.0", NEVER);
    check_address("::ffff:a9fe:a9fe", NEVER);
    // NAT64 and 6to4: through a gateway, so a private target is private (never our loopback).
    check_address("64:ff9b::808:808", PUBLIC);
    check_address("64:ff9b::10.0.0.1", PRIVATE);
    check_address("64:ff9b::127.0.0.1", PRIVATE);
    check_address("64:ff9b::169.254.169.254", NEVER);
    check_address("2002:808:808::1", PUBLIC);
    check_address("2002:a00:1::1", PRIVATE);
    check_address("2002:a9fe:a9fe::", NEVER);
}

#[track_caller]
fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

#[test]
fn accepted_urls() {
    let allowed = [
        (STRICT, "https://crm.example.com/api/tickets?token=x"),
        (STRICT, "https://93.184.215.14/"),
        (STRICT, "https://[2606:4700:4700::1111]:8443/hook"),
        (STRICT, "http://127.0.0.1:8080/hook"),
        (STRICT, "http://127.9.9.9/"),
        (STRICT, "http://[::1]:8080/"),
        (STRICT, "http://localhost:3000/tickets"),
        (STRICT, "http://LOCALHOST/"),
        (STRICT, "https://localhost/"),
        (STRICT, "https://10.1.2.3.nip.io/"), // a name: checked when resolved
        (OPEN, "https://10.1.2.3/"),
        (OPEN, "https://[fd00::1]/"),
        (HTTP, "http://crm.example.com/"),
        (EVERYTHING, "http://192.168.1.5/"),
    ];
    for (policy, text) in allowed {
        assert_eq!(policy.check_url(&url(text)), Ok(()), "{text} with {policy:?}");
    }
}

#[test]
fn refused_urls() {
    let cases = [
        (
            STRICT,
            "http://crm.example.com/",
            "http is only allowed to a loopback host",
        ),
        (
            STRICT,
            "http://10.1.2.3/",
            "http is only allowed to a loopback host",
        ),
        (STRICT, "https://10.1.2.3/", "address 10.1.2.3 is refused"),
        (
            STRICT,
            "https://[::ffff:10.0.0.1]/",
            "address ::ffff:10.0.0.1 is refused",
        ),
        (STRICT, "https://169.254.169.254/latest/meta-data", "never called"),
        (OPEN, "https://169.254.169.254/", "never called"),
        (OPEN, "https://0.0.0.0:8080/", "never called"),
        (OPEN, "https://[::]/", "never called"),
        (STRICT, "https://0x0a.1/", "address 10.0.0.1 is refused"),
        (
            STRICT,
            "https://user:secret@crm.example.com/",
            "credentials in the URL",
        ),
        (STRICT, "https://token@crm.example.com/", "credentials in the URL"),
        (STRICT, "ftp://crm.example.com/", "scheme `ftp` is not supported"),
        (STRICT, "file:///etc/passwd", "scheme `file` is not supported"),
    ];
    for (policy, text, expect) in cases {
        let message = policy.check_url(&url(text)).unwrap_err().to_string();
        assert!(message.contains(expect), "{text}: {message}");
    }
}

#[test]
fn refusal_is_a_clear_error() {
    assert_eq!(
        STRICT.check_url(&url("https://10.1.2.3/hook?key=s3cret")),
        Err(PolicyError::AddressRefused {
            url: "https://10.1.2.3/hook".to_owned(),
            ip: "10.1.2.3".parse().unwrap(),
            reason: STRICT.refusal("10.1.2.3".parse().unwrap(), false).unwrap(),
        })
    );
    assert_eq!(
        STRICT
            .check_url(&url("http://crm.example.com:8080/t"))
            .unwrap_err()
            .to_string(),
        "webhook URL http://crm.example.com:8080/t: http is only allowed to a loopback host; \
         use https (or set allow_http)"
    );
}

#[test]
fn messages_never_show_credentials_or_query() {
    let text = "https://admin:hunter2@crm.example.com:8443/api/t?api_key=topsecret#frag";
    let message = STRICT.check_url(&url(text)).unwrap_err().to_string();
    assert_eq!(
        message,
        "webhook URL https://crm.example.com:8443/api/t: credentials in the URL are not \
         allowed; put them in the auth settings"
    );
    let message = STRICT
        .check_url(&url("ftp://admin:hunter2@crm.example.com/?api_key=topsecret"))
        .unwrap_err()
        .to_string();
    for secret in ["admin", "hunter2", "topsecret"] {
        assert!(!message.contains(secret), "{message}");
    }
}

#[test]
fn redact_shows_scheme_host_port_and_path() {
    let cases = [
        (
            "https://user:password@crm.example.com/a/b?token=x#f",
            "https://crm.example.com/a/b",
        ),
        ("https://crm.example.com:443/t", "https://crm.example.com/t"),
        ("http://crm.example.com:8080", "http://crm.example.com:8080/"),
        ("http://[::1]:8080/x?y=z", "http://[::1]:8080/x"),
        ("https://10.0.0.1/?secret=1", "https://10.0.0.1/"),
        ("mailto:someone@example.com", "mailto:..."),
    ];
    for (text, expect) in cases {
        assert_eq!(redact(&url(text)), expect, "{text}");
    }
}

#[test]
fn policy_config_defaults_to_strict() {
    let policy: UrlPolicy = serde_json::from_str("{}").unwrap();
    assert_eq!(policy, STRICT);
    let policy: UrlPolicy = serde_json::from_str(r#"{"allow_http": true}"#).unwrap();
    assert!(policy.allow_http && !policy.allow_private_networks);
}

#[test]
fn redirect_rules() {
    let configured = url("https://crm.example.com/hook");
    let temporary = StatusCode::TEMPORARY_REDIRECT;
    let cases = [
        (temporary, "https://crm.example.com/other", 1, None),
        (
            StatusCode::PERMANENT_REDIRECT,
            "https://crm.example.com:443/x",
            5,
            None,
        ),
        (
            temporary,
            "https://crm.example.com/x",
            6,
            Some("too many redirects"),
        ),
        (
            StatusCode::FOUND,
            "https://crm.example.com/x",
            1,
            Some("only 307"),
        ),
        (
            StatusCode::MOVED_PERMANENTLY,
            "https://crm.example.com/x",
            1,
            Some("only 307"),
        ),
        (
            StatusCode::SEE_OTHER,
            "https://crm.example.com/x",
            1,
            Some("only 307"),
        ),
        (
            temporary,
            "http://crm.example.com/hook",
            1,
            Some("configured scheme"),
        ),
        (
            temporary,
            "https://evil.example.com/hook",
            1,
            Some("configured scheme"),
        ),
        (temporary, "https://10.0.0.1/hook", 1, Some("configured scheme")),
        (
            temporary,
            "https://crm.example.com:8443/hook",
            1,
            Some("configured scheme"),
        ),
        (
            temporary,
            "https://u:p@crm.example.com/hook",
            1,
            Some("credentials"),
        ),
    ];
    for (status, next, previous, expect) in cases {
        let got = redirect_refusal(&configured, status, &url(next), previous);
        match expect {
            None => assert_eq!(got, None, "{status} {next}"),
            Some(part) => {
                let reason = got.unwrap_or_else(|| panic!("{status} {next} was followed"));
                assert!(reason.contains(part), "{status} {next}: {reason}");
            }
        }
    }
}

async fn resolve(resolver: PolicyResolver, host: &str) -> Result<Vec<IpAddr>, PolicyError> {
    let addrs = resolver.lookup(host).await?;
    Ok(addrs.iter().map(SocketAddr::ip).collect())
}

#[tokio::test]
async fn resolver_refuses_loopback_unless_the_url_names_it() {
    let rebinding = PolicyResolver {
        policy: OPEN,
        host_is_loopback: false,
    };
    let error = resolve(rebinding, "localhost").await.unwrap_err();
    assert!(
        matches!(&error, PolicyError::HostRefused { host, .. } if host == "localhost"),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .starts_with("webhook host localhost resolves only to refused addresses")
    );

    let local = PolicyResolver {
        policy: STRICT,
        host_is_loopback: true,
    };
    let addrs = resolve(local, "localhost").await.unwrap();
    assert!(
        !addrs.is_empty() && addrs.iter().all(IpAddr::is_loopback),
        "{addrs:?}"
    );
}

#[tokio::test]
async fn resolver_drops_private_addresses() {
    let strict = PolicyResolver {
        policy: STRICT,
        host_is_loopback: false,
    };
    // Numeric names resolve without DNS, standing in for a name that resolves to them.
    let error = resolve(strict, "10.1.2.3").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "webhook host 10.1.2.3 resolves only to refused addresses (10.1.2.3): it is in a \
         private or special-purpose network (set allow_private_networks to call it)"
    );
    assert!(resolve(strict, "169.254.169.254").await.is_err());
    assert_eq!(
        resolve(strict, "8.8.8.8").await.unwrap(),
        ["8.8.8.8".parse::<IpAddr>().unwrap()]
    );

    let open = PolicyResolver {
        policy: OPEN,
        host_is_loopback: false,
    };
    assert_eq!(
        resolve(open, "10.1.2.3").await.unwrap(),
        ["10.1.2.3".parse::<IpAddr>().unwrap()]
    );
    assert!(resolve(open, "169.254.169.254").await.is_err());
}

#[test]
fn resolver_keeps_allowed_addresses_of_a_mixed_answer() {
    let strict = PolicyResolver {
        policy: STRICT,
        host_is_loopback: false,
    };
    let answer: Vec<SocketAddr> = ["10.0.0.1:0", "93.184.215.14:0", "[fd00::1]:0"]
        .iter()
        .map(|addr| addr.parse().unwrap())
        .collect();
    let kept = strict.filter("crm.example.com", answer).unwrap();
    assert_eq!(kept, ["93.184.215.14:0".parse::<SocketAddr>().unwrap()]);
    assert!(matches!(
        strict.filter("crm.example.com", Vec::new()),
        Err(PolicyError::Lookup { .. })
    ));
}

mod over_http {
    use super::*;
    use actix_web::{App, HttpResponse, HttpServer, dev::ServerHandle, web};
    use std::error::Error as _;
    use std::net::TcpListener;

    /// A local server: `/echo` answers with the request body; `/to/{status}` redirects to
    /// `/echo` with that status; `/away` redirects to another loopback host (`127.0.0.2`);
    /// `/hop/{n}` redirects to `/hop/{n+1}` forever.
    fn spawn_server() -> (u16, ServerHandle) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .route("/echo", web::route().to(|body: String| async move { body }))
                .route(
                    "/to/{status}",
                    web::route().to(|status: web::Path<u16>| async move {
                        redirect(status.into_inner(), "/echo".to_owned())
                    }),
                )
                .route(
                    "/away",
                    web::route()
                        .to(move || async move { redirect(302, format!("http://127.0.0.2:{port}/echo")) }),
                )
                .route(
                    "/hop/{n}",
                    web::route().to(|n: web::Path<u32>| async move {
                        redirect(307, format!("/hop/{}", n.into_inner() + 1))
                    }),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        (port, handle)
    }

    fn redirect(status: u16, location: String) -> HttpResponse {
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .insert_header(("location", location))
            .finish()
    }

    fn client(policy: UrlPolicy, configured: &str) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let configured = url(configured);
        policy.check_url(&configured).unwrap();
        policy.client_builder(&configured).build().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_localhost_and_follows_same_host_307() {
        let (port, server) = spawn_server();
        let base = format!("http://localhost:{port}");
        let client = client(STRICT, &format!("{base}/echo"));

        let direct = client
            .post(format!("{base}/echo"))
            .body("ticket")
            .send()
            .await
            .unwrap();
        assert_eq!(direct.status(), 200);
        assert_eq!(direct.text().await.unwrap(), "ticket");

        let followed = client
            .post(format!("{base}/to/307"))
            .body("ticket")
            .send()
            .await
            .unwrap();
        assert_eq!(followed.status(), 200);
        assert_eq!(followed.url().path(), "/echo");
        assert_eq!(followed.text().await.unwrap(), "ticket", "307 keeps the body");

        let followed = client
            .post(format!("{base}/to/308"))
            .body("again")
            .send()
            .await
            .unwrap();
        assert_eq!(followed.text().await.unwrap(), "again");
        server.stop(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn returns_redirects_it_does_not_follow() {
        let (port, server) = spawn_server();
        let base = format!("http://127.0.0.1:{port}");
        let client = client(STRICT, &format!("{base}/echo"));

        let away = client
            .post(format!("{base}/away"))
            .body("t")
            .send()
            .await
            .unwrap();
        assert_eq!(away.status(), 302);
        assert_eq!(away.url().as_str(), format!("{base}/away"));
        assert_eq!(
            away.headers()["location"].to_str().unwrap(),
            format!("http://127.0.0.2:{port}/echo")
        );

        let found = client
            .post(format!("{base}/to/302"))
            .body("t")
            .send()
            .await
            .unwrap();
        assert_eq!(found.status(), 302, "a 302 would turn the POST into a GET");

        let looping = client
            .post(format!("{base}/hop/0"))
            .body("t")
            .send()
            .await
            .unwrap();
        assert_eq!(looping.status(), 307);
        assert_eq!(
            looping.url().path(),
            "/hop/5",
            "five redirects followed, then stop"
        );
        server.stop(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_client_resolves_through_the_policy() {
        let (port, server) = spawn_server();
        // Configured for a public name: loopback is refused when a request reaches localhost.
        let client = client(EVERYTHING, "http://crm.example.com/hook");
        let error = client
            .post(format!("http://localhost:{port}/echo"))
            .body("t")
            .send()
            .await
            .unwrap_err();
        let mut chain = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        assert!(
            chain.contains("webhook host localhost resolves only to refused addresses"),
            "{chain}"
        );
        server.stop(false).await;
    }
}
