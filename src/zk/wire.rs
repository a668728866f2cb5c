//! Four-letter words on the wire: write the word, read until the server closes.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::time::timeout;

use super::ZkError;

/// Largest answer accepted (a 3.9 `mntr` is about 20 KiB).
const MAX_ANSWER: usize = 1 << 20;

/// The four-letter words the bitnami chart whitelists (`ZOO_4LW_COMMANDS_WHITELIST="srvr, mntr, ruok"`),
/// and `conf`, asked of a migration's source members (its server list, when they allow it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FourLetter {
    Srvr,
    Mntr,
    Ruok,
    Conf,
}

impl FourLetter {
    pub fn as_str(self) -> &'static str {
        match self {
            FourLetter::Srvr => "srvr",
            FourLetter::Mntr => "mntr",
            FourLetter::Ruok => "ruok",
            FourLetter::Conf => "conf",
        }
    }
}

impl fmt::Display for FourLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// See [`four_letter`]: how long a started answer may pause before it counts as complete.
const ANSWER_IDLE: Duration = Duration::from_millis(400);

/// Sends `cmd` on a fresh connection to a ZooKeeper client port and reads the answer until the
/// server closes the connection. `read_timeout` bounds the whole exchange. An empty answer is
/// returned as is (`ruok` on a server that is not running answers nothing).
pub async fn four_letter<S>(
    mut stream: S,
    cmd: FourLetter,
    read_timeout: Duration,
) -> Result<String, ZkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let exchange = async {
        stream.write_all(cmd.as_str().as_bytes()).await?;
        stream.flush().await?;
        let mut answer = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            // ZooKeeper answers in one write and closes. Over the API server's websocket
            // port-forward the close does not always arrive, so once an answer has started, a
            // pause of ANSWER_IDLE ends it too.
            let n = if answer.is_empty() {
                stream.read(&mut chunk).await?
            } else {
                match timeout(ANSWER_IDLE, stream.read(&mut chunk)).await {
                    Ok(n) => n?,
                    Err(_) => return Ok(Ok(answer)),
                }
            };
            if n == 0 {
                return Ok(Ok(answer));
            }
            if answer.len() + n > MAX_ANSWER {
                return Ok(Err(ZkError::TooLong {
                    cmd,
                    limit: MAX_ANSWER,
                }));
            }
            answer.extend_from_slice(&chunk[..n]);
        }
    };
    let answer = match timeout(read_timeout, exchange).await {
        Err(_) => {
            return Err(ZkError::ReadTimeout {
                cmd,
                after: read_timeout,
            })
        }
        Ok(Err(source)) => return Err(ZkError::Io { cmd, source }),
        Ok(Ok(answer)) => answer?,
    };
    let text = String::from_utf8(answer).map_err(|e| ZkError::Parse {
        cmd,
        reason: format!("not UTF-8: {e}"),
    })?;
    if text.contains("is not executed because it is not in the whitelist") {
        return Err(ZkError::NotWhitelisted { cmd });
    }
    Ok(text)
}

/// A TCP connection to a client port (`host:port` or a `SocketAddr`), for [`four_letter`].
pub async fn connect_tcp<A>(addr: A, connect_timeout: Duration) -> Result<TcpStream, ZkError>
where
    A: ToSocketAddrs + fmt::Display,
{
    let shown = addr.to_string();
    match timeout(connect_timeout, TcpStream::connect(addr)).await {
        Err(_) => Err(ZkError::ConnectTimeout {
            addr: shown,
            after: connect_timeout,
        }),
        Ok(Err(source)) => Err(ZkError::Connect {
            addr: shown,
            source,
        }),
        Ok(Ok(stream)) => {
            stream.set_nodelay(true).ok();
            Ok(stream)
        }
    }
}

/// [`four_letter`] over a new TCP connection to `addr` (`host:port` or a `SocketAddr`).
pub async fn query_addr<A>(
    addr: A,
    cmd: FourLetter,
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<String, ZkError>
where
    A: ToSocketAddrs + fmt::Display,
{
    four_letter(connect_tcp(addr, connect_timeout).await?, cmd, read_timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    /// A fake server end over an in-memory pipe: checks the word, answers, closes.
    async fn serve(expect: &'static str, answer: &'static [u8]) -> tokio::io::DuplexStream {
        let (client, mut server) = duplex(64);
        tokio::spawn(async move {
            let mut word = [0u8; 4];
            server.read_exact(&mut word).await.unwrap();
            assert_eq!(&word, expect.as_bytes());
            server.write_all(answer).await.unwrap();
            // dropping `server` closes the pipe: the client reads EOF
        });
        client
    }

    #[tokio::test]
    async fn reads_until_close() {
        let s = serve("ruok", b"imok").await;
        assert_eq!(
            four_letter(s, FourLetter::Ruok, Duration::from_secs(1))
                .await
                .unwrap(),
            "imok"
        );
    }

    #[tokio::test]
    async fn long_answer_in_many_chunks() {
        let body: &'static [u8] = Box::leak(vec![b'x'; 100_000].into_boxed_slice());
        let s = serve("mntr", body).await;
        assert_eq!(
            four_letter(s, FourLetter::Mntr, Duration::from_secs(1))
                .await
                .unwrap()
                .len(),
            100_000
        );
    }

    #[tokio::test]
    async fn not_whitelisted() {
        let s = serve(
            "mntr",
            b"mntr is not executed because it is not in the whitelist.\n",
        )
        .await;
        let e = four_letter(s, FourLetter::Mntr, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                ZkError::NotWhitelisted {
                    cmd: FourLetter::Mntr
                }
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn times_out_when_server_never_closes() {
        let (client, _server) = duplex(64);
        let e = four_letter(client, FourLetter::Srvr, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(e, ZkError::ReadTimeout { .. }), "{e}");
    }

    #[tokio::test]
    async fn connect_refused_names_the_address() {
        // Port 1 on loopback: nothing listens there.
        let e = query_addr(
            "127.0.0.1:1",
            FourLetter::Ruok,
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
    }
}
