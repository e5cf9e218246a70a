//! First invocation: from exec to the function's answer to one event whose handling makes one
//! DynamoDB call over TLS, as a new sandbox's first request does in AWS (the handshake, its key
//! exchange and certificate check, and the SDK's first signed request are all inside the window).
//! DynamoDB Local speaks plain HTTP, so a TLS endpoint of the bench's own, with a CA made for the
//! run, stands in front of it. The functions trust that CA alone (`SSL_CERT_FILE`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A TLS endpoint on loopback that passes each connection's bytes on to `upstream`.
pub struct TlsFront {
    /// `https://localhost:<port>`, for `AWS_ENDPOINT_URL_DYNAMODB`.
    pub url: String,
    /// The CA that signed the endpoint's certificate, in PEM, for `SSL_CERT_FILE`.
    pub ca_file: PathBuf,
}

pub async fn tls_front(upstream: SocketAddr, dir: &Path) -> Result<TlsFront, String> {
    let fail = |e: rcgen::Error| e.to_string();
    let ca_key = KeyPair::generate().map_err(fail)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(fail)?;
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .map_err(fail)?
        .signed_by(&key, &issuer)
        .map_err(fail)?;
    let ca_file = dir.join("bench-ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).map_err(|e| e.to_string())?;

    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .map_err(|e| e.to_string())?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let (Ok(mut client), Ok(mut server)) = (
                    acceptor.accept(client).await,
                    TcpStream::connect(upstream).await,
                ) else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    Ok(TlsFront {
        url: format!("https://localhost:{port}"),
        ca_file,
    })
}

/// What the function answered to the one event, and when.
pub struct Answer {
    pub elapsed: Duration,
    pub body: String,
}

/// Starts `binary` with `env` against a stand-in of the Lambda Runtime API that hands it `event`
/// once, and times exec → the POST of its answer.
pub async fn time_to_answer(
    binary: &Path,
    env: &[(String, String)],
    event: &str,
) -> Result<Answer, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let (answers, mut answered) = mpsc::channel::<String>(1);
    let event = Arc::new(event.to_string());
    let served = Arc::new(AtomicBool::new(false));
    // The connections live in the server's set: aborting the server ends them too, the one
    // still waiting on the function's second poll included.
    let server = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            connections.spawn(runtime_api(
                stream,
                event.clone(),
                served.clone(),
                answers.clone(),
            ));
        }
    });
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let result = tokio::select! {
        body = answered.recv() => Ok(Answer { elapsed: started.elapsed(), body: body.unwrap_or_default() }),
        status = child.wait() => Err(format!("{} exited ({status:?}) before answering", binary.display())),
        () = tokio::time::sleep(Duration::from_secs(10)) => Err(format!("{} did not answer within 10 s", binary.display())),
    };
    let _ = child.kill().await;
    server.abort();
    result
}

/// One connection to the Runtime API stand-in: the first `next` gets the event, later ones wait
/// (the function is killed once it has answered); an invocation's response is passed on.
async fn runtime_api(
    stream: TcpStream,
    event: Arc<String>,
    served: Arc<AtomicBool>,
    answers: mpsc::Sender<String>,
) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let (mut length, mut chunked) = (0, false);
        loop {
            let mut header = String::new();
            if stream.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end().to_ascii_lowercase();
            if header.is_empty() {
                break;
            }
            if let Some(value) = header.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
            chunked |= header.starts_with("transfer-encoding:") && header.contains("chunked");
        }
        let Ok(body) = read_body(&mut stream, length, chunked).await else {
            return;
        };
        if request_line.starts_with("GET /2018-06-01/runtime/invocation/next") {
            if served.swap(true, Ordering::SeqCst) {
                // One event per start: the next poll waits until the function is stopped.
                return std::future::pending().await;
            }
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
                + 30_000;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 lambda-runtime-aws-request-id: bench-1\r\nlambda-runtime-deadline-ms: {deadline}\r\n\
                 lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\n\
                 lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\n\r\n",
                event.len()
            );
            if stream.get_mut().write_all(head.as_bytes()).await.is_err()
                || stream.get_mut().write_all(event.as_bytes()).await.is_err()
            {
                return;
            }
        } else {
            let _ = stream
                .get_mut()
                .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                .await;
            if request_line.contains("/response ") || request_line.contains("/error ") {
                let _ = answers
                    .send(format!(
                        "{} {}",
                        request_line.trim_end(),
                        String::from_utf8_lossy(&body)
                    ))
                    .await;
            }
        }
    }
}

