//! The property harness `cargo test` runs over the fuzz targets' entry points (the
//! `robustness` tests of sluice-api, sluice-proxy and sluice-control include this file): seeded
//! mutations of the checked-in corpus and of good inputs, a fixed number of cases from a fixed
//! seed, so a run takes seconds and a failure names the case that reproduces it. The cargo-fuzz
//! targets next to it explore the same entry points without a budget.

#![allow(dead_code)]

use std::path::Path;

/// Cases per entry point in `cargo test`.
pub const CASES: usize = 3000;

/// Bytes that tend to matter to parsers.
const INTERESTING: [&[u8]; 12] = [
    b"\0",
    b"\xff",
    b"\r\n",
    b":",
    b"{",
    b"}",
    b"[",
    b"\"",
    b"---\n",
    b"&a",
    b"*a",
    b"\x16\x03\x01",
];

/// One mutation of `seed`: bytes flipped, cut, inserted, repeated or spliced with parser
/// tokens, one to eight times.
pub fn mutate(rng: &mut fastrand::Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.usize(1..=8) {
        let at = rng.usize(..=v.len());
        match rng.u8(..5) {
            0 if !v.is_empty() => {
                let i = rng.usize(..v.len());
                v[i] = rng.u8(..);
            }
            1 => v.truncate(at),
            2 => {
                let n = rng.usize(1..16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
                v.splice(at..at, bytes);
            }
            3 if !v.is_empty() => {
                let from = rng.usize(..v.len());
                let to = rng.usize(from..=v.len().min(from + 64));
                let chunk = v[from..to].repeat(rng.usize(1..4));
                v.splice(at..at, chunk);
            }
            _ => {
                let token = INTERESTING[rng.usize(..INTERESTING.len())];
                v.splice(at..at, token.iter().copied());
            }
        }
    }
    v
}

/// The files of a corpus directory (of the repository's `fuzz/corpus/`).
pub fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// Runs `check` on every seed and on [`CASES`] mutations of them; a panic names the case
/// (re-run it with the same `seed` and `case`).
pub fn run(name: &str, seeds: &[Vec<u8>], mut check: impl FnMut(&[u8])) {
    assert!(!seeds.is_empty(), "{name}: no seeds");
    for seed in seeds {
        check(seed);
    }
    let mut rng = fastrand::Rng::with_seed(0x5eed_0013);
    for case in 0..CASES {
        let seed = &seeds[rng.usize(..seeds.len())];
        let input = mutate(&mut rng, seed);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&input)));
        assert!(
            outcome.is_ok(),
            "{name}: case {case} panicked on {:?}",
            String::from_utf8_lossy(&input)
        );
    }
}
