//! Upstream keep-alive pool: idle connections by address, newest first, bounded in
//! age (`pool.idle_timeout`) and, once load falls, in count (`pool.max_idle` per
//! address). The bookkeeping
//! is `runtime_common`'s; the liveness check (a non-blocking peek) and the sweeper
//! task are smol's.

use crate::runtime::Smol;

/// Idle upstream connections, shared by every session of one [`Context`](crate::Context).
pub type Pool = runtime_common::pool::Pool<Smol>;
