//! Where connections live: their *home* runtime.
//!
//! redis-rs spawns the task that drives a multiplexed connection (and, for
//! a cluster, the task that routes and reconnects) on whatever runtime is
//! current when the connection opens, and the connection dies with that
//! runtime. Programs build short-lived runtimes all the time (a test binary
//! with several `#[tokio::test]`s, a CLI building one runtime per job), so
//! a connection must not depend on the runtime of the call that happened
//! to open it. Callers on any runtime, or on none, reach a connection
//! through channels; only its home must stay alive and be driven.
//!
//! - A call on a multi-thread runtime uses a connection that lives on that
//!   same runtime, since its workers drive it without a thread hop per
//!   command (the fast path of a server: a hop to another thread costs
//!   about 40% of a hit's throughput at one task, measured). A call never
//!   uses a connection living on *another* caller's runtime, which could
//!   shut down under it. A [`Watch`] notices when a runtime shuts down, so
//!   its connection is dropped from the link.
//! - A call on a current-thread runtime (driven only while its thread is
//!   inside `block_on`) uses a connection on forge-cache's own I/O runtime:
//!   one background thread that runs for the life of the process. (Sync
//!   calls use their own pool and need no runtime; async calls need a Tokio
//!   runtime with timers, and fail with an error outside one.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::runtime::{Handle, Id, RuntimeFlavor};
use tokio::sync::oneshot;

static IO: OnceLock<Option<Handle>> = OnceLock::new();

/// The I/O runtime's handle, starting its thread on first use; `None` if
/// the thread or its runtime could not start (resource exhaustion).
fn io_runtime() -> Option<&'static Handle> {
    IO.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let started = std::thread::Builder::new()
            .name("forge-cache-io".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match rt {
                    Ok(rt) => {
                        let _ = tx.send(Some(rt.handle().clone()));
                        // Runs for the life of the process: the thread parks
                        // here, driving connection tasks, timers and sockets.
                        rt.block_on(std::future::pending::<()>());
                    }
                    Err(_) => {
                        let _ = tx.send(None);
                    }
                }
            });
        started.ok().and_then(|_| rx.recv().ok().flatten())
    })
    .as_ref()
}

/// The runtime a new connection will live on.
pub(crate) struct Home {
    pub(crate) handle: Handle,
    /// The caller's runtime (which may shut down), or `None` for the I/O
    /// runtime.
    id: Option<Id>,
}

/// The home of a connection for a call made here, without its handle:
/// the current runtime's id when it is a multi-thread runtime, else `None`
/// (the I/O runtime). `Err` outside any Tokio runtime, where the async API
/// cannot run (its timers need one): an error, not a panic.
#[inline]
pub(crate) fn caller() -> Result<Option<Id>, NoRuntime> {
    let h = Handle::try_current().map_err(|_| NoRuntime)?;
    if matches!(h.runtime_flavor(), RuntimeFlavor::MultiThread) || io_runtime().is_none() {
        return Ok(Some(h.id()));
    }
    Ok(None)
}

/// An async call made outside any Tokio runtime.
pub(crate) struct NoRuntime;

/// The home for a connection opened now for a call made here; `None` only
/// when there is no runtime at all and the I/O runtime could not start.
pub(crate) fn home() -> Option<Home> {
    let current = Handle::try_current().ok();
    if let Some(h) = current.as_ref() {
        if matches!(h.runtime_flavor(), RuntimeFlavor::MultiThread) {
            let id = Some(h.id());
            return current.map(|handle| Home { handle, id });
        }
    }
    match io_runtime() {
        Some(h) => Some(Home {
            handle: h.clone(),
            id: None,
        }),
        None => current.map(|handle| Home {
            id: Some(handle.id()),
            handle,
        }),
    }
}

impl Home {
    /// Starts watching this home for the connection just opened on it.
    pub(crate) fn watch(&self) -> Watch {
        let alive = Arc::new(AtomicBool::new(true));
        if self.id.is_none() {
            return Watch {
                id: None,
                alive,
                _done: None,
            };
        }
        // A task that ends when the watch is dropped, or is dropped itself
        // (clearing `alive`) when its runtime shuts down.
        struct Clear(Arc<AtomicBool>);
        impl Drop for Clear {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let (done, until) = oneshot::channel::<()>();
        let clear = Clear(alive.clone());
        self.handle.spawn(async move {
            let _clear = clear;
            let _ = until.await;
        });
        Watch {
            id: self.id,
            alive,
            _done: Some(done),
        }
    }
}

/// Which runtime a connection lives on, and whether it still runs.
pub(crate) struct Watch {
    id: Option<Id>,
    alive: Arc<AtomicBool>,
    _done: Option<oneshot::Sender<()>>,
}

impl Watch {
    /// Whether a call whose [`caller`] home is `home` may use this
    /// connection.
    #[inline]
    pub(crate) fn serves(&self, home: Option<Id>) -> bool {
        self.id == home && self.alive()
    }

    /// Whether both connections live on the same runtime.
    pub(crate) fn same_home(&self, other: &Watch) -> bool {
        self.id == other.id
    }

    #[inline]
    pub(crate) fn alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }
}
