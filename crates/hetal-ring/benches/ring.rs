//! Micro-benchmarks of the ring kernels at N = 2^16: NTT, basis conversion, division by a
//! sub-basis. `cargo bench -p hetal-ring`.

#![allow(clippy::unwrap_used, missing_docs, reason = "benchmark harness")]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use hetal_ring::{
    kernels, primes, sampling, BasisConverter, DivideAndRound, Modulus, NttOrder, Prime, RnsPoly,
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
    // The input's copy is set up outside the timed part.
    c.bench_function("ring/mod_down_8_to_25/n16", |b| {
        b.iter_batched_ref(
            || {
                let mut x = xq.clone();
                x.extend_from(&xp);
                x
            },
            |x| dr.apply_ntt(x, &q, &p.iter().collect::<Vec<_>>()),
            BatchSize::LargeInput,
        )
    });

    // The primes of bootstrapping's levels (58 bits) and of a special modulus of 60-bit
    // primes, as in `n16-boot`: a digit of 7 limbs extended to 21 + 7 (ModUp), and the
    // special part divided out of 28 limbs (ModDown).
    let wide = |bits, count, avoid: &[u64]| -> Vec<Prime> {
        primes::primes_below(bits, n, count, avoid)
            .unwrap()
            .into_iter()
            .map(|v| Prime::new(v, &order).unwrap())
            .collect()
    };
    let qw = wide(58, 28, &[]);
    let avoid: Vec<u64> = qw.iter().map(Prime::value).collect();
    let pw = wide(60, 7, &avoid);
    let qwm: Vec<Modulus> = qw.iter().map(|x| *x.modulus()).collect();
    let pwm: Vec<Modulus> = pw.iter().map(|x| *x.modulus()).collect();
    let targets: Vec<Modulus> = qwm[7..].iter().chain(&pwm).copied().collect();
    let conv = BasisConverter::new(&qwm[..7], &targets).unwrap();
    let digit = sampling::uniform(&mut rng, n, &qw[..7]);
    let mut out = RnsPoly::zero(n, targets.len());
    c.bench_function("ring/convert_wide_7_to_28/n16", |b| {
        b.iter(|| conv.convert(digit.data(), &mut out))
    });
    let dr = DivideAndRound::new(&qwm, &pwm).unwrap();
    let xq = sampling::uniform(&mut rng, n, &qw);
    let xp = sampling::uniform(&mut rng, n, &pw);
    c.bench_function("ring/mod_down_wide_7_to_28/n16", |b| {
        b.iter_batched_ref(
            || {
                let mut x = xq.clone();
                x.extend_from(&xp);
                x
            },
            |x| dr.apply_ntt(x, &qw, &pw.iter().collect::<Vec<_>>()),
            BatchSize::LargeInput,
        )
    });

    // A rotation's output permutation: 25 limbs, more than the caches hold.
    let auto = hetal_ring::Automorphism::new(5, &order).unwrap();
    let ga = sampling::uniform(&mut rng, n, &q);
    let mut gout = RnsPoly::zero(n, 25);
    c.bench_function("ring/galois_25/n16", |b| {
        b.iter(|| auto.apply_ntt(&ga, &mut gout))
    });
    // One limb that the caches hold, as in a key switch's last step.
    let mut limb = vec![0u64; n];
    c.bench_function("ring/galois_limb_hot/n16", |b| {
        b.iter(|| auto.permute_limb(ga.limb(0), &mut limb))
    });
    let (ga1, mut gout1) = (ga.sub_limbs(0..1), RnsPoly::zero(n, 1));
    c.bench_function("ring/galois_limb_hot_staged/n16", |b| {
        b.iter(|| auto.apply_ntt(&ga1, &mut gout1))
    });

    // Key switching's inner product on one limb: 4 digits, as `n16-boot`'s dnum.
    for (name, m) in [("dot_4/narrow", qm[0]), ("dot_4/wide", pwm[0])] {
        let x = sampling::uniform(
            &mut rng,
            n,
            &vec![Prime::new(m.value(), &order).unwrap(); 8],
        );
        let terms: Vec<(&[u64], &[u64])> = (0..4).map(|i| (x.limb(i), x.limb(4 + i))).collect();
        let mut out = vec![0u64; n];
        c.bench_function(&format!("ring/{name}/n16"), |b| {
            b.iter(|| kernels::dot_product(&terms, &m, &mut out))
        });
        // Both key components against the same digits, the key in Montgomery form (the
        // residues' form does not change the kernel's speed).
        let terms: Vec<(&[u64], &[u64], &[u64])> = (0..4)
            .map(|i| (x.limb(i), x.limb(4 + i), x.limb((5 + i) % 8)))
            .collect();
        let mut out1 = vec![0u64; n];
        c.bench_function(
            &format!("ring/{}/n16", name.replace("dot_4", "dot_pair_4")),
            |b| b.iter(|| kernels::dot_product_pair_montgomery(&terms, &m, &mut out, &mut out1)),
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = ring_kernels
}
criterion_main!(benches);
