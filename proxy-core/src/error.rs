//! Errors.
/// error
#[derive(Debug)] pub struct ProxyError;
