//! HTTP handlers, one file per endpoint group.

pub mod console;
pub mod events;
pub mod ops;
pub mod presence;
pub mod publish;
