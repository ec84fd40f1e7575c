//! Verifying an inbound `x-signature` (hex HMAC-SHA256 of the raw body) as
//! ingress does, for the shared harness's 1 KB and 16 KB events (copied into
//! benches/), with one secret and with two (a rotation: both are always
//! tried, so timing does not tell which matched). `cargo bench --bench verify`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hookgate::config::{SigningKey, VerifyConfig, VerifyScheme};
use hookgate::signing::sign_hex;
use hookgate::verify::{OUTRIVAL_HEADER, verify};

const BODIES: [(&str, &[u8]); 2] = [
    ("1k", include_bytes!("event-1k.json")),
    ("16k", include_bytes!("event-16k.json")),
];
const SECRET: &str = "bench-secret-0123456789abcdef";

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify_outrival");
    for (name, body) in BODIES {
        let mut headers = http::HeaderMap::new();
        let signature = sign_hex(SECRET.as_bytes(), body);
        match http::HeaderValue::from_str(&signature) {
            Ok(v) => drop(headers.insert(OUTRIVAL_HEADER, v)),
            Err(e) => panic!("header: {e}"),
        }
        group.throughput(Throughput::Bytes(body.len() as u64));
        for secrets in [vec![SECRET], vec!["an-older-secret-0123456789", SECRET]] {
            let config = VerifyConfig {
                scheme: VerifyScheme::Outrival,
                secrets: secrets
                    .iter()
                    .map(|s| SigningKey::new(s.as_bytes()))
                    .collect(),
            };
            let id = BenchmarkId::new(format!("{}_secrets", secrets.len()), name);
            group.bench_with_input(id, body, |b, body| {
                b.iter(|| verify(&config, &headers, black_box(body), 0))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
