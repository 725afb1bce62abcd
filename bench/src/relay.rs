//! The userspace copy floor: accept, dial the upstream, `copy_bidirectional`. No
//! parsing, no pooling, no timeouts; what any proxy that looks at the bytes in user
//! space cannot beat by much.

use std::io;
use std::net::SocketAddr;

pub async fn run(listen: SocketAddr, upstream: SocketAddr) -> io::Result<()> {
    let listener = crate::bind(listen)?;
    eprintln!("relay: {listen} -> {upstream}");
    loop {
        let (mut client, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("relay: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                return;
            };
            let _ = server.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
    }
}
