//! STUB — being written.
use crate::{ClientInfo, Config, Input, Output, Side};
use std::sync::Arc;
use std::time::Instant;

/// One client connection.
pub struct Session {
    _config: Arc<Config>,
}

impl Session {
    /// New session for an accepted client connection.
    pub fn new(config: Arc<Config>, _client: ClientInfo, _now: Instant) -> Session {
        Session { _config: config }
    }
    /// Feed one input.
    pub fn handle_input(&mut self, _now: Instant, _input: Input) {}
    /// Deadline passed.
    pub fn handle_timeout(&mut self, _now: Instant) {}
    /// Next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        None
    }
    /// Next deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    /// Flow control.
    pub fn wants_read(&self, _side: Side) -> bool {
        true
    }
    /// Over.
    pub fn is_closed(&self) -> bool {
        false
    }
}