/// A request's body: `length` bytes, or HTTP/1.1 chunks.
async fn read_body(
    stream: &mut BufReader<TcpStream>,
    length: usize,
    chunked: bool,
) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if !chunked {
        body.resize(length, 0);
        stream.read_exact(&mut body).await?;
        return Ok(body);
    }
    loop {
        let mut size = String::new();
        stream.read_line(&mut size).await?;
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let mut chunk = vec![0; size + 2];
        stream.read_exact(&mut chunk).await?;
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// Rounds of both starts, untimed, before the timed ones.
const WARM_UP_ROUNDS: usize = 5;

/// The row: presign's first answer, to a request with an unknown API key (one GetItem, then
/// 401), against a hello-world function making the same GetItem with the plain SDK
/// (`hello-dynamodb`): medians of `rounds` interleaved starts, after [`WARM_UP_ROUNDS`].
pub async fn rows(
    [hello, presign]: &[(&str, PathBuf); 2],
    work: &Path,
    rounds: usize,
) -> Result<(), String> {
    let setting = |name: &str| {
        std::env::var(name).map_err(|_| format!("{name} is not set (scripts/bench sets it)"))
    };
    let dynamodb = setting("AWS_ENDPOINT_URL_DYNAMODB")?;
    let upstream =
        tokio::net::lookup_host(dynamodb.trim_start_matches("http://").trim_end_matches('/'))
            .await
            .map_err(|e| format!("{dynamodb}: {e}"))?
            .next()
            .ok_or(format!("{dynamodb}: no address"))?;
    let front = tls_front(upstream, work).await?;
    let mut env = crate::cold_start::lambda_env();
    env.retain(|(name, _)| name != "TABLE_NAME");
    env.extend(
        [
            ("TABLE_NAME", setting("BENCH_TABLE")?),
            ("AWS_ENDPOINT_URL_DYNAMODB", front.url.clone()),
            ("TRUST_SYSTEM_ROOTS", "true".to_string()),
            ("SSL_CERT_FILE", front.ca_file.display().to_string()),
        ]
        .map(|(name, value)| (name.to_string(), value)),
    );
    let event = include_str!("../../events/presign.json");
    let binaries = [
        (hello, r#""found":false"#),
        (presign, r#""statusCode":401"#),
    ];
    let mut samples = [Vec::new(), Vec::new()];
    // Untimed rounds first: DynamoDB Local, a JVM started moments before, answers its first
    // requests several times slower than the rest (a whole run's median moved from 1.0× to
    // 3.05× with it), which would time the emulator's warm-up, not the functions.
    for round in 0..WARM_UP_ROUNDS + rounds {
        for (((name, binary), expected), times) in binaries.iter().zip(&mut samples) {
            let answer = time_to_answer(binary, &env, event).await?;
            if !answer.body.contains(expected) {
                return Err(format!("{name} answered {}", answer.body));
            }
            if round >= WARM_UP_ROUNDS {
                times.push(crate::stats::millis(answer.elapsed));
            }
        }
    }
    let [hello, presign] = samples.map(|times| crate::stats::median(&times));
    crate::row(
        &format!(
            "1c. first invocation `presign` (exec → its answer to one event making one DynamoDB call over TLS, median of {rounds})"
        ),
        format!("{presign:.1} ms"),
        format!("hello-world + plain SDK {hello:.1} ms"),
        format!("{:.2}×", presign / hello),
        "≤ 1.3×",
    );
    Ok(())
}
