//! Who is calling: the peer address, or the client a trusted proxy says it
//! forwards for.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ::axum::extract::{ConnectInfo, FromRequestParts};
use ::axum::http::request::Parts;
use ::axum::http::{HeaderMap, StatusCode};

use crate::error::{Error, Result};

/// Which header trusted proxies record the client in.
///
/// Only the configured header is read: a proxy that appends to
/// `X-Forwarded-For` passes a client's own `Forwarded` header through
/// untouched, so reading both would let clients choose their address.
///
/// ```
/// use forge_cache_runtime::axum::ForwardedHeader;
/// assert_eq!(ForwardedHeader::default(), ForwardedHeader::XForwardedFor);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, most load
    /// balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:4711"`.
    Forwarded,
}

/// An address range, e.g. `10.0.0.0/8` or `::1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn parse(s: &str) -> Option<Net> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|&p| p <= max)?
            }
            Some(_) => return None,
            None => max,
        };
        // `::ffff:10.0.0.0/104` is `10.0.0.0/8`.
        Some(match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => Net {
                    addr: IpAddr::V4(v4),
                    prefix: prefix - 96,
                },
                None => Net { addr, prefix },
            },
            _ => Net { addr, prefix },
        })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The proxies whose forwarding headers are believed, and which header they
/// write. By default none: the client is the TCP peer, and
/// `X-Forwarded-For` / `Forwarded` are ignored.
///
/// When the peer is trusted, the header's entries are walked from the
/// right (the entry the nearest proxy wrote) past every trusted hop; the
/// first untrusted address is the client. An entry that is not an address
/// (`unknown`, an obfuscated `_id`, garbage) stops the walk at the last
/// trusted hop, and if every hop is trusted the leftmost one is the client.
///
/// ```
/// use std::net::IpAddr;
/// use forge_cache_runtime::axum::TrustedProxies;
/// use axum::http::HeaderMap;
///
/// let proxies = TrustedProxies::new(["10.0.0.0/8", "::1"])?;
/// let mut headers = HeaderMap::new();
/// headers.insert("x-forwarded-for", "1.1.1.1, 203.0.113.7, 10.0.0.2".parse().unwrap());
///
/// // From the trusted load balancer: the address it forwards for.
/// let peer: IpAddr = "10.0.0.1".parse().unwrap();
/// assert_eq!(proxies.client_ip(peer, &headers), "203.0.113.7".parse::<IpAddr>().unwrap());
/// // From anyone else: the header is a claim, not evidence.
/// let peer: IpAddr = "198.51.100.9".parse().unwrap();
/// assert_eq!(proxies.client_ip(peer, &headers), peer);
/// # Ok::<(), forge_cache_runtime::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<Net>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// Trust no proxy: the client is always the TCP peer.
    ///
    /// ```
    /// use forge_cache_runtime::axum::TrustedProxies;
    /// assert!(!TrustedProxies::none().is_trusted("127.0.0.1".parse().unwrap()));
    /// ```
    pub fn none() -> Self {
        TrustedProxies::default()
    }

    /// Trust the given addresses and CIDR ranges (`"10.0.0.0/8"`,
    /// `"192.168.1.5"`, `"fd00::/8"`), reading `X-Forwarded-For`.
    ///
    /// Errors with [`Error::Config`] naming the entry that is not an address
    /// or range.
    ///
    /// ```
    /// use forge_cache_runtime::axum::TrustedProxies;
    /// assert!(TrustedProxies::new(["10.0.0.0/8", "::1"]).is_ok());
    /// let err = TrustedProxies::new(["10.0.0.0/33"]).unwrap_err();
    /// assert!(err.to_string().contains("10.0.0.0/33"));
    /// ```
    pub fn new<I, S>(proxies: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nets = proxies
            .into_iter()
            .map(|p| {
                let p = p.as_ref();
                Net::parse(p).ok_or_else(|| {
                    Error::config(
                        "trusted_proxies",
                        p,
                        "an IP address or CIDR range such as 10.0.0.0/8 or ::1",
                    )
                })
            })
            .collect::<Result<_>>()?;
        Ok(TrustedProxies {
            nets,
            header: ForwardedHeader::default(),
        })
    }

    /// The same proxies, recording clients in `header`.
    ///
    /// ```
    /// use forge_cache_runtime::axum::{ForwardedHeader, TrustedProxies};
    /// let p = TrustedProxies::new(["127.0.0.1"])?.with_header(ForwardedHeader::Forwarded);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn with_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// The client behind `peer`, per the rules above.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.is_trusted(client) {
            return client;
        }
        for hop in self.hops(headers).into_iter().rev() {
            match hop.and_then(parse_node) {
                Some(ip) => {
                    client = ip.to_canonical();
                    if !self.is_trusted(client) {
                        return client;
                    }
                }
                None => return client,
            }
        }
        client
    }

    /// The header's entries, left to right (all lines in order); `None` for
    /// an entry that is not readable text.
    fn hops<'h>(&self, headers: &'h HeaderMap) -> Vec<Option<&'h str>> {
        let mut hops = Vec::new();
        let name = match self.header {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        };
        for value in headers.get_all(name) {
            let Ok(text) = value.to_str() else {
                hops.push(None);
                continue;
            };
            for element in split_unquoted(text, ',') {
                hops.push(match self.header {
                    ForwardedHeader::XForwardedFor => Some(element),
                    ForwardedHeader::Forwarded => forwarded_for(element),
                });
            }
        }
        hops
    }
}

