//! What a failed TLS connection says about the configuration.

/// Why a server's certificate was refused, read from the error's text (rustls and
/// OpenSSL word it differently), as a sentence naming the setting to look at.
/// `ca` names where the trusted CAs come from, `host` where the host name does.
pub fn diagnose(error: &str, ca: &str, host: &str) -> Option<String> {
    let text = error.to_ascii_lowercase();
    if ["not valid for name", "notvalidforname", "hostname mismatch", "ip address mismatch"]
        .iter()
        .any(|s| text.contains(s))
    {
        return Some(format!("the server's TLS certificate is not issued for the host name in {host}"));
    }
    if ["unknownissuer", "certificate verify failed", "unknown ca", "self-signed", "self signed"]
        .iter()
        .any(|s| text.contains(s))
    {
        return Some(format!("the server's TLS certificate does not chain to a CA trusted by {ca}"));
    }
    if ["invalid peer certificate", "certificate"].iter().any(|s| text.contains(s)) && text.contains("tls") {
        return Some(format!("the server's TLS certificate was refused: check {ca} and the host name in {host}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::diagnose;

    #[test]
    fn a_wrong_ca_and_a_wrong_host_name_point_at_different_settings() {
        let ca = diagnose("invalid peer certificate: UnknownIssuer", "CA", "HOST").unwrap();
        assert!(ca.contains("CA") && !ca.contains("HOST"), "{ca}");
        let name = diagnose(
            "invalid peer certificate: certificate not valid for name \"127.0.0.1\"; certificate is only valid for localhost",
            "CA",
            "HOST",
        )
        .unwrap();
        assert!(name.contains("HOST") && !name.contains("CA"), "{name}");
        assert_eq!(diagnose("Connection refused (os error 111)", "CA", "HOST"), None);
    }
}
