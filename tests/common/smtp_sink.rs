//! A plain-text SMTP sink for tests: greets, says yes to everything, and
//! keeps each mail's DATA (dot-unstuffed, CRLF line ends) with its envelope.
//! `start_silent` gives a server that accepts connections and never greets.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub from: String,
    pub to: Vec<String>,
    /// `AUTH` lines as sent, when the client logged in.
    pub auth: Vec<String>,
}

pub struct SmtpSink {
    pub port: u16,
    pub messages: Arc<Mutex<Vec<String>>>,
    pub envelopes: Arc<Mutex<Vec<Envelope>>>,
    received: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl SmtpSink {
    /// A sink on 127.0.0.1 at a free port.
    pub async fn start() -> SmtpSink {
        Self::spawn(true).await
    }

    /// Accepts connections, then says nothing: for timeouts.
    pub async fn start_silent() -> SmtpSink {
        Self::spawn(false).await
    }

    async fn spawn(speaks: bool) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the SMTP sink");
        let port = listener.local_addr().expect("sink address").port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let envelopes = Arc::new(Mutex::new(Vec::new()));
        let (count, received) = watch::channel(0usize);
        let shared = Shared { messages: messages.clone(), envelopes: envelopes.clone(), count: Arc::new(count) };
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    if speaks {
                        let _ = session(stream, &shared).await;
                    } else {
                        hold(stream).await;
                    }
                });
            }
        });
        SmtpSink { port, messages, envelopes, received, task }
    }

    /// The first `n` mails, once they are in; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<String> {
        let mut received = self.received.clone();
        let arrived = matches!(tokio::time::timeout(timeout, received.wait_for(|count| *count >= n)).await, Ok(Ok(_)));
        assert!(arrived, "{n} mail(s) expected within {timeout:?}, got {}", *self.received.borrow());
        self.messages.lock().expect("sink messages").clone()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    messages: Arc<Mutex<Vec<String>>>,
    envelopes: Arc<Mutex<Vec<Envelope>>>,
    count: Arc<watch::Sender<usize>>,
}

/// Keeps the connection open without a word until the client gives up.
async fn hold(mut stream: TcpStream) {
    let mut buf = [0u8; 512];
    while let Ok(1..) = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await {}
}

async fn session(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let mut envelope = Envelope::default();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let verb = command.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink.test\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 10485760\r\n",
            "HELO" | "NOOP" => b"250 ok\r\n",
            "RSET" => {
                envelope = Envelope::default();
                b"250 ok\r\n"
            }
            "AUTH" => {
                envelope.auth.push(command.clone());
                b"235 2.7.0 authenticated\r\n"
            }
            "MAIL" => {
                envelope.from = angle(&command);
                b"250 ok\r\n"
            }
            "RCPT" => {
                envelope.to.push(angle(&command));
                b"250 ok\r\n"
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let data = read_data(&mut lines).await?;
                shared.messages.lock().expect("sink messages").push(data);
                shared.envelopes.lock().expect("sink envelopes").push(std::mem::take(&mut envelope));
                shared.count.send_modify(|n| *n += 1);
                b"250 2.0.0 queued\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// Lines up to the lone ".", with the leading dot of stuffed lines removed.
async fn read_data(lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<String> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == ".\r\n" || line == ".\n" {
            return Ok(data);
        }
        data.push_str(line.strip_prefix('.').unwrap_or(&line));
    }
}

fn angle(command: &str) -> String {
    match (command.find('<'), command.rfind('>')) {
        (Some(open), Some(close)) if open < close => command[open + 1..close].to_string(),
        _ => String::new(),
    }
}
