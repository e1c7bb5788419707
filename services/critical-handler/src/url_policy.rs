//! Which webhook URLs and network addresses the handler may call: a guard against server-side request
//! forgery (SSRF), since the webhook URL comes from configuration and the handler runs inside a network
//! that can reach things the CRM should never see (cloud metadata, admin ports, other pods).
//!
//! The policy, with both flags of [`UrlPolicy`] off (the default):
//! - **Scheme**: `https`. Plain `http` only to a loopback host (`127.0.0.0/8`, `::1`, `localhost`) — a dev
//!   CRM on the same machine — unless `allow_http`. Any other scheme is refused.
//! - **No credentials in the URL** (`https://user:pass@…`): they belong in the auth settings, where they
//!   are kept secret; a URL is printed in logs and errors.
//! - **Addresses**: public unicast addresses are called. Private and special-purpose networks (RFC 1918,
//!   CGNAT `100.64/10`, IETF/documentation/benchmarking ranges, IPv6 unique-local `fc00::/7`, site-local,
//!   documentation, `2001::/23`) only with `allow_private_networks`. Loopback only when the URL itself
//!   names a loopback host, even with that flag: a public name resolving to loopback is DNS rebinding.
//!   Never, whatever the flags: link-local (`169.254/16` — cloud metadata lives there — and
//!   `fe80::/10`), `0.0.0.0/8` and `::` (which reach the local host on Linux), multicast, broadcast and
//!   reserved ranges. IPv6 forms that carry an IPv4 address are judged by that address: IPv4-mapped
//!   `::ffff:a.b.c.d` exactly as the IPv4 address; NAT64 `64:ff9b::/96` and 6to4 `2002::/16` as public
//!   only if the embedded address is; deprecated IPv4-compatible `::a.b.c.d` never.
//! - **Redirects**: at most 5, only `307`/`308` (which keep the method and the body: a `301`/`302`/`303`
//!   would turn the POST into a GET and lose the ticket), and only to the same scheme, host and port as
//!   the configured URL. Any other redirect is not followed: the `3xx` response is returned to the caller.
//!
//! Where it is enforced:
//! - [`UrlPolicy::check_url`] at startup: scheme, credentials, and a literal IP host (reqwest connects
//!   to literal IPs directly, without asking a resolver).
//! - [`UrlPolicy::client_builder`] at connection time: a DNS resolver that drops refused addresses,
//!   so the addresses checked are exactly the addresses connected to (no window for DNS rebinding);
//!   the redirect rule above, which keeps every request on the host that was checked; no proxy (a proxy
//!   would resolve the name itself, out of the policy's sight).
//!
//! Errors and log lines show URLs through [`redact`]: never the userinfo, query string or fragment.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::StatusCode;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;
use url::{Host, Url};

/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// What the webhook may call. Both flags off is the safe default; see the module docs for the policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct UrlPolicy {
    /// Allow plain `http` to any host. Off: `https` is required except for loopback hosts
    /// (`127.0.0.0/8`, `::1`, `localhost`).
    pub allow_http: bool,
    /// Allow private and special-purpose networks (RFC 1918, CGNAT `100.64.0.0/10`, IPv6 unique-local
    /// `fc00::/7`, documentation and benchmarking ranges). It does not allow loopback through a
    /// hostname, link-local (cloud metadata), unspecified, multicast or broadcast addresses.
    pub allow_private_networks: bool,
}

