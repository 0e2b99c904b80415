//! `--metrics HOST:PORT` for the examples that have it (`secure_chat`, `echo`): the Prometheus
//! recorder and its `/metrics` page, on an address of their own. Included with `#[path]`.

use std::net::SocketAddr;

/// Installs the Prometheus recorder (before the sockets start: a socket registers its metrics
/// when it starts), runs its upkeep every 5 s (the recorder keeps a histogram's values until
/// they are summarised; without a scrape that does it, this does, so that memory stays
/// bounded), and serves its text at `http://ADDR/metrics` until the process stops. Returns the
/// address bound.
#[cfg(feature = "metrics")]
pub(crate) async fn serve(addr: &str, _example: &str) -> Result<SocketAddr, String> {
    use warp::Filter;

    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|err| format!("--metrics: {err}"))?;
    let upkeep = prometheus.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let scrape = warp::path("metrics")
        .and(warp::path::end())
        .map(move || prometheus.render());
    let server = ws::serve(scrape)
        .bind(addr)
        .await
        .map_err(|err| format!("--metrics {addr}: {err}"))?;
    let at = server.local_addr();
    tokio::spawn(server.run());
    Ok(at)
}

/// Without the feature: says how to build `example` with it.
#[cfg(not(feature = "metrics"))]
#[allow(clippy::unused_async, reason = "async like the one with the feature")]
pub(crate) async fn serve(_addr: &str, example: &str) -> Result<SocketAddr, String> {
    Err(format!(
        "--metrics needs the feature `metrics`: \
         cargo run --release --example {example} --features metrics -- --metrics 127.0.0.1:9090"
    ))
}
