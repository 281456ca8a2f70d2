//! What a run counts: deliveries, duplicates, latency, and the server's memory and CPU.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use hdrhistogram::Histogram;

/// Delivery counters shared by all streams. Streams add once per read, not once per event.
pub struct Deliveries {
    delivered: AtomicU64,
    duplicates: AtomicU64,
    last_us: AtomicU64,
    /// Per-sequence delivery counts, a ring indexed by `seq % len`: closed-loop publishers wait
    /// on it until an event has reached every stream.
    per_seq: Box<[AtomicU32]>,
}

pub const SEQ_RING: usize = 1 << 16;

impl Default for Deliveries {
    fn default() -> Self {
        Self {
            delivered: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            last_us: AtomicU64::new(0),
            per_seq: (0..SEQ_RING).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

impl Deliveries {
    pub fn add(&self, delivered: u64, duplicates: u64, now_us: u64) {
        self.delivered.fetch_add(delivered, Ordering::Relaxed);
        if duplicates > 0 {
            self.duplicates.fetch_add(duplicates, Ordering::Relaxed);
        }
        self.last_us.fetch_max(now_us, Ordering::Relaxed);
    }

    pub fn delivered_seq(&self, seq: u64) {
        self.per_seq[seq as usize % SEQ_RING].fetch_add(1, Ordering::Relaxed);
    }

    pub fn seq_count(&self, seq: u64) -> u32 {
        self.per_seq[seq as usize % SEQ_RING].load(Ordering::Relaxed)
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    pub fn last_delivery_us(&self) -> u64 {
        self.last_us.load(Ordering::Relaxed)
    }
}

/// Latency histograms sharded by stream so readers on different threads rarely contend.
pub struct LatencyShards {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Default for LatencyShards {
    fn default() -> Self {
        Self {
            shards: (0..32).map(|_| Mutex::new(new_histogram())).collect(),
        }
    }
}

pub fn new_histogram() -> Histogram<u64> {
    // Microseconds, up to an hour, three significant figures.
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).expect("3 sigfig is valid"))
}

pub struct Shard<'a>(MutexGuard<'a, Histogram<u64>>);

impl Shard<'_> {
    pub fn record(&mut self, micros: u64) {
        self.0.saturating_record(micros.max(1));
    }
}

impl LatencyShards {
    pub fn shard(&self, index: usize) -> Shard<'_> {
        let shard = &self.shards[index % self.shards.len()];
        Shard(
            shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    pub fn merged(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for shard in &self.shards {
            let shard = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let _ = all.add(&*shard);
        }
        all
    }
}

/// Resident memory and CPU time of a process, from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessSample {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

impl ProcessSample {
    /// One process: its resident set. Several: the sum of their proportional set sizes (a page
    /// shared by n of them counts 1/n in each), so memory they share is not counted twice; and
    /// the sum of their CPU time. `None` if there is no process or one cannot be read.
    pub fn read_all(pids: &[u32]) -> Option<ProcessSample> {
        match pids {
            [] => None,
            [pid] => Self::read(*pid, "status", "VmRSS:"),
            pids => pids.iter().try_fold(ProcessSample::default(), |sum, pid| {
                let one = Self::read(*pid, "smaps_rollup", "Pss:")?;
                Some(ProcessSample {
                    rss_bytes: sum.rss_bytes + one.rss_bytes,
                    cpu_seconds: sum.cpu_seconds + one.cpu_seconds,
                })
            }),
        }
    }

    /// Memory from the `memory_field` line (in KiB) of `/proc/<pid>/<memory_file>`, and CPU time.
    fn read(pid: u32, memory_file: &str, memory_field: &str) -> Option<ProcessSample> {
        let memory = std::fs::read_to_string(format!("/proc/{pid}/{memory_file}")).ok()?;
        let rss_kib: u64 = memory
            .lines()
            .find_map(|l| l.strip_prefix(memory_field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let after_name = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Some(ProcessSample {
            rss_bytes: rss_kib * 1024,
            cpu_seconds: ticks as f64 / per_second,
        })
    }
}

/// The CPU a process used between two samples, as a percentage of one core.
pub fn cpu_percent(before: ProcessSample, after: ProcessSample, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    (after.cpu_seconds - before.cpu_seconds) / seconds * 100.0
}

#[cfg(test)]
mod tests {
    use super::ProcessSample;

    #[test]
    fn several_processes_are_summed_and_none_is_nothing() {
        let me = std::process::id();
        assert!(ProcessSample::read_all(&[]).is_none());
        let one = ProcessSample::read_all(&[me]).expect("this process's VmRSS");
        assert!(one.rss_bytes > 0);
        // The same process twice is read from smaps_rollup (Pss), summed; a process that does
        // not exist makes the whole sample fail.
        let twice = ProcessSample::read_all(&[me, me]).expect("this process's Pss");
        assert!(
            twice.rss_bytes > one.rss_bytes / 2,
            "{twice:?} against {one:?}"
        );
        assert!(twice.cpu_seconds >= 2.0 * one.cpu_seconds);
        assert!(ProcessSample::read_all(&[me, u32::MAX]).is_none());
    }
}
