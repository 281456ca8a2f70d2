//! The subcommands. `serve` is the hub; the others are small clients of it.

pub mod publish;
pub mod serve;
pub mod subscribe;
pub mod token;
pub mod typegen;
