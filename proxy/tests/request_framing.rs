//! The proxy's HTTP/1.1 request head and chunked body parsing, fuzzed with a fixed budget:
//! seeded mutations of `fuzz/corpus/http1` (the `http1` fuzz target's corpus) written as client
//! connections into the proxy's real server path (in process, `smuggling/rig.rs`) in front of
//! the recording upstream. Property: nothing panics, every connection ends, and whatever
//! reaches the upstream is a sequence of well-framed requests (the strict checker of the
//! smuggling test).

#[path = "../../fuzz/harness.rs"]
mod harness;
#[path = "smuggling/rig.rs"]
mod rig;
#[path = "smuggling/strict.rs"]
mod strict;
#[path = "smuggling/upstream.rs"]
mod upstream;

use std::time::Duration;

use futures_util::future::join_all;
use rig::Rig;

/// Mutated inputs on top of the corpus.
const CASES: usize = 1500;
/// Connections served at once.
const BATCH: usize = 25;
/// How long a client waits for more of an answer.
const QUIET: Duration = Duration::from_millis(40);

/// Tokens of HTTP/1 framing, spliced into mutations.
const TOKENS: [&[u8]; 14] = [
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: 0\r\n",
    b" chunked",
    b", identity",
    b"0\r\n\r\n",
    b"5\r\nhello\r\n",
    b";ext=\"v\"",
    b"Expect: 100-continue\r\n",
    b"GET /smuggled HTTP/1.1\r\nHost: catalog\r\n\r\n",
    b"HTTP/1.0",
];

/// The corpus and `n` mutations of it (the harness's mutations, then an HTTP token or two
/// spliced in), from a fixed seed.
fn inputs(n: usize) -> Vec<Vec<u8>> {
    let seeds = harness::corpus("http1");
    let mut rng = fastrand::Rng::with_seed(0x5eed_0012);
    let mut all = seeds.clone();
    for _ in 0..n {
        let seed = &seeds[rng.usize(..seeds.len())];
        let mut input = harness::mutate(&mut rng, seed);
        for _ in 0..rng.usize(0..=2) {
            let at = rng.usize(..=input.len());
            let token = TOKENS[rng.usize(..TOKENS.len())];
            input.splice(at..at, token.iter().copied());
        }
        all.push(input);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_requests_reach_the_upstream_well_framed_or_not_at_all() {
    let rig = Rig::start().await;
    let inputs = inputs(CASES);
    let mut forwarded = 0;
    for batch in inputs.chunks(BATCH) {
        join_all(batch.iter().map(|input| rig.send(input, QUIET))).await;
        match rig.check() {
            Ok(n) => forwarded += n,
            Err(violation) => {
                // Name the input: the batch's connections one at a time.
                for input in batch {
                    rig.send(input, QUIET).await;
                    if let Err(v) = rig.check() {
                        panic!(
                            "the upstream got {v}\nfrom the client bytes {:?}",
                            String::from_utf8_lossy(input)
                        );
                    }
                }
                panic!("the upstream got {violation} (from a batch, not reproduced alone)");
            }
        }
    }
    // The budget exercises the forwarding path, not only the parser's refusals.
    assert!(
        forwarded >= inputs.len() / 10,
        "only {forwarded} requests of {} inputs reached the upstream",
        inputs.len()
    );
}
