//! A minimal ZooKeeper client (jute wire protocol) for tests: connect, create, exists,
//! getChildren, getData, delete, ping, close. One request in flight per call, except
//! [`ZkClient::create_many`], which pipelines. No watches, no reconnects, no chroot: a lost
//! connection is an error the test sees.

#![allow(dead_code)]

use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Operation codes (`org.apache.zookeeper.ZooDefs.OpCode`).
mod op {
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const GET_CHILDREN: i32 = 8;
    pub const PING: i32 = 11;
    pub const CLOSE: i32 = -11;
}
const XID_WATCH_EVENT: i32 = -1;
const XID_PING: i32 = -2;
const MAX_FRAME: usize = 16 << 20;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("{addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}: no answer within {after:?}")]
    Timeout { addr: String, after: Duration },
    #[error("{addr}: server closed the session handshake (not serving, or session expired)")]
    Refused { addr: String },
    #[error("{addr}: {path}: server error {code} ({})", code_name(*.code))]
    Server {
        addr: String,
        path: String,
        code: i32,
    },
    #[error("{addr}: malformed reply: {reason}")]
    Protocol { addr: String, reason: String },
}

impl ClientError {
    /// The server's error code (`KeeperException.Code`), if the server answered with one.
    pub fn code(&self) -> Option<i32> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

pub const NO_NODE: i32 = -101;
pub const NODE_EXISTS: i32 = -110;

fn code_name(code: i32) -> &'static str {
    match code {
        -4 => "connection loss",
        -101 => "no node",
        -102 => "no auth",
        -103 => "bad version",
        -110 => "node exists",
        -111 => "not empty",
        -112 => "session expired",
        -119 => "ephemeral on local session",
        _ => "see KeeperException.Code",
    }
}

/// `create` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    Persistent = 0,
    Ephemeral = 1,
    PersistentSequential = 2,
}

pub struct ZkClient {
    addr: String,
    stream: TcpStream,
    xid: i32,
    op_timeout: Duration,
    /// Negotiated session timeout.
    pub session_timeout: Duration,
    pub session_id: i64,
    /// Highest zxid seen in a reply.
    pub last_zxid: i64,
}

/// Jute encoder into a frame buffer (length prefix written at send time).
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn int(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn long(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn boolean(&mut self, v: bool) -> &mut Self {
        self.0.push(u8::from(v));
        self
    }
    fn buffer(&mut self, v: &[u8]) -> &mut Self {
        self.int(v.len() as i32);
        self.0.extend_from_slice(v);
        self
    }
    fn string(&mut self, v: &str) -> &mut Self {
        self.buffer(v.as_bytes())
    }
    fn framed(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() + 4);
        out.extend_from_slice(&(self.0.len() as i32).to_be_bytes());
        out.extend_from_slice(&self.0);
        out
    }
}

/// Jute decoder over one received frame.
struct Dec<'a>(&'a [u8]);