/// Why a webhook URL or host is refused. Messages show URLs through [`redact`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// The scheme is neither `https` nor `http`.
    #[error("webhook URL {url}: scheme `{scheme}` is not supported; use https")]
    UnsupportedScheme {
        /// The URL, redacted.
        url: String,
        /// The scheme found.
        scheme: String,
    },
    /// Plain `http` to a host that is not loopback, and `allow_http` is off.
    #[error("webhook URL {url}: http is only allowed to a loopback host; use https (or set allow_http)")]
    HttpNotAllowed {
        /// The URL, redacted.
        url: String,
    },
    /// The URL carries a user name or password.
    #[error("webhook URL {url}: credentials in the URL are not allowed; put them in the auth settings")]
    CredentialsInUrl {
        /// The URL, redacted (without the credentials).
        url: String,
    },
    /// The URL has no host.
    #[error("webhook URL {url}: no host")]
    MissingHost {
        /// The URL, redacted.
        url: String,
    },
    /// The URL's host is a literal IP address the policy refuses.
    #[error("webhook URL {url}: address {ip} is refused: {reason}")]
    AddressRefused {
        /// The URL, redacted.
        url: String,
        /// The refused address.
        ip: IpAddr,
        /// Which rule refused it.
        reason: &'static str,
    },
    /// Every address a webhook host name resolved to is refused by the policy.
    #[error("webhook host {host} resolves only to refused addresses ({addresses}): {reason}")]
    HostRefused {
        /// The host name.
        host: String,
        /// The refused addresses, comma-separated.
        addresses: String,
        /// Which rule refused the first of them.
        reason: &'static str,
    },
    /// A webhook host name could not be resolved.
    #[error("webhook host {host}: DNS lookup failed: {reason}")]
    Lookup {
        /// The host name.
        host: String,
        /// The resolver's error.
        reason: String,
    },
}

impl UrlPolicy {
    /// Checked at startup: scheme `http` or `https` only; `https` required unless the host is loopback
    /// (`127.0.0.0/8`, `::1`, `localhost`) or `allow_http`; no userinfo in the URL (credentials belong
    /// in the auth settings); a literal IP host must be allowed by
    /// [`address_allowed`](Self::address_allowed). Host names are checked when they are resolved, by
    /// the client from [`client_builder`](Self::client_builder).
    pub fn check_url(&self, url: &Url) -> Result<(), PolicyError> {
        let shown = redact(url);
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(PolicyError::UnsupportedScheme {
                url: shown,
                scheme: scheme.to_owned(),
            });
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(PolicyError::CredentialsInUrl { url: shown });
        }
        let Some(host) = url.host() else {
            return Err(PolicyError::MissingHost { url: shown });
        };
        let loopback = is_loopback_host(&host);
        if scheme == "http" && !loopback && !self.allow_http {
            return Err(PolicyError::HttpNotAllowed { url: shown });
        }
        let literal = match host {
            Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            Host::Domain(_) => None,
        };
        if let Some(ip) = literal
            && let Some(reason) = self.refusal(ip, loopback)
        {
            return Err(PolicyError::AddressRefused {
                url: shown,
                ip,
                reason,
            });
        }
        Ok(())
    }

    /// Whether a resolved address may be called. Public unicast addresses may. Private and
    /// special-purpose networks only with `allow_private_networks`. Loopback only when
    /// `host_is_loopback`: the URL's host itself is a loopback literal or `localhost` (a public name
    /// resolving to loopback is DNS rebinding). Link-local, unspecified, multicast, broadcast and
    /// reserved addresses never. IPv6 forms carrying an IPv4 address are judged by that address.
    pub fn address_allowed(&self, ip: IpAddr, host_is_loopback: bool) -> bool {
        self.refusal(ip, host_is_loopback).is_none()
    }

    /// A reqwest [`ClientBuilder`](reqwest::ClientBuilder) for calling `url` that applies the policy
    /// at connection time:
    /// - a DNS resolver that drops refused addresses, failing with [`PolicyError::HostRefused`] when
    ///   none remain (so a name that resolves to `10.x` is refused when the request is made);
    /// - redirects: at most 5, `307`/`308` only, to the same scheme, host and port as `url`; other
    ///   redirects are not followed and the `3xx` response is returned;
    /// - `https` only when `url` is `https`, and no proxy (not even one from the environment).
    ///
    /// The client is meant for `url` alone; call [`check_url`](Self::check_url) on it first. Add
    /// timeouts and other settings to the returned builder.
    pub fn client_builder(&self, url: &Url) -> reqwest::ClientBuilder {
        let resolver = PolicyResolver {
            policy: *self,
            host_is_loopback: url.host().is_some_and(|host| is_loopback_host(&host)),
        };
        reqwest::Client::builder()
            .no_proxy()
            .https_only(url.scheme() == "https")
            .dns_resolver(resolver)
            .redirect(redirect_policy(url.clone()))
    }

    /// Why `ip` is refused, or `None` if it may be called.
    fn refusal(&self, ip: IpAddr, host_is_loopback: bool) -> Option<&'static str> {
        match classify(ip) {
            AddressClass::Public => None,
            AddressClass::Private if self.allow_private_networks => None,
            AddressClass::Private => {
                Some("it is in a private or special-purpose network (set allow_private_networks to call it)")
            }
            AddressClass::Loopback if host_is_loopback => None,
            AddressClass::Loopback => {
                Some("it is loopback, which is only called when the URL itself names a loopback host")
            }
            AddressClass::Never => {
                Some("link-local, unspecified, multicast, broadcast and reserved addresses are never called")
            }
        }
    }
}

