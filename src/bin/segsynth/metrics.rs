//! `--metrics ADDR`: the run's Prometheus metrics (`segsynth::pipeline::metrics`) over
//! HTTP at `/metrics`, served by tiny_http on its own thread until the run stops.
//! Loopback unless `--metrics-allow-remote`: the metrics have no password.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use segsynth::endpoint::is_loopback;
use segsynth::pipeline::Progress;

/// `PORT` or `HOST:PORT` (IPv6 in brackets) -> the address to bind, checked against
/// the bind rule.
pub fn address(given: &str, allow_remote: bool) -> anyhow::Result<String> {
    let usage = |why: &str| {
        crate::options::usage(format!(
            "--metrics {given}: {why}; expected PORT or HOST:PORT (e.g. 9464 or 127.0.0.1:9464)"
        ))
    };
    let (host, port) = match given.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p),
        None => ("127.0.0.1".to_string(), given),
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| usage("the port is not a number from 1 to 65535"))?;
    if host.is_empty() {
        return Err(usage("the host is empty"));
    }
    if !is_loopback(&host) && !allow_remote {
        return Err(crate::options::usage(format!(
            "--metrics {given} would serve the metrics beyond this machine without a password; \
             add --metrics-allow-remote to do so, or give a loopback address"
        )));
    }
    Ok(format!("{host}:{port}"))
}

pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    pub fn start(address: &str, progress: Arc<Progress>) -> anyhow::Result<MetricsServer> {
        let server = tiny_http::Server::http(address)
            .map_err(|e| anyhow::anyhow!("cannot serve metrics on {address}: {e}"))?;
        let header = tiny_http::Header::from_bytes(
            "Content-Type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
        .map_err(|()| anyhow::anyhow!("cannot make the metrics content type header"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let ended = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                while !ended.load(Ordering::Relaxed) {
                    let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(100)) else {
                        continue;
                    };
                    let ok = request.method() == &tiny_http::Method::Get
                        && request.url().split('?').next() == Some("/metrics");
                    let response = if ok {
                        tiny_http::Response::from_string(progress.metrics.encode())
                            .with_header(header.clone())
                    } else {
                        tiny_http::Response::from_string("segsynth serves GET /metrics\n")
                            .with_status_code(404)
                    };
                    if let Err(e) = request.respond(response) {
                        tracing::debug!(error = %e, "metrics client went away");
                    }
                }
            })?;
        Ok(MetricsServer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::address;

    #[test]
    fn metrics_bind_loopback_unless_allowed() {
        assert_eq!(address("9464", false).unwrap(), "127.0.0.1:9464");
        assert_eq!(address("localhost:80", false).unwrap(), "localhost:80");
        assert_eq!(address("[::1]:9", false).unwrap(), "[::1]:9");
        let e = address("0.0.0.0:9464", false).unwrap_err().to_string();
        assert!(e.contains("--metrics-allow-remote"), "{e}");
        assert_eq!(address("0.0.0.0:9464", true).unwrap(), "0.0.0.0:9464");
        for bad in ["", "x", "127.0.0.1:0", ":80", "127.0.0.1:99999"] {
            assert!(address(bad, false).is_err(), "{bad}");
        }
    }
}
