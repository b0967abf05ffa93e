//! Micro-benchmarks of the ring kernels at N = 2^16: NTT, basis conversion, division by a
//! sub-basis. `cargo bench -p hetal-ring`.

#![allow(clippy::unwrap_used, missing_docs, reason = "benchmark harness")]

use criterion::{criterion_group, criterion_main, Criterion};
use hetal_ring::{
    primes, sampling, BasisConverter, DivideAndRound, Modulus, NttOrder, Prime, RnsPoly,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn ring_kernels(c: &mut Criterion) {
    let n = 1 << 16;
    let order = NttOrder::new(n).unwrap();
    let q: Vec<Prime> = primes::primes_below(40, n, 25, &[])
        .unwrap()
        .into_iter()
        .map(|v| Prime::new(v, &order).unwrap())
        .collect();
    let avoid: Vec<u64> = q.iter().map(Prime::value).collect();
    let p: Vec<Prime> = primes::primes_below(50, n, 8, &avoid)
        .unwrap()
        .into_iter()
        .map(|v| Prime::new(v, &order).unwrap())
        .collect();
    let qm: Vec<Modulus> = q.iter().map(|x| *x.modulus()).collect();
    let pm: Vec<Modulus> = p.iter().map(|x| *x.modulus()).collect();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut a = sampling::uniform(&mut rng, n, &q[..1]);
    c.bench_function("ring/ntt_fwd_inv/n16", |b| {
        b.iter(|| {
            q[0].forward(a.limb_mut(0));
            q[0].inverse(a.limb_mut(0));
        })
    });
    let xp = sampling::uniform(&mut rng, n, &p);
    let conv = BasisConverter::new(&pm, &qm).unwrap();
    let mut out = RnsPoly::zero(n, 25);
    c.bench_function("ring/convert_8_to_25/n16", |b| {
        b.iter(|| conv.convert(xp.data(), &mut out))
    });
    let dr = DivideAndRound::new(&qm, &pm).unwrap();
    let xq = sampling::uniform(&mut rng, n, &q);
    c.bench_function("ring/mod_down_8_to_25/n16", |b| {
        b.iter(|| {
            let mut x = xq.clone();
            dr.apply_ntt(&mut x, &xp, &q);
            x
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = ring_kernels
}
criterion_main!(benches);
