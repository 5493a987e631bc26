//! Worst single-insert latency while a store grows to 10 000 000 keys: every
//! SET of a new 16-byte key (16-byte value) is timed on its own, and the
//! run prints the maximum and the tail percentiles, and lists every insert
//! slower than 200 µs with the state of the table right after it.
//! The same for `hashbrown::HashMap<Box<[u8]>, Box<[u8]>>`, whose
//! all-at-once resize shows what incremental growth avoids.
//!
//! ```text
//! taskset -c 1 cargo bench --bench store_growth            # 10M keys, both
//! taskset -c 1 cargo bench --bench store_growth -- 1000000 fkvs
//! ```
//!
//! Involuntary context switches during the run are printed too: on a shared
//! machine a preemption shows up as a multi-millisecond "insert", and says
//! nothing about the table.

mod common;
use common::sixteen_bytes;
use std::time::Instant;

use fkvs::store::Store;
use hashbrown::HashMap;

const KEY_COUNT_DEFAULT: usize = 10_000_000;

fn involuntary_context_switches() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("nonvoluntary_ctxt_switches:"))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

/// Times `insert(i)` for each i in 0..key_count and prints a summary;
/// `describe` says what state the table was in after a slow insert.
fn measure(name: &str, key_count: usize, mut insert: impl FnMut(&[u8; 16], &[u8; 16]), describe: impl Fn() -> String) {
    let mut latencies_ns: Vec<u32> = Vec::with_capacity(key_count);
    let mut slow_inserts: Vec<String> = Vec::with_capacity(1_000);
    let switches_before = involuntary_context_switches();
    let started = Instant::now();
    for i in 0..key_count {
        let (key, value) = (sixteen_bytes(b"key:", i), sixteen_bytes(b"val-", i));
        let op_started = Instant::now();
        insert(&key, &value);
        let latency_ns = op_started.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32;
        latencies_ns.push(latency_ns);
        if latency_ns > SLOW_INSERT_NS && slow_inserts.len() < slow_inserts.capacity() {
            slow_inserts.push(format!("#{i}: {latency_ns} ns, {}", describe()));
        }
    }
    let total = started.elapsed();
    let switches = involuntary_context_switches() - switches_before;

    let mut sorted = latencies_ns;
    sorted.sort_unstable();
    let percentile = |p: f64| sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)];
    let over = |ns: u32| sorted.len() - sorted.partition_point(|&latency| latency <= ns);
    println!(
        "{name:>9}: {key_count} inserts in {:.2} s ({:.0} ns/insert incl. timing) | p50 {} ns, p99 {} ns, \
         p99.9 {} ns, p99.99 {} ns, max {} ns | >100 µs: {}, >1 ms: {} | involuntary context switches: {switches}",
        total.as_secs_f64(),
        total.as_nanos() as f64 / key_count as f64,
        percentile(0.50),
        percentile(0.99),
        percentile(0.999),
        percentile(0.9999),
        sorted[sorted.len() - 1],
        over(100_000),
        over(1_000_000),
    );
    for slow in &slow_inserts {
        println!("{name:>9}: over {} µs: {slow}", SLOW_INSERT_NS / 1_000);
    }
}

/// Inserts slower than this are listed with the table's state.
const SLOW_INSERT_NS: u32 = 200_000;

fn main() {
    // `cargo bench` passes `--bench`; the other arguments are ours.
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
    let key_count = args.first().and_then(|count| count.parse().ok()).unwrap_or(KEY_COUNT_DEFAULT);
    let only = args.get(1).map(String::as_str);

    if only.is_none_or(|name| name == "fkvs") {
        let store = std::cell::RefCell::new(Store::new());
        measure(
            "fkvs",
            key_count,
            |key, value| store.borrow_mut().set(key, value, false, None),
            || format!("{:?}", store.borrow().shape()),
        );
        println!("     fkvs: final table {:?}", store.borrow().shape());
    }
    if only.is_none_or(|name| name == "hashbrown") {
        let map = std::cell::RefCell::new(HashMap::<Box<[u8]>, Box<[u8]>>::new());
        measure(
            "hashbrown",
            key_count,
            |key, value| {
                map.borrow_mut().insert(Box::from(&key[..]), Box::from(&value[..]));
            },
            || format!("capacity {}", map.borrow().capacity()),
        );
    }
}