/// `scheme://host[:port]/path` of `url`: no userinfo, query string or fragment, which may carry secrets.
/// A URL without a hierarchical part (such as `mailto:`) shows only its scheme.
pub fn redact(url: &Url) -> String {
    if url.cannot_be_a_base() {
        return format!("{}:...", url.scheme());
    }
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        let _ = write!(shown, ":{port}");
    }
    shown.push_str(url.path());
    shown
}

/// How the policy treats an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddressClass {
    /// Publicly routable unicast: always allowed.
    Public,
    /// Private or special-purpose: allowed with `allow_private_networks`.
    Private,
    /// Loopback: allowed only when the URL names a loopback host.
    Loopback,
    /// Never a webhook destination.
    Never,
}

/// Never called: "this network" (`0.0.0.0` reaches the local host on Linux), link-local (cloud
/// metadata at `169.254.169.254`), multicast, reserved and broadcast.
const V4_NEVER: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    (Ipv4Addr::new(224, 0, 0, 0), 4),
    (Ipv4Addr::new(240, 0, 0, 0), 4),
];

/// Private and special-purpose IPv4 networks (IANA special-purpose registry, not globally reachable).
const V4_PRIVATE: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // RFC 1918
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // RFC 1918
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // RFC 1918
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared address space (CGNAT)
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation (TEST-NET-1)
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation (TEST-NET-3)
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // deprecated 6to4 relay anycast
];

/// Never called: IPv4-compatible (deprecated; `::` and `::1` are handled before), link-local,
/// multicast.
const V6_NEVER: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
];

