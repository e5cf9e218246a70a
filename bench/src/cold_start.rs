//! Cold start: from exec to the first `GET …/runtime/invocation/next` the function sends to a
//! local stand-in of the Lambda Runtime API, for each release binary and a hello-world one.

use std::io::{ErrorKind, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What Lambda and template.yaml give the functions (with stand-ins for the resources), less
/// `AWS_LAMBDA_RUNTIME_API`: each function reads only the settings of what it reaches, and the
/// template gives each only those (`scripts/check-iam` holds it to that).
pub fn lambda_env() -> Vec<(String, String)> {
    [
        ("PATH", std::env::var("PATH").unwrap_or_default().as_str()),
        ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "bench"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("TABLE_NAME", "bench"),
        ("BUCKET_NAME", "bench"),
        ("EVENT_BUS_NAME", "bench"),
        ("WEBHOOK_QUEUE_URL", "http://127.0.0.1:9/queue/bench"),
        ("VERIFY_QUEUE_URL", "http://127.0.0.1:9/queue/verify"),
        // As template.yaml gives the functions that hand out URLs.
        (
            "URL_SIGNING_ROLE_ARN",
            "arn:aws:iam::123456789012:role/bench-url-signing",
        ),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect()
}

/// Time from spawning `binary` until it asks the runtime API for its first event.
pub fn time_to_first_poll(binary: &Path, listener: &TcpListener) -> Result<Duration, String> {
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .envs(lambda_env())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let result = loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let mut buffer = [0u8; 512];
                let read = stream.read(&mut buffer).unwrap_or(0);
                let elapsed = started.elapsed();
                let request = String::from_utf8_lossy(&buffer[..read]);
                break if request.starts_with("GET /2018-06-01/runtime/invocation/next") {
                    Ok(elapsed)
                } else {
                    Err(format!("unexpected first request: {request}"))
                };
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if let Ok(Some(status)) = child.try_wait() {
                    break Err(format!(
                        "{} exited with {status} before polling",
                        binary.display()
                    ));
                }
                if started.elapsed() > Duration::from_secs(10) {
                    break Err(format!("{} did not poll within 10 s", binary.display()));
                }
                std::thread::sleep(Duration::from_micros(20));
            }
            Err(e) => break Err(e.to_string()),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Medians over `rounds` interleaved rounds, so that drift affects every binary alike.
pub fn measure(binaries: &[(&str, &Path)], rounds: usize) -> Result<Vec<(String, f64)>, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); binaries.len()];
    for _ in 0..rounds {
        for (index, (_, binary)) in binaries.iter().enumerate() {
            samples[index].push(crate::stats::millis(time_to_first_poll(binary, &listener)?));
        }
    }
    Ok(binaries
        .iter()
        .zip(samples)
        .map(|((name, _), times)| (name.to_string(), crate::stats::median(&times)))
        .collect())
}