/// The `for=` parameter of one `Forwarded` element, `None` when absent.
fn forwarded_for(element: &str) -> Option<&str> {
    split_unquoted(element, ';').into_iter().find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then_some(value.trim())
    })
}

/// Splits at `sep` outside double quotes (RFC 7239 quoted strings may hold
/// `,` and `;`).
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(s[start..i].trim());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(s[start..].trim());
    parts
}

/// An address from a forwarding entry: `1.2.3.4`, `1.2.3.4:80`, `::1`,
/// `[::1]`, `"[::1]:80"`. `None` for anything else.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    let node = node
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(node);
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return port_ok
            .then(|| ip.parse::<Ipv6Addr>().ok().map(IpAddr::V6))
            .flatten();
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    let (ip, port) = node.rsplit_once(':')?;
    is_port(port)
        .then(|| ip.parse::<Ipv4Addr>().ok().map(IpAddr::V4))
        .flatten()
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The client's address as the [`RateLimitLayer`](super::RateLimitLayer)
/// resolved it (peer, or forwarded-for behind trusted proxies). Extract it
/// in handlers; without the layer it is the TCP peer from
/// `ConnectInfo<SocketAddr>`.
///
/// ```
/// use forge_cache_runtime::axum::ClientIp;
/// async fn whoami(ClientIp(ip): ClientIp) -> String {
///     ip.to_string()
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .or_else(|| peer(parts).map(ClientIp))
            .ok_or((
                StatusCode::INTERNAL_SERVER_ERROR,
                "client address unknown: serve with into_make_service_with_connect_info::<SocketAddr>()",
            ))
    }
}

/// The TCP peer, when the server records it.
pub(crate) fn peer(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn ranges_match_like_cidr() {
        let p =
            TrustedProxies::new(["10.0.0.0/8", "192.168.1.7", "fd00::/8", "0.0.0.0/0"]).unwrap();
        assert!(p.is_trusted(ip("8.8.8.8"))); // via /0
        let p = TrustedProxies::new(["10.0.0.0/8", "192.168.1.7", "fd00::/8"]).unwrap();
        assert!(p.is_trusted(ip("10.255.0.1")));
        assert!(p.is_trusted(ip("::ffff:10.0.0.1")));
        assert!(!p.is_trusted(ip("11.0.0.1")));
        assert!(p.is_trusted(ip("192.168.1.7")));
        assert!(!p.is_trusted(ip("192.168.1.8")));
        assert!(p.is_trusted(ip("fd12::1")));
        assert!(!p.is_trusted(ip("fe80::1")));
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "x",
            "::1/129",
            "1.2.3.4/",
            "1.2.3.4/+8",
        ] {
            assert!(TrustedProxies::new([bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn walks_from_the_right_past_trusted_hops() {
        let p = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let h = headers("x-forwarded-for", &["6.6.6.6, 1.1.1.1", "10.0.0.3"]);
        assert_eq!(p.client_ip(ip("10.0.0.1"), &h), ip("1.1.1.1"));
        // all hops trusted: the leftmost
        let h = headers("x-forwarded-for", &["10.0.0.9, 10.0.0.3"]);
        assert_eq!(p.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.9"));
        // garbage stops the walk at the last trusted hop
        let h = headers("x-forwarded-for", &["1.1.1.1, unknown, 10.0.0.3"]);
        assert_eq!(p.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.3"));
        // no header: the peer
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
        // untrusted peer: headers ignored
        let h = headers("x-forwarded-for", &["1.1.1.1"]);
        assert_eq!(p.client_ip(ip("9.9.9.9"), &h), ip("9.9.9.9"));
    }

    #[test]
    fn reads_rfc7239_forwarded_only_when_configured() {
        let p = TrustedProxies::new(["127.0.0.1"])
            .unwrap()
            .with_header(ForwardedHeader::Forwarded);
        let h = headers(
            "forwarded",
            &[r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#],
        );
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("2001:db8:cafe::17"));
        let h = headers("forwarded", &[r#"for=_hidden, for="a,b";by=x"#]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        // X-Forwarded-For is not read in this mode
        let h = headers("x-forwarded-for", &["1.1.1.1"]);
        assert_eq!(p.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }

    #[test]
    fn parses_nodes_with_ports_and_brackets() {
        assert_eq!(parse_node("1.2.3.4:80"), Some(ip("1.2.3.4")));
        assert_eq!(parse_node("[::1]:80"), Some(ip("::1")));
        assert_eq!(parse_node("\"[::1]\""), Some(ip("::1")));
        assert_eq!(parse_node("::1"), Some(ip("::1")));
        assert_eq!(parse_node("[::1]x"), None);
        assert_eq!(parse_node("1.2.3.4:http"), None);
        assert_eq!(parse_node("unknown"), None);
    }
}
