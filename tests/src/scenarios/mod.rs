//! The scenarios, one `pub async fn` each, every one runnable against any
//! [`ProxyUnderTest`]. [`scenarios!`](crate::scenarios!) lists them all.

mod hop_by_hop;
mod http;
mod layer4;
mod limits;
pub mod metrics;
mod pool;
mod proxy_protocol;
mod reliability;
mod reload;
mod routing;
mod shutdown;
mod smuggling;
mod tls;
mod tunnel;
mod upgrade;
mod upstream;
mod websocket;

pub use hop_by_hop::*;
pub use http::*;
pub use layer4::*;
pub use limits::*;
pub use metrics::*;
pub use pool::*;
pub use proxy_protocol::*;
pub use reliability::*;
pub use reload::*;
pub use routing::*;
pub use shutdown::*;
pub use smuggling::*;
pub use tls::*;
pub use tunnel::*;
pub use upgrade::*;
pub use upstream::*;
pub use websocket::*;

use crate::http::{Conn, Response};
use crate::{test_config, Config, ProxyUnderTest, RunningProxy};
use std::net::SocketAddr;
use std::time::Duration;

/// How long a scenario waits for a response that should come at once.
pub(crate) const RESPONSE_WAIT: Duration = Duration::from_secs(3);

/// Starts the proxy with [`test_config`] towards `upstream`.
pub(crate) async fn start(p: &dyn ProxyUnderTest, upstream: SocketAddr) -> RunningProxy {
    p.start(test_config(upstream)).await
}

/// Starts the proxy with [`test_config`] towards `upstream`, changed by `edit`.
pub(crate) async fn start_with(
    p: &dyn ProxyUnderTest,
    upstream: SocketAddr,
    edit: impl FnOnce(&mut Config),
) -> RunningProxy {
    let mut config = test_config(upstream);
    edit(&mut config);
    p.start(config).await
}

/// Connects a raw HTTP client to the proxy.
pub(crate) async fn client(proxy: &RunningProxy) -> Conn {
    Conn::connect(proxy.addr)
        .await
        .expect("connect to the proxy")
}

/// Reads one response within [`RESPONSE_WAIT`], panicking with context otherwise.
pub(crate) async fn response(c: &mut Conn, method: &str, what: &str) -> Response {
    match tokio::time::timeout(RESPONSE_WAIT, c.read_response(method)).await {
        Err(_) => panic!("{what}: no response within {RESPONSE_WAIT:?}"),
        Ok(Err(e)) => panic!("{what}: reading the response failed: {e}"),
        Ok(Ok(r)) => r,
    }
}

/// Sends `request` on a fresh connection and reads one response to `method`.
pub(crate) async fn exchange(proxy: &RunningProxy, request: &[u8], method: &str) -> Response {
    let mut c = client(proxy).await;
    c.write(request).await.expect("write request");
    response(&mut c, method, &show(request)).await
}

/// A request's first line, for messages.
pub(crate) fn show(request: &[u8]) -> String {
    let text = String::from_utf8_lossy(request);
    let line = text.lines().next().unwrap_or_default();
    format!("{:?}", &line[..line.len().min(80)])
}

/// A request with `Host: example.test` and these extra lines and body.
pub(crate) fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: example.test\r\n\r\n").into_bytes()
}