/// Private and special-purpose IPv6 networks.
const V6_PRIVATE: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7), // unique local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), // site-local (deprecated)
    (Ipv6Addr::new(0x0064, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // local-use NAT64
    (Ipv6Addr::new(0x0100, 0, 0, 0, 0, 0, 0, 0), 64), // discard-only
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments (Teredo, ...)
    (Ipv6Addr::new(0x2001, 0x0db8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation (RFC 9637)
];

fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let within = |nets: &[(Ipv4Addr, u8)]| nets.iter().any(|&(net, len)| in_v4(ip, net, len));
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if within(V4_NEVER) {
        AddressClass::Never
    } else if within(V4_PRIVATE) {
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    if let Some(v4) = ip.to_ipv4_mapped() {
        // The kernel connects to the IPv4 address itself.
        return classify_v4(v4);
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    if ip.is_unspecified() {
        return AddressClass::Never;
    }
    if let Some(v4) = translated_v4(ip) {
        // Reached through a gateway: never our own loopback, but private if the target is.
        return match classify_v4(v4) {
            AddressClass::Public => AddressClass::Public,
            AddressClass::Never => AddressClass::Never,
            AddressClass::Private | AddressClass::Loopback => AddressClass::Private,
        };
    }
    let within = |nets: &[(Ipv6Addr, u8)]| nets.iter().any(|&(net, len)| in_v6(ip, net, len));
    if within(V6_NEVER) {
        AddressClass::Never
    } else if within(V6_PRIVATE) {
        AddressClass::Private
    } else if in_v6(ip, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
        AddressClass::Public
    } else {
        // Outside global unicast and not assigned a special purpose: reserved.
        AddressClass::Never
    }
}

/// The IPv4 address carried by a NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`) address.
fn translated_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    if in_v6(ip, Ipv6Addr::new(0x0064, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        // Truncation keeps the low 32 bits, which hold the address.
        Some(Ipv4Addr::from(bits as u32))
    } else if in_v6(ip, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        Some(Ipv4Addr::from((bits >> 80) as u32))
    } else {
        None
    }
}

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

/// Whether a URL host is an explicit local target: a loopback literal or `localhost`.
fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => {
            name.eq_ignore_ascii_case("localhost") || name.eq_ignore_ascii_case("localhost.")
        }
        Host::Ipv4(ip) => classify_v4(*ip) == AddressClass::Loopback,
        Host::Ipv6(ip) => classify_v6(*ip) == AddressClass::Loopback,
    }
}

/// Resolves with tokio and keeps only the addresses the policy allows.
#[derive(Debug, Clone, Copy)]
struct PolicyResolver {
    policy: UrlPolicy,
    /// Whether the configured URL names a loopback host (which makes loopback addresses allowed).
    host_is_loopback: bool,
}

impl PolicyResolver {
    async fn lookup(self, host: &str) -> Result<Vec<SocketAddr>, PolicyError> {
        let resolved = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|error| PolicyError::Lookup {
                host: host.to_owned(),
                reason: error.to_string(),
            })?;
        self.filter(host, resolved.collect())
    }

    fn filter(self, host: &str, resolved: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, PolicyError> {
        let (allowed, refused): (Vec<_>, Vec<_>) = resolved
            .into_iter()
            .partition(|addr| self.policy.address_allowed(addr.ip(), self.host_is_loopback));
        let refused: Vec<IpAddr> = refused.iter().map(SocketAddr::ip).collect();
        if allowed.is_empty() {
            let Some(&first) = refused.first() else {
                return Err(PolicyError::Lookup {
                    host: host.to_owned(),
                    reason: "no addresses".to_owned(),
                });
            };
            return Err(PolicyError::HostRefused {
                host: host.to_owned(),
                addresses: join(&refused),
                reason: self
                    .policy
                    .refusal(first, self.host_is_loopback)
                    .unwrap_or_default(),
            });
        }
        if !refused.is_empty() {
            tracing::warn!(
                host,
                refused = %join(&refused),
                "webhook host resolves to addresses refused by the URL policy; using the others"
            );
        }
        Ok(allowed)
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = *self;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolver.lookup(&host).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ")
}

/// Follows a redirect only when [`redirect_refusal`] finds nothing against it.
fn redirect_policy(configured: Url) -> redirect::Policy {
    redirect::Policy::custom(move |attempt| {
        match redirect_refusal(
            &configured,
            attempt.status(),
            attempt.url(),
            attempt.previous().len(),
        ) {
            None => attempt.follow(),
            Some(reason) => {
                tracing::warn!(
                    status = attempt.status().as_u16(),
                    location = %redact(attempt.url()),
                    reason,
                    "webhook redirect not followed"
                );
                attempt.stop()
            }
        }
    })
}

/// Why a redirect to `next` is not followed, or `None` to follow it. `previous` counts the URLs
/// requested so far in the chain, the configured one included.
fn redirect_refusal(
    configured: &Url,
    status: StatusCode,
    next: &Url,
    previous: usize,
) -> Option<&'static str> {
    if previous.saturating_sub(1) >= MAX_REDIRECTS {
        Some("too many redirects")
    } else if status != StatusCode::TEMPORARY_REDIRECT && status != StatusCode::PERMANENT_REDIRECT {
        Some("only 307 and 308 keep the method and body")
    } else if next.scheme() != configured.scheme()
        || next.host() != configured.host()
        || next.port_or_known_default() != configured.port_or_known_default()
    {
        Some("redirects are only followed to the configured scheme, host and port")
    } else if !next.username().is_empty() || next.password().is_some() {
        Some("the location carries credentials")
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
