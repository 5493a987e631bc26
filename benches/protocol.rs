//! Criterion benches of the wire format: request encoding and parsing,
//! frame splitting over a pipelined stream, reply encoding and decoding,
//! and the benchmark's own batch generation (the client's per-request cost).
//!
//! `cargo bench --bench protocol` (add `-- --quick` for a short run). Keys
//! are 32 bytes and values 5, the shape of upstream's `-r` SET workload.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fkvs::bench::workload::{Command, Keys, Kind, Workload, WorkloadSpec};
use fkvs::protocol::reply::{push_value, Reply};
use fkvs::protocol::{split_frame, split_reply_frame, FrameSplit, Request};

const KEY: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
const VALUE: &[u8] = b"world";
/// Frames per pipelined batch in the stream benches.
const BATCH: usize = 128;

fn set_request() -> Request<'static> {
    Request::Set { key: KEY, value: VALUE, expiry_seconds: None }
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    let mut out = Vec::with_capacity(256);
    group.bench_function("set_32b_key", |b| {
        b.iter(|| {
            out.clear();
            black_box(set_request()).encode(&mut out).ok();
            black_box(out.len())
        })
    });
    group.bench_function("get_32b_key", |b| {
        b.iter(|| {
            out.clear();
            black_box(Request::Get { key: KEY }).encode(&mut out).ok();
            black_box(out.len())
        })
    });
    group.bench_function("reply_value_5b", |b| {
        b.iter(|| {
            out.clear();
            push_value(&mut out, black_box(VALUE));
            black_box(out.len())
        })
    });
    group.finish();
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    let mut set_frame = Vec::new();
    set_request().encode(&mut set_frame).ok();
    let mut get_frame = Vec::new();
    Request::Get { key: KEY }.encode(&mut get_frame).ok();
    group.bench_function("set_32b_key", |b| b.iter(|| Request::parse(black_box(&set_frame[2..])).is_ok()));
    group.bench_function("get_32b_key", |b| b.iter(|| Request::parse(black_box(&get_frame[2..])).is_ok()));
    let mut reply = Vec::new();
    push_value(&mut reply, VALUE);
    group.bench_function("reply_value_5b", |b| b.iter(|| Reply::decode(black_box(&reply[2..])).is_ok()));
    group.finish();
}

fn pipelined_streams(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Elements(BATCH as u64));
    let requests = set_frame_stream();
    group.bench_function("split_and_parse_128_sets", |b| {
        b.iter(|| {
            let mut rest = black_box(requests.as_slice());
            let mut parsed = 0;
            while let FrameSplit::Frame { core, frame_bytes } = split_frame(rest) {
                parsed += usize::from(Request::parse(core).is_ok());
                rest = &rest[frame_bytes..];
            }
            parsed
        })
    });
    let mut replies = Vec::new();
    for _ in 0..BATCH {
        push_value(&mut replies, VALUE);
    }
    group.bench_function("split_and_decode_128_replies", |b| {
        b.iter(|| {
            let mut rest = black_box(replies.as_slice());
            let mut decoded = 0;
            while let FrameSplit::Frame { core, frame_bytes } = split_reply_frame(rest) {
                decoded += usize::from(Reply::decode(core).is_ok());
                rest = &rest[frame_bytes..];
            }
            decoded
        })
    });
    group.finish();
}

fn set_frame_stream() -> Vec<u8> {
    let mut stream = Vec::new();
    for _ in 0..BATCH {
        set_request().encode(&mut stream).ok();
    }
    stream
}

/// What `fkvs-benchmark` spends writing one pipelined batch.
fn batch_generation(c: &mut Criterion) {
    let mut group = c.benchmark_group("bench_batch");
    group.throughput(Throughput::Elements(BATCH as u64));
    let cases = [
        ("fixed_set", Kind::Single(Command::Set), Keys::Fixed),
        ("unique_set", Kind::Single(Command::Set), Keys::Unique),
        (
            "keyspace_get_uniform",
            Kind::Single(Command::Get),
            Keys::Space { keys: 1_000_000, distribution: fkvs::bench::workload::Distribution::Uniform },
        ),
        (
            "keyspace_get_zipf",
            Kind::Single(Command::Get),
            Keys::Space { keys: 1_000_000, distribution: fkvs::bench::workload::Distribution::Zipf { theta: 0.99 } },
        ),
    ];
    for (name, kind, keys) in cases {
        let Ok(workload) = Workload::new(WorkloadSpec { kind, keys, data_bytes: None, seed: 1 }) else { continue };
        let mut generator = workload.generator(0, 0);
        let mut out = Vec::with_capacity(BATCH * workload.frame_bytes_max());
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                generator.push_batch(&mut out, BATCH);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode, parse, pipelined_streams, batch_generation);
criterion_main!(benches);
