//! `bftembed serve`: an OpenAI-compatible HTTP server over the local models, so that
//! one machine can write profiles and embeddings for others.
//!
//! Endpoints: `GET /v1/models`, `POST /v1/chat/completions` (no streaming) and
//! `POST /v1/embeddings`. Errors use OpenAI's `{"error": {...}}` shape.

mod batcher;
mod handlers;
#[cfg(test)]
mod tests;

pub use batcher::{CheckedPrompt, GenerationQueue};

use crate::embed::SentenceEmbedder;
use crate::error::{Error, Result};
use crate::profile::Generator;
use batcher::Engine;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    state: Arc<handlers::State>,
    stopping: Arc<AtomicBool>,
}

impl RunningServer {
    /// The address it listens on (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks until the server stops; an error when it stopped because the generation
    /// thread died (see [`start`]).
    pub fn wait(mut self) -> Result<()> {
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        match self.state.queue.as_ref().and_then(|q| q.failure()) {
            Some(why) => Err(Error::Unavailable(format!(
                "{why}; the server has stopped serving (start it again)"
            ))),
            None => Ok(()),
        }
    }

    /// Stops accepting requests and waits for the workers.
    pub fn stop(mut self) {
        release(&self.server, &self.stopping, self.workers.len());
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        release(&self.server, &self.stopping, self.workers.len());
    }
}

/// Tells the request threads to finish: each `unblock` releases one thread from
/// `recv`, after the requests already queued.
fn release(server: &tiny_http::Server, stopping: &AtomicBool, threads: usize) {
    stopping.store(true, Ordering::SeqCst);
    for _ in 0..threads {
        server.unblock();
    }
}

/// Starts serving on `addr` (such as `127.0.0.1:8000`, or port 0 for any free port)
/// with `threads` request threads.
///
/// If the generation thread dies (a panic), the server stops: the model leaves
/// `/v1/models`, chat requests get 503, the request threads finish and
/// [`RunningServer::wait`] returns the reason, so that `bftembed serve` exits non-zero
/// with it. It is not restarted in place: the generator moved into that thread is lost
/// with it, a panic means a bug whose state is unknown, and the same request would
/// likely kill a new thread again; a process supervisor that restarts on a non-zero
/// exit reloads the model cleanly, and a server that looks healthy while it cannot
/// answer is worse than one that is visibly down.
pub fn start(models: ServeModels, addr: &str, threads: usize) -> Result<RunningServer> {
    let chat = models.generator.map(|g| {
        let id = g.model_id().to_string();
        (id, Arc::new(g) as Arc<dyn Engine>)
    });
    start_with(chat, models.embedder, models.max_batch, addr, threads)
}

/// [`start`] with any generation engine (the unit tests use a scripted one).
fn start_with(
    chat: Option<(String, Arc<dyn Engine>)>,
    embedder: Option<SentenceEmbedder>,
    max_batch: usize,
    addr: &str,
    threads: usize,
) -> Result<RunningServer> {
    if chat.is_none() && embedder.is_none() {
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
    let threads = threads.max(1);
    let stopping = Arc::new(AtomicBool::new(false));
    let (generator_id, queue) = match chat {
        Some((id, engine)) => {
            let on_death = stop_on_death(&server, &stopping, threads);
            let queue = GenerationQueue::start_engine(engine, max_batch, on_death)?;
            (Some(id), Some(queue))
        }
        None => (None, None),
    };
    let state = Arc::new(handlers::State {
        generator_id,
        queue,
        embedder,
        completions: AtomicU64::new(0),
    });
    let workers = (0..threads)
        .map(|_| {
            let (server, state, stopping) = (server.clone(), state.clone(), stopping.clone());
            std::thread::spawn(move || serve_requests(&server, &state, &stopping))
        })
        .collect();
    Ok(RunningServer {
        server,
        addr,
        workers,
        state,
        stopping,
    })
}

/// One request thread: answers requests until the server stops.
fn serve_requests(server: &tiny_http::Server, state: &handlers::State, stopping: &AtomicBool) {
    loop {
        match server.recv() {
            Ok(request) => handlers::handle(state, request),
            Err(_) if stopping.load(Ordering::SeqCst) => break,
            // A failed accept (too many open files, a reset connection) must not cost
            // the server a thread; the pause keeps a persistent failure from spinning.
            Err(e) => {
                eprintln!("warning: serve: {e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

/// What the server does when its generation thread dies: say so loudly and stop (see
/// [`start`] for why it does not restart the thread).
fn stop_on_death(
    server: &Arc<tiny_http::Server>,
    stopping: &Arc<AtomicBool>,
    threads: usize,
) -> impl FnOnce(&str) + Send + 'static {
    // Weak, so that the watcher does not keep a stopped server's socket open.
    let server = Arc::downgrade(server);
    let stopping = stopping.clone();
    move |why| {
        eprintln!("error: {why}; bftembed serve is stopping");
        if let Some(server) = server.upgrade() {
            release(&server, &stopping, threads);
        }
    }
}
