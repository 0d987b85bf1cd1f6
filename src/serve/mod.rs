//! `bftembed serve`: an OpenAI-compatible HTTP server over the local models, so that
//! one machine can write profiles and embeddings for others.
//!
//! Endpoints: `GET /v1/models`, `POST /v1/chat/completions` (no streaming) and
//! `POST /v1/embeddings`. Errors use OpenAI's `{"error": {...}}` shape.

mod batcher;
mod handlers;

pub use batcher::GenerationQueue;

use crate::embed::SentenceEmbedder;
use crate::error::{Error, Result};
use crate::profile::Generator;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the server serves.
pub struct ServeModels {
    /// The chat model, if any.
    pub generator: Option<Generator>,
    /// The embedding model, if any.
    pub embedder: Option<SentenceEmbedder>,
    /// Most prompts generated together.
    pub max_batch: usize,
}

/// A running server; dropping it (or [`RunningServer::stop`]) stops it.
pub struct RunningServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl RunningServer {
    /// The address it listens on (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks until the server stops.
    pub fn wait(mut self) {
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }

    /// Stops accepting requests and waits for the workers.
    pub fn stop(mut self) {
        // Each call releases one thread waiting in recv().
        for _ in 0..self.workers.len() {
            self.server.unblock();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        for _ in 0..self.workers.len() {
            self.server.unblock();
        }
    }
}

/// Starts serving on `addr` (such as `127.0.0.1:8000`, or port 0 for any free port)
/// with `threads` request threads.
pub fn start(models: ServeModels, addr: &str, threads: usize) -> Result<RunningServer> {
    if models.generator.is_none() && models.embedder.is_none() {
        return Err(Error::InvalidArgument(
            "nothing to serve: no model given".into(),
        ));
    }
    let server = tiny_http::Server::http(addr)
        .map_err(|e| Error::InvalidArgument(format!("cannot listen on {addr}: {e}")))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| Error::InvalidArgument(format!("{addr} is not an IP address")))?;
    let server = Arc::new(server);
    let state = Arc::new(handlers::State {
        generator_id: models.generator.as_ref().map(|g| g.model_id().to_string()),
        queue: models
            .generator
            .map(|g| GenerationQueue::start(g, models.max_batch)),
        embedder: models.embedder,
    });
    let workers = (0..threads.max(1))
        .map(|_| {
            let server = server.clone();
            let state = state.clone();
            std::thread::spawn(move || {
                while let Ok(request) = server.recv() {
                    handlers::handle(&state, request);
                }
            })
        })
        .collect();
    Ok(RunningServer {
        server,
        addr,
        workers,
    })
}
