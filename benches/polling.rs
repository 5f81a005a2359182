//! Polling: calls per refresh and detection latency, adaptive policy vs fixed 5 s and fixed 60 s.
//!
//! ```text
//! cargo bench --bench polling
//! ```
//!
//! A virtual clock, so a 2-hour refresh costs microseconds: for each duration of the sweep, the
//! refresh's history holds 10 past durations within ±5 % of it (a model that runs about as long
//! every night) and this run's duration is drawn within ±5 % too, from a fixed seed. The adaptive
//! policy is the one `pbiops` runs (`PollPolicy::next`), with `poll.min` 1 s and `poll.max` 5 min;
//! "first refresh" is the same policy without any history; "economy" is the policy a fleet item
//! nobody depends on runs (`Aim::Economy`: fewest calls), with that `poll.max` given, with 2 min
//! given, and with the default one (2 min, which such a wait passes after one early look, in
//! steps of up to a quarter of the way: `Ceiling::Default`). A benchmark, not a test: it prints a
//! table and the targets, and asserts nothing.

use std::time::Duration;

use pbiops::wait::{Aim, Ceiling, Expectation, PollPolicy, Queue};

const DURATIONS: &[f64] = &[
    10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 2400.0, 3600.0, 7200.0,
];
const RUNS: u64 = 200;

/// (calls, detection latency) of one refresh of `actual` seconds.
fn simulate(next: &mut dyn FnMut(f64) -> f64, actual: f64) -> (u32, f64) {
    let mut t = next(0.0);
    let mut calls = 1;
    while t < actual {
        t += next(t);
        calls += 1;
    }
    (calls, t - actual)
}

/// The intervals `policy` chooses, jittered from `jitter`.
fn adaptive<'a>(
    policy: &'a PollPolicy,
    jitter: &'a mut fastrand::Rng,
) -> impl FnMut(f64) -> f64 + 'a {
    move |t| {
        policy
            .next(Duration::from_secs_f64(t), jitter.f64() * 2.0 - 1.0)
            .as_secs_f64()
    }
}

fn fixed(every: f64) -> impl FnMut(f64) -> f64 {
    move |_| every
}

fn main() {
    let mut rng = fastrand::Rng::with_seed(20261124);
    let noise = |rng: &mut fastrand::Rng| 1.0 + (rng.f64() * 2.0 - 1.0) * 0.05;
    println!(
        "polling a refresh, {RUNS} runs per duration (virtual clock; adaptive: poll.min 1 s, poll.max 5 min)\n"
    );
    println!(
        "| duration | adaptive calls | adaptive latency (max) | adaptive latency / its target (max; target ≤ 1) | first refresh calls | first refresh latency (max) | fixed 5 s calls | fixed 5 s latency (max) | fixed 60 s calls | fixed 60 s latency (max) | adaptive calls / fixed 5 s | economy calls | economy latency (mean, % of the duration) | economy, poll.max 2 min given: calls | economy, default poll.max: calls | economy, default poll.max: latency (mean, %) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    // A run's latency target is max(2 s, 2 % of its own duration), which varies ±5 % around the nominal one.
    let (mut total_adaptive, mut total_fixed5) = (0.0, 0.0);
    for &d in DURATIONS {
        // The worst latency relative to the run's own target, max(2 s, 2 % of its duration).
        let mut a_ratio = 0.0f64;
        let (mut e_calls, mut e_late) = (0.0, 0.0);
        let (mut d_calls, mut d_late, mut t_calls) = (0.0, 0.0, 0.0);
        let (
            mut a_calls,
            mut a_late,
            mut b_calls,
            mut b_late,
            mut f5_calls,
            mut f5_late,
            mut f60_calls,
            mut f60_late,
        ) = (0.0, 0.0f64, 0.0, 0.0f64, 0.0, 0.0f64, 0.0, 0.0f64);
        for _ in 0..RUNS {
            let history: Vec<Duration> = (0..10)
                .map(|_| Duration::from_secs_f64(d * noise(&mut rng)))
                .collect();
            let actual = d * noise(&mut rng);
            let policy = PollPolicy {
                min: Duration::from_secs(1),
                max: Duration::from_secs(300),
                expectation: Expectation::from_durations(&history),
                aim: Aim::Promptness,
                queue: Queue::NONE,
                ceiling: Ceiling::Given,
                give_up: None,
            };
            let blind = PollPolicy::bounded(Duration::from_secs(1), Duration::from_secs(300));
            let economy = PollPolicy {
                aim: Aim::Economy,
                ..policy
            };
            // What a fleet item runs when the task gives `poll.max` 2 min, and when it leaves
            // it at that default.
            let economy_two = PollPolicy {
                max: Duration::from_secs(120),
                ..economy
            };
            let economy_default = PollPolicy {
                ceiling: Ceiling::Default,
                ..economy_two
            };
            let mut jitter = fastrand::Rng::with_seed(rng.u64(..));
            let (c, l) = simulate(&mut adaptive(&policy, &mut jitter), actual);
            a_calls += c as f64;
            a_late = a_late.max(l);
            a_ratio = a_ratio.max(l / (0.02 * actual).max(2.0));
            let (c, l) = simulate(&mut adaptive(&blind, &mut jitter), actual);
            b_calls += c as f64;
            b_late = b_late.max(l);
            let (c, l) = simulate(&mut adaptive(&economy, &mut jitter), actual);
            e_calls += c as f64;
            e_late += l / actual;
            let (c, _) = simulate(&mut adaptive(&economy_two, &mut jitter), actual);
            t_calls += c as f64;
            let (c, l) = simulate(&mut adaptive(&economy_default, &mut jitter), actual);
            d_calls += c as f64;
            d_late += l / actual;
            let (c, l) = simulate(&mut fixed(5.0), actual);
            f5_calls += c as f64;
            f5_late = f5_late.max(l);
            let (c, l) = simulate(&mut fixed(60.0), actual);
            f60_calls += c as f64;
            f60_late = f60_late.max(l);
        }
        let n = RUNS as f64;
        total_adaptive += a_calls;
        total_fixed5 += f5_calls;
        println!(
            "| {} | {:.1} | {:.1} s | {:.2} | {:.1} | {:.1} s | {:.1} | {:.1} s | {:.1} | {:.1} s | {:.2} | {:.1} | {:.1} % | {:.1} | {:.1} | {:.1} % |",
            human(d),
            a_calls / n,
            a_late,
            a_ratio,
            b_calls / n,
            b_late,
            f5_calls / n,
            f5_late,
            f60_calls / n,
            f60_late,
            a_calls / f5_calls,
            e_calls / n,
            100.0 * e_late / n,
            t_calls / n,
            d_calls / n,
            100.0 * d_late / n
        );
    }
    println!(
        "\nwhole sweep: adaptive makes {:.3} of the calls of fixed 5 s polling (target: at most 0.1; at most 0.2 for each duration of 5 min and more)",
        total_adaptive / total_fixed5
    );
}

fn human(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.0} s")
    } else if secs < 3600.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{:.0} h", secs / 3600.0)
    }
}
