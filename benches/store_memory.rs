//! Resident memory per key: 16-byte keys with 16-byte values, 1 000 000 and
//! 10 000 000 of them. Each size runs in a fresh child process, which reads
//! its resident set size (`/proc/self/statm`) before creating the store and
//! after filling it, once growth has finished draining and the drained
//! tables are given back (what the expiry ticks do within a second), and
//! prints the growth per key next to `Store::memory_bytes`. The same for
//! `hashbrown::HashMap<Box<[u8]>, Box<[u8]>>` for comparison, and for the
//! store with a deadline on every key (8 more bytes per entry).
//!
//! ```text
//! cargo bench --bench store_memory
//! ```

mod common;
use common::sixteen_bytes;
use std::process::Command;

use fkvs::store::Store;
use hashbrown::HashMap;

const KEY_COUNTS: [usize; 2] = [1_000_000, 10_000_000];
const SUBJECTS: [&str; 3] = ["fkvs", "fkvs-with-deadlines", "hashbrown"];

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|pages| pages.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page_bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    pages * page_bytes
}

/// Fills one subject with `key_count` keys and prints its figures.
fn child(subject: &str, key_count: usize) {
    let before = resident_bytes();
    if subject == "hashbrown" {
        let mut map: HashMap<Box<[u8]>, Box<[u8]>> = HashMap::new();
        for i in 0..key_count {
            map.insert(Box::from(&sixteen_bytes(b"key:", i)[..]), Box::from(&sixteen_bytes(b"val-", i)[..]));
        }
        report(subject, key_count, resident_bytes() - before, None);
        std::hint::black_box(&map);
        return;
    }
    let deadline = (subject == "fkvs-with-deadlines").then_some(u64::MAX);
    let mut store = Store::new();
    for i in 0..key_count {
        store.set(&sixteen_bytes(b"key:", i), &sixteen_bytes(b"val-", i), false, deadline);
    }
    // Background ticks: finish draining, then give back retired tables.
    let mut memory_bytes = usize::MAX;
    while store.shape().draining || store.memory_bytes() != memory_bytes {
        memory_bytes = store.memory_bytes();
        store.expire_cycle(0, 20_000);
    }
    report(subject, key_count, resident_bytes() - before, Some(store.memory_bytes()));
    std::hint::black_box(&store);
}

fn report(subject: &str, key_count: usize, resident_growth: usize, memory_bytes: Option<usize>) {
    let per_key = |bytes: usize| bytes as f64 / key_count as f64;
    let accounted =
        memory_bytes.map(|bytes| format!(", memory_bytes {bytes} ({:.1} B/key)", per_key(bytes))).unwrap_or_default();
    println!(
        "{subject:>20} {key_count:>9} keys: resident +{resident_growth} bytes = {:.1} B/key{accounted}",
        per_key(resident_growth)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
    if let [subject, key_count] = args.as_slice() {
        if let Ok(key_count) = key_count.parse() {
            return child(subject, key_count);
        }
    }
    let Ok(program) = std::env::current_exe() else {
        eprintln!("cannot find this benchmark's executable");
        return;
    };
    for key_count in KEY_COUNTS {
        for subject in SUBJECTS {
            match Command::new(&program).arg(subject).arg(key_count.to_string()).status() {
                Ok(status) if status.success() => {}
                outcome => eprintln!("{subject} with {key_count} keys failed: {outcome:?}"),
            }
        }
    }
}
