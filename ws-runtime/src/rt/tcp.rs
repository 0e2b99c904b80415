//! A plain TCP socket shared by reference: a connection's reader and writer each hold it, and
//! so may a publisher that writes to it directly while the writer is idle. Reads and writes
//! go through tokio's readiness, as its own halves' do, and tell it when they drained the
//! socket (a short read or write), so that the next one waits for the kernel's word instead
//! of trying a system call that would find nothing.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::BufMut;
use tokio::io::{AsyncWrite, Interest};
use tokio::net::TcpStream;

/// Reads into `buf` what the socket holds, without waiting: `WouldBlock` when it holds
/// nothing, `Ok(0)` at the end of the stream (or when `buf` has no room).
fn try_read_buf(socket: &TcpStream, buf: &mut impl BufMut) -> io::Result<usize> {
    if !buf.has_remaining_mut() {
        return Ok(0);
    }
    let room = buf.chunk_mut().len();
    drained(socket, Interest::READABLE, room, || {
        socket.try_read_buf(buf)
    })
}

/// Writes what the socket takes of `bytes`, without waiting: `WouldBlock` when it takes
/// nothing.
fn try_write(socket: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    drained(socket, Interest::WRITABLE, bytes.len(), || {
        socket.try_write(bytes)
    })
}

/// [`try_write`] of several buffers, in order.
fn try_write_vectored(socket: &TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let len = bufs.iter().map(|buf| buf.len()).sum();
    drained(socket, Interest::WRITABLE, len, || {
        socket.try_write_vectored(bufs)
    })
}

/// Runs a read or write of up to `len` bytes; when it moves fewer, but some, the socket is
/// drained (its receive buffer read empty, its send buffer full), and its readiness is cleared
/// for this direction, as tokio's own `AsyncRead` and `AsyncWrite` do: the next attempt waits
/// for the kernel's next event instead of a system call that would find nothing. The public
/// way to clear it is `try_io` seeing `WouldBlock`, so that is what the closure reports, with
/// the count kept beside it.
fn drained(
    socket: &TcpStream,
    interest: Interest,
    len: usize,
    io: impl FnOnce() -> io::Result<usize>,
) -> io::Result<usize> {
    let mut moved = 0;
    let result = socket.try_io(interest, || {
        moved = io()?;
        if 0 < moved && moved < len {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(moved)
    });
    match result {
        Err(err) if err.kind() == io::ErrorKind::WouldBlock && moved > 0 => Ok(moved),
        result => result,
    }
}

/// Reads into `buf`, waiting for input: `Ok(0)` at the end of the stream.
pub(crate) fn poll_read_buf(
    socket: &TcpStream,
    cx: &mut Context<'_>,
    buf: &mut impl BufMut,
) -> Poll<io::Result<usize>> {
    poll_io(
        cx,
        |cx| socket.poll_read_ready(cx),
        || try_read_buf(socket, buf),
    )
}

/// Runs `io` once the socket is `ready` for it, again after each `WouldBlock` (which cleared
/// the readiness, so the next wait is for the kernel's next event).
fn poll_io(
    cx: &mut Context<'_>,
    mut ready: impl FnMut(&mut Context<'_>) -> Poll<io::Result<()>>,
    mut io: impl FnMut() -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(ready(cx))?;
        match io() {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            done => return Poll::Ready(done),
        }
    }
}

/// The writing end of a shared socket, for a connection's writer. Dropped, it shuts the
/// socket down for writing (the peer reads the end of the stream), as tokio's own write half
/// does; the descriptor closes with the last holder.
#[derive(Debug)]
pub(crate) struct TcpWriter(pub(crate) Arc<TcpStream>);

impl TcpWriter {
    /// Writes through `write` once the socket takes bytes.
    fn poll(
        &self,
        cx: &mut Context<'_>,
        write: impl Fn(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        poll_io(cx, |cx| self.0.poll_write_ready(cx), || write(&self.0))
    }

    /// Shuts the socket down for writing.
    fn shut(&self) -> io::Result<()> {
        socket2::SockRef::from(&*self.0).shutdown(std::net::Shutdown::Write)
    }
}

impl AsyncWrite for TcpWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll(cx, |socket| try_write(socket, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll(cx, |socket| try_write_vectored(socket, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shut())
    }
}

impl Drop for TcpWriter {
    fn drop(&mut self) {
        let _ = self.shut();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    /// Reads and writes through a shared socket arrive whole and in order, a short read
    /// leaves the next one waiting for input (not failing), and the writer's drop ends the
    /// peer's stream while the reader's share still reads.
    #[tokio::test]
    async fn a_shared_socket_reads_writes_and_ends_the_stream() {
        let (server, mut client) = pair().await;
        let server = Arc::new(server);
        let mut writer = TcpWriter(server.clone());
        writer.write_all(b"hello").await.unwrap();
        let parts = [IoSlice::new(b" wor"), IoSlice::new(b"ld")];
        let n = writer.write_vectored(&parts).await.unwrap();
        assert_eq!(n, 6);
        let mut got = [0; 11];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello world");

        client.write_all(b"abc").await.unwrap();
        let mut buf = bytes::BytesMut::with_capacity(64);
        let read = std::future::poll_fn(|cx| poll_read_buf(&server, cx, &mut buf)).await;
        assert_eq!(read.unwrap(), 3);
        assert_eq!(&buf[..], b"abc");
        // Drained by a short read: nothing more without new input.
        assert_eq!(
            try_read_buf(&server, &mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        client.write_all(b"de").await.unwrap();
        let read = std::future::poll_fn(|cx| poll_read_buf(&server, cx, &mut buf)).await;
        assert_eq!(read.unwrap(), 2);
        assert_eq!(&buf[..], b"abcde");

        drop(writer);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "the stream ended");
        client.write_all(b"still read").await.unwrap();
        buf.clear();
        let read = std::future::poll_fn(|cx| poll_read_buf(&server, cx, &mut buf)).await;
        assert_eq!(read.unwrap(), 10);
    }

    /// A send buffer filled by writes without waiting ends with a partial write, then takes
    /// nothing (`WouldBlock`); a write that waits completes once the peer reads.
    #[tokio::test]
    async fn a_full_socket_takes_part_then_nothing() {
        let (server, mut client) = pair().await;
        server.writable().await.unwrap();
        let chunk = vec![7u8; 1 << 20];
        let (mut total, mut partial) = (0, false);
        loop {
            match try_write(&server, &chunk) {
                Ok(n) => {
                    total += n;
                    partial |= n < chunk.len();
                }
                Err(err) => {
                    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
                    break;
                }
            }
        }
        assert!(partial && total > 0, "{total} bytes, none in part");
        let mut writer = TcpWriter(Arc::new(server));
        let reading = async {
            let mut got = vec![0; total + 5];
            client.read_exact(&mut got).await.unwrap();
            got
        };
        let (written, got) = tokio::join!(writer.write_all(b"after"), reading);
        written.unwrap();
        assert_eq!(&got[total..], b"after");
    }
}
