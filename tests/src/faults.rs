//! [`FaultProxy`]: a TCP proxy on loopback between the functions and a real server (DynamoDB
//! Local, LocalStack) that passes bytes through until told to misbehave, the way a network or a
//! dependency does in production: never answer, answer late, reset, or cut an answer short.

use std::sync::Arc;
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

/// A fault-injecting proxy to `upstream`, stopped when dropped.
pub struct FaultProxy {
    url: String,
    fault: Arc<watch::Sender<Fault>>,
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
        let fault = Arc::new(watch::Sender::new(Fault::None));
        let faults = fault.subscribe();
        let connections = tokio::spawn(async move {
            // Dropped with this task: aborting the proxy ends every connection.
            let mut open = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let faults = faults.clone();
                open.spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let _ = relay(client, server, faults).await;
                    }
                });
            }
        });
        Self {
            url,
            fault,
            connections,
        }
    }

    /// The endpoint to give the SDK instead of the server's.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.connections.abort();
    }
}

/// Copies bytes both ways, misbehaving as the current fault says.
async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    faults: watch::Receiver<Fault>,
) -> std::io::Result<()> {
    let mut request = vec![0u8; 64 * 1024];
    let mut answer = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            read = client.read(&mut request) => {
                let n = read?;
                if n == 0 {
                    return Ok(());
                }
                let fault = *faults.borrow();
                match fault {
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
                let fault = *faults.borrow();
                match fault {
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
