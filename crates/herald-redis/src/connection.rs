//! One connection type for both shapes of Redis a node can be given: a single server (`--redis`,
//! or the primary Sentinel names) and a Redis Cluster (`--redis-cluster`).
//!
//! Every key Herald uses carries one hash tag (see [`crate::keys`]), so on a cluster all of them
//! live in one slot and every command, script and atomic pipeline still touches one shard. The
//! cluster client routes each command to the master serving that slot and follows `MOVED` (the
//! slot moved, or a replica was promoted) and `ASK` (the slot is being migrated) itself, so the
//! code above this module never knows which shape it talks to.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

#[derive(Clone)]
pub(crate) enum Connection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}
