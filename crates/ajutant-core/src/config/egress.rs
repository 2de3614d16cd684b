//! `[egress]`: where the server may connect on a user's or an owner's behalf.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressConfig {
    /// Hosts (names or addresses) that connectors, webhooks and tools may reach even though
    /// they are, or resolve to, loopback, private, link-local or other non-public addresses.
    /// Public addresses need no entry. Empty: the server's own network is out of reach.
    pub allow_hosts: Vec<String>,
}

impl EgressConfig {
    pub(crate) fn problems(&self) -> Vec<String> {
        self.allow_hosts
            .iter()
            .filter(|host| !is_host(host))
            .map(|host| {
                format!(
                    "egress.allow_hosts: {host:?} is not a host name or address (no scheme, \
                     port, path or wildcard)"
                )
            })
            .collect()
    }
}

fn is_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= 63)
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_hosts_are_accepted() {
        let config = EgressConfig {
            allow_hosts: [
                "127.0.0.1",
                "[::1]",
                "blob.internal",
                "Files-01.corp.example",
                "http://x",
                "x:80",
                "*.corp",
                "",
                "a/b",
            ]
            .map(str::to_owned)
            .to_vec(),
        };
        assert_eq!(config.problems().len(), 5, "{:?}", config.problems());
    }
}
