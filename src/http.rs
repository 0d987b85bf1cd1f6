//! The one way bftembed's HTTP clients (PyPI, the Hugging Face hub, OpenAI-compatible
//! servers) are configured: certificates checked against the platform's store (the
//! system CA store, so proxies with their own CA work), each client adding its timeouts.

/// An agent configuration with the platform's certificate verifier.
pub(crate) fn agent_config() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    ureq::Agent::config_builder().tls_config(tls)
}
