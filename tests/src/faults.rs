//! [`FaultProxy`]: a TCP proxy on loopback between the functions and a real server (DynamoDB
//! Local, LocalStack) that passes bytes through until told to misbehave, the way a network or a
//! dependency does in production: never answer, answer late, reset, or cut an answer short;
//! to every request, or only to those of one operation while the others pass.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What the proxy does with the bytes of every connection, open or new, from the moment it is
/// set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Passes every byte through.
    None,
    /// Takes requests in and neither passes them on nor answers: a hung dependency or a
    /// partition. Nothing reaches the server.
    Blackhole,
    /// Passes requests on at once and holds each answer this long: a paused or overloaded
    /// server, whose writes apply although their answers come too late.
    Delay(Duration),
    /// Resets the connection (RST) as soon as a request arrives: a crashed server or a dropped
    /// connection. Nothing reaches the server.
    Reset,
    /// Passes requests on, then only the first this many bytes of an answer, and resets: an
    /// answer lost midway, after the server acted.
    CutAfter(usize),
}

/// A fault and the requests it applies to: every one, or only those whose `X-Amz-Target`
/// header names `operation` (DynamoDB's `DynamoDB_20120810.TransactWriteItems`, …), so that a
/// route's other calls (its key lookup, its reads) pass and reach the one under test.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    fault: Fault,
    operation: Option<&'static str>,
}

impl Rule {
    /// The fault of a request that begins with `head`.
    fn fault_for(&self, head: &[u8]) -> Fault {
        match self.operation {
            Some(operation) if target(head) != Some(operation) => Fault::None,
            _ => self.fault,
        }
    }
}

/// The `X-Amz-Target` of a request that begins with `head` (its headers).
fn target(head: &[u8]) -> Option<&str> {
    let head = std::str::from_utf8(head).ok()?;
    let headers = &head[..head.find("\r\n\r\n").unwrap_or(head.len())];
    headers.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("x-amz-target")
            .then(|| value.trim())
    })
}

/// Whether `bytes`, read from a client, begin a request (rather than continue a body): the
/// SDKs send one request at a time on a connection, and each begins with its method.
fn begins_request(bytes: &[u8]) -> bool {
    ["GET ", "PUT ", "POST ", "DELETE ", "HEAD "]
        .iter()
        .any(|method| bytes.starts_with(method.as_bytes()))
}

/// The first line of every request that reached the proxy (`POST /bucket/key?uploads HTTP/1.1`).
type Requests = Arc<Mutex<Vec<String>>>;

/// A fault-injecting proxy to `upstream`, stopped when dropped.
pub struct FaultProxy {
    url: String,
    rule: Arc<watch::Sender<Rule>>,
    requests: Requests,
    connections: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let rule = Arc::new(watch::Sender::new(Rule {
            fault: Fault::None,
            operation: None,
        }));
        let rules = rule.subscribe();
        let requests = Requests::default();
        let seen = requests.clone();
        let connections = tokio::spawn(async move {
            // Dropped with this task: aborting the proxy ends every connection.
            let mut open = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let (rules, seen) = (rules.clone(), seen.clone());
                open.spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let _ = relay(client, server, rules, seen).await;
                    }
                });
            }
        });
        Self {
            url,
            rule,
            requests,
            connections,
        }
    }

    /// The endpoint to give the SDK instead of the server's.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The first line of every request so far, in the order they came: what was asked of
    /// the server (or would have been, under a fault), for a test to find what a route opened.
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Applies `fault` to every request.
    pub fn set(&self, fault: Fault) {
        self.rule.send_replace(Rule {
            fault,
            operation: None,
        });
    }

    /// Applies `fault` to the requests of `operation` (the value of their `X-Amz-Target`
    /// header) that begin from now on, and passes every other request through.
    pub fn set_for(&self, operation: &'static str, fault: Fault) {
        self.rule.send_replace(Rule {
            fault,
            operation: Some(operation),
        });
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.connections.abort();
    }
}

/// Copies bytes both ways, misbehaving as the current rule says: a fault for every request
/// applies to every byte from the moment it is set; one for an operation, to the requests of
/// that operation from their first byte to the last of their answer.
async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    rules: watch::Receiver<Rule>,
    seen: Requests,
) -> std::io::Result<()> {
    let mut request = vec![0u8; 64 * 1024];
    let mut answer = vec![0u8; 64 * 1024];
    // The fault of the request in flight on this connection, when the rule names an operation.
    let mut chosen = Fault::None;
    let current = |chosen: Fault| {
        let rule = rules.borrow();
        match rule.operation {
            None => rule.fault,
            Some(_) => chosen,
        }
    };
    loop {
        tokio::select! {
            read = client.read(&mut request) => {
                let n = read?;
                if n == 0 {
                    return Ok(());
                }
                if begins_request(&request[..n]) {
                    chosen = rules.borrow().fault_for(&request[..n]);
                    let head = String::from_utf8_lossy(&request[..n]);
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(line);
                }
                match current(chosen) {
                    Fault::Blackhole => return hang(client, server).await,
                    Fault::Reset => return reset(client),
                    _ => server.write_all(&request[..n]).await?,
                }
            }
            read = server.read(&mut answer) => {
                let n = read?;
                if n == 0 {
                    return Ok(());
                }
                match current(chosen) {
                    Fault::Delay(delay) => tokio::time::sleep(delay).await,
                    Fault::CutAfter(kept) => {
                        client.write_all(&answer[..kept.min(n)]).await?;
                        return reset(client);
                    }
                    Fault::Blackhole => return hang(client, server).await,
                    Fault::None | Fault::Reset => {}
                }
                client.write_all(&answer[..n]).await?;
            }
        }
    }
}

/// Holds both connections open, silent, until the client gives up.
async fn hang(mut client: TcpStream, _server: TcpStream) -> std::io::Result<()> {
    let mut sink = [0u8; 4096];
    while client.read(&mut sink).await? > 0 {}
    Ok(())
}

/// Closes the client's connection with a reset rather than an orderly close.
fn reset(client: TcpStream) -> std::io::Result<()> {
    client.set_zero_linger()?;
    drop(client);
    Ok(())
}
