//! The last bytes before a FIN go out in the same segment: written with `MSG_MORE`,
//! the kernel holds them for the `shutdown` that follows at once, which sends them with
//! the FIN. A closing connection (a WebSocket's Close reply, a `Connection: close`
//! response) then costs the peer one packet fewer.

use std::io::{self, IoSlice};
use std::os::fd::AsFd;

/// Sends a prefix of `bufs` on a non-blocking TCP socket whose write half is shut down
/// right after (only the shutdown pushes held bytes out: call it only then).
pub fn send_before_fin(socket: impl AsFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    use rustix::net::{send, sendmsg, SendAncillaryBuffer, SendFlags};
    #[cfg(target_os = "linux")]
    let flags = SendFlags::MORE | SendFlags::NOSIGNAL;
    #[cfg(not(target_os = "linux"))]
    let flags = SendFlags::empty();
    let sent = match bufs {
        [one] => send(&socket, one, flags),
        _ => sendmsg(&socket, bufs, &mut SendAncillaryBuffer::default(), flags),
    };
    Ok(sent?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::time::Duration;

    #[test]
    fn the_bytes_wait_for_the_shutdown_then_arrive_whole_before_eof() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let writer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        writer.set_nodelay(true).unwrap();
        let (mut reader, _) = listener.accept().unwrap();
        let bufs = [IoSlice::new(b"last "), IoSlice::new(b"words")];
        assert_eq!(send_before_fin(&writer, &bufs).unwrap(), 10);
        if cfg!(target_os = "linux") {
            // Held for the FIN (Nagle is off: without MSG_MORE they would be here).
            reader
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let mut byte = [0u8; 1];
            let held = reader.read(&mut byte).unwrap_err();
            assert!(matches!(
                held.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ));
        }
        writer.shutdown(Shutdown::Write).unwrap();
        reader
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"last words");
    }
}