impl Dec<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "frame ends early (wanted {n} more bytes, {} left)",
                self.0.len()
            ));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn int(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn long(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn buffer(&mut self) -> Result<Vec<u8>, String> {
        let len = self.int()?;
        if len < 0 {
            return Ok(Vec::new());
        }
        Ok(self.take(len as usize)?.to_vec())
    }
    fn string(&mut self) -> Result<String, String> {
        String::from_utf8(self.buffer()?).map_err(|e| format!("string is not UTF-8: {e}"))
    }
}

impl ZkClient {
    /// Opens a session. `session_timeout` is what we ask for; the server clamps it to
    /// [2, 20] × tickTime.
    pub async fn connect(addr: &str, session_timeout: Duration) -> Result<Self, ClientError> {
        let op_timeout = Duration::from_secs(5);
        let stream = match timeout(op_timeout, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(ClientError::Timeout {
                    addr: addr.into(),
                    after: op_timeout,
                })
            }
            Ok(Err(source)) => {
                return Err(ClientError::Io {
                    addr: addr.into(),
                    source,
                })
            }
            Ok(Ok(s)) => s,
        };
        stream.set_nodelay(true).ok();
        let mut c = ZkClient {
            addr: addr.to_string(),
            stream,
            xid: 0,
            op_timeout,
            session_timeout,
            session_id: 0,
            last_zxid: 0,
        };
        let mut req = Enc::default();
        req.int(0) // protocol version
            .long(0) // last zxid seen
            .int(session_timeout.as_millis() as i32)
            .long(0) // session id
            .buffer(&[0u8; 16]) // password
            .boolean(false); // read-only
        c.send(&req).await?;
        let frame = match c.recv().await {
            Ok(f) => f,
            Err(ClientError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                return Err(ClientError::Refused { addr: c.addr });
            }
            Err(e) => return Err(e),
        };
        let mut d = Dec(&frame);
        let parsed = (|| -> Result<(i32, i64), String> {
            let _protocol = d.int()?;
            let negotiated = d.int()?;
            let session_id = d.long()?;
            let _password = d.buffer()?;
            Ok((negotiated, session_id))
        })();
        let (negotiated, session_id) = parsed.map_err(|reason| c.protocol(reason))?;
        if negotiated <= 0 {
            return Err(ClientError::Refused { addr: c.addr });
        }
        c.session_timeout = Duration::from_millis(negotiated as u64);
        c.session_id = session_id;
        Ok(c)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn protocol(&self, reason: String) -> ClientError {
        ClientError::Protocol {
            addr: self.addr.clone(),
            reason,
        }
    }

    fn io(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    async fn send(&mut self, body: &Enc) -> Result<(), ClientError> {
        let frame = body.framed();
        match timeout(self.op_timeout, self.stream.write_all(&frame)).await {
            Err(_) => Err(ClientError::Timeout {
                addr: self.addr.clone(),
                after: self.op_timeout,
            }),
            Ok(Err(e)) => Err(self.io(e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn recv(&mut self) -> Result<Vec<u8>, ClientError> {
        let read = async {
            let len = self.stream.read_i32().await?;
            if len < 0 || len as usize > MAX_FRAME {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("frame length {len}"),
                ));
            }
            let mut buf = vec![0u8; len as usize];
            self.stream.read_exact(&mut buf).await?;
            Ok(buf)
        };
        match timeout(self.op_timeout, read).await {
            Err(_) => Err(ClientError::Timeout {
                addr: self.addr.clone(),
                after: self.op_timeout,
            }),
            Ok(Err(e)) => Err(self.io(e)),
            Ok(Ok(buf)) => Ok(buf),
        }
    }

    fn next_xid(&mut self) -> i32 {
        self.xid += 1;
        self.xid
    }

    fn request(&mut self, op: i32) -> (i32, Enc) {
        let xid = self.next_xid();
        let mut e = Enc::default();
        e.int(xid).int(op);
        (xid, e)
    }

    /// Reads frames until the reply to `xid`; returns (error code, body after the header).
    async fn reply(&mut self, xid: i32) -> Result<(i32, Vec<u8>), ClientError> {
        loop {
            let frame = self.recv().await?;
            let mut d = Dec(&frame);
            let (rxid, zxid, err) =
                (|| -> Result<(i32, i64, i32), String> { Ok((d.int()?, d.long()?, d.int()?)) })()
                    .map_err(|r| self.protocol(r))?;
            if rxid == XID_WATCH_EVENT || (rxid == XID_PING && xid != XID_PING) {
                continue;
            }
            if rxid != xid {
                return Err(self.protocol(format!("reply for xid {rxid}, expected {xid}")));
            }
            if zxid > self.last_zxid {
                self.last_zxid = zxid;
            }
            return Ok((err, d.0.to_vec()));
        }
    }

    fn check(&self, path: &str, err: i32) -> Result<(), ClientError> {
        if err == 0 {
            Ok(())
        } else {
            Err(ClientError::Server {
                addr: self.addr.clone(),
                path: path.to_string(),
                code: err,
            })
        }
    }

    fn encode_create(&mut self, path: &str, data: &[u8], mode: CreateMode) -> (i32, Enc) {
        let (xid, mut e) = self.request(op::CREATE);
        e.string(path).buffer(data);
        // ACL vector: one entry, world:anyone with all permissions.
        e.int(1).int(0x1f).string("world").string("anyone");
        e.int(mode as i32);
        (xid, e)
    }

    /// Creates a node; returns the created path (differs from `path` for sequential nodes).
    pub async fn create(
        &mut self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> Result<String, ClientError> {
        let (xid, e) = self.encode_create(path, data, mode);
        self.send(&e).await?;
        let (err, body) = self.reply(xid).await?;
        self.check(path, err)?;
        Dec(&body).string().map_err(|r| self.protocol(r))
    }

    /// Creates `path` unless it exists.
    pub async fn ensure(&mut self, path: &str) -> Result<(), ClientError> {
        match self.create(path, b"", CreateMode::Persistent).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(NODE_EXISTS) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Creates many persistent nodes with requests pipelined (all sent, then all answers read).
    /// Fails on the first error answer, after reading every answer.
    pub async fn create_many(&mut self, paths: &[String], data: &[u8]) -> Result<(), ClientError> {
        for chunk in paths.chunks(256) {
            let mut xids = Vec::with_capacity(chunk.len());
            let mut batch = Vec::new();
            for p in chunk {
                let (xid, e) = self.encode_create(p, data, CreateMode::Persistent);
                batch.extend_from_slice(&e.framed());
                xids.push((xid, p));
            }
            match timeout(self.op_timeout, self.stream.write_all(&batch)).await {
                Err(_) => {
                    return Err(ClientError::Timeout {
                        addr: self.addr.clone(),
                        after: self.op_timeout,
                    })
                }
                Ok(Err(e)) => return Err(self.io(e)),
                Ok(Ok(())) => {}
            }
            let mut first_err = None;
            for (xid, p) in xids {
                let (err, _) = self.reply(xid).await?;
                if let (Err(e), None) = (self.check(p, err), &first_err) {
                    first_err = Some(e);
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
        }
        Ok(())
    }

    pub async fn exists(&mut self, path: &str) -> Result<bool, ClientError> {
        let (xid, mut e) = self.request(op::EXISTS);
        e.string(path).boolean(false);
        self.send(&e).await?;
        let (err, _stat) = self.reply(xid).await?;
        if err == NO_NODE {
            return Ok(false);
        }
        self.check(path, err)?;
        Ok(true)
    }

    pub async fn get_data(&mut self, path: &str) -> Result<Vec<u8>, ClientError> {
        let (xid, mut e) = self.request(op::GET_DATA);
        e.string(path).boolean(false);
        self.send(&e).await?;
        let (err, body) = self.reply(xid).await?;
        self.check(path, err)?;
        Dec(&body).buffer().map_err(|r| self.protocol(r))
    }

    pub async fn get_children(&mut self, path: &str) -> Result<Vec<String>, ClientError> {
        let (xid, mut e) = self.request(op::GET_CHILDREN);
        e.string(path).boolean(false);
        self.send(&e).await?;
        let (err, body) = self.reply(xid).await?;
        self.check(path, err)?;
        let mut d = Dec(&body);
        let n = d.int().map_err(|r| self.protocol(r))?;
        let mut out = Vec::with_capacity(n.max(0) as usize);
        for _ in 0..n.max(0) {
            out.push(d.string().map_err(|r| self.protocol(r))?);
        }
        Ok(out)
    }

    pub async fn delete(&mut self, path: &str) -> Result<(), ClientError> {
        let (xid, mut e) = self.request(op::DELETE);
        e.string(path).int(-1);
        self.send(&e).await?;
        let (err, _) = self.reply(xid).await?;
        self.check(path, err)
    }

    /// Keeps an idle session alive; call more often than a third of `session_timeout`.
    pub async fn ping(&mut self) -> Result<(), ClientError> {
        let mut e = Enc::default();
        e.int(XID_PING).int(op::PING);
        self.send(&e).await?;
        self.reply(XID_PING).await.map(|_| ())
    }

    /// Ends the session (ephemeral nodes go at once instead of at session expiry).
    pub async fn close(mut self) -> Result<(), ClientError> {
        let (xid, e) = self.request(op::CLOSE);
        self.send(&e).await?;
        self.reply(xid).await.map(|_| ())
    }
}
