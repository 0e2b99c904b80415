//! `--metrics HOST:PORT` for the examples that have it (`secure_chat`, `echo`): the Prometheus
//! recorder and its `/metrics` page, on an address of their own. Included with `#[path]`.

use std::net::SocketAddr;

/// Installs the Prometheus recorder (before the sockets start: a socket registers its metrics
/// when it starts), runs its upkeep every 5 s (the recorder keeps a histogram's values until
/// they are summarised; without a scrape that does it, this does, so that memory stays
/// bounded), and serves its text at `http://ADDR/metrics` until the process stops. Returns the
/// address bound.
///
/// `http://ADDR/runtime` shows the tokio runtime's own figures in the same text format: the
/// tasks alive (a leak check: the benchmark harness's soak compares them before and after
/// its run) and the worker threads. They are not in `/metrics`, whose every sample is one of
/// the socket's, labelled with its name.
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
    let runtime = warp::path("runtime").and(warp::path::end()).map(|| {
        let figures = tokio::runtime::Handle::current().metrics();
        format!(
            "# HELP tokio_alive_tasks Tasks spawned and not yet finished.\n\
             # TYPE tokio_alive_tasks gauge\ntokio_alive_tasks {}\n\
             # HELP tokio_workers Worker threads of the runtime.\n\
             # TYPE tokio_workers gauge\ntokio_workers {}\n",
            figures.num_alive_tasks(),
            figures.num_workers()
        )
    });
    let server = ws::serve(scrape.or(runtime))
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
