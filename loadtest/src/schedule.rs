//! The open-loop send schedule (as wrk2's): every request has an intended send time fixed in
//! advance, whatever the server does.
//!
//! With `--rate R` over `C` connections, connection `g` (0-based, over all threads) sends its
//! `m`-th request at `t0 + (g + m·C) / R` seconds: each connection at `R / C` per second,
//! evenly spaced, its phase offset by `g / R` so that the connections take turns and the
//! server sees one request every `1 / R`. A thread owns the connections `t, t + T, t + 2T, …`
//! and walks its share as one sequence `k = m · c_t + i` (local connection `i` of `c_t`),
//! which is increasing in time; see [`Schedule::intended`].
//!
//! A connection whose window (`--pipeline`) is full holds its due requests back, but their
//! intended times do not move: the wait counts in the latency (the coordinated-omission
//! correction).

/// One thread's share of the schedule.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Start of the run, in the driver's clock (ns).
    pub t0: u64,
    /// Total requests per second over all connections (> 0).
    pub rate: u64,
    /// Connections over all threads.
    pub conns: u64,
    /// Threads.
    pub threads: u64,
    /// This thread's index.
    pub thread: u64,
    /// Connections of this thread (connections `thread + i · threads`).
    pub local: u64,
}

impl Schedule {
    /// Connections of thread `thread` when `conns` are dealt round-robin over `threads`.
    pub fn local_count(conns: u64, threads: u64, thread: u64) -> u64 {
        conns / threads + u64::from(thread < conns % threads)
    }

    /// The local connection that sends request `k` of this thread's sequence.
    pub fn conn(&self, k: u64) -> usize {
        (k % self.local) as usize
    }

    /// The intended send time (ns, driver clock) of request `k` of this thread's sequence.
    pub fn intended(&self, k: u64) -> u64 {
        let (i, m) = (k % self.local, k / self.local);
        let g = self.thread + i * self.threads;
        // In u64 while the product fits (at 300,000/s, the first 17 hours of a run): this runs
        // for every request, and u128 division is a library call several times slower. Both
        // are exact, so the time is the same either way.
        let fast = m
            .checked_mul(self.conns)
            .and_then(|s| s.checked_add(g))
            .and_then(|s| s.checked_mul(1_000_000_000));
        let ns = match fast {
            Some(n) => n / self.rate,
            None => {
                let slot = u128::from(g) + u128::from(m) * u128::from(self.conns);
                (slot * 1_000_000_000 / u128::from(self.rate)) as u64
            }
        };
        self.t0 + ns
    }

    /// The intended time of the `m`-th request of local connection `i`.
    pub fn intended_for(&self, i: usize, m: u64) -> u64 {
        self.intended(m * self.local + i as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(rate: u64, conns: u64, threads: u64) -> Vec<Schedule> {
        (0..threads)
            .map(|t| Schedule {
                t0: 1_000,
                rate,
                conns,
                threads,
                thread: t,
                local: Schedule::local_count(conns, threads, t),
            })
            .collect()
    }

    /// Every intended time in [t0, t0 + secs) over all threads, sorted.
    fn times(schedules: &[Schedule], secs: u64) -> Vec<u64> {
        let mut out = Vec::new();
        for s in schedules {
            let mut k = 0;
            loop {
                let t = s.intended(k);
                if t >= s.t0 + secs * 1_000_000_000 {
                    break;
                }
                out.push(t);
                k += 1;
            }
        }
        out.sort_unstable();
        out
    }

    #[test]
    fn connections_are_dealt_round_robin() {
        assert_eq!(
            (0..3)
                .map(|t| Schedule::local_count(10, 3, t))
                .collect::<Vec<_>>(),
            [4, 3, 3]
        );
        assert_eq!(Schedule::local_count(1, 1, 0), 1);
    }

    #[test]
    fn the_total_rate_is_exact_and_evenly_spaced() {
        for (rate, conns, threads) in [(1000, 10, 1), (1000, 10, 3), (997, 7, 2), (50, 50, 4)] {
            let t = times(&all(rate, conns, threads), 2);
            assert_eq!(t.len() as u64, 2 * rate, "{rate} {conns} {threads}");
            let gap = 1_000_000_000 / rate;
            for w in t.windows(2) {
                let d = w[1] - w[0];
                assert!(d == gap || d == gap + 1, "{rate} {conns} {threads}: {d}");
            }
        }
    }

    #[test]
    fn each_thread_sequence_is_increasing() {
        for s in all(1000, 10, 3) {
            for k in 0..1000 {
                assert!(s.intended(k + 1) > s.intended(k));
            }
        }
    }

    #[test]
    fn each_connection_sends_at_its_share_with_its_own_phase() {
        // 4 connections at 400/s: each one every 10 ms, connection g first at g × 2.5 ms.
        let s = all(400, 4, 2);
        for (t, s) in s.iter().enumerate() {
            for i in 0..s.local as usize {
                let g = t as u64 + i as u64 * 2;
                assert_eq!(s.intended_for(i, 0), 1_000 + g * 2_500_000);
                for m in 0..50 {
                    assert_eq!(s.intended_for(i, m + 1) - s.intended_for(i, m), 10_000_000);
                }
                assert_eq!(s.conn(3 * s.local + i as u64), i);
            }
        }
    }

    #[test]
    fn the_u64_path_agrees_with_u128_where_it_ends() {
        let s = all(300_000, 50, 1)[0];
        // The first request whose slot times 10^9 no longer fits a u64, and its neighbours.
        let last_fit = u64::MAX / 1_000_000_000 / s.conns * s.local;
        for k in last_fit - 200..last_fit + 200 {
            let (i, m) = (k % s.local, k / s.local);
            let slot = u128::from(i) + u128::from(m) * u128::from(s.conns);
            let want = s.t0 + (slot * 1_000_000_000 / u128::from(s.rate)) as u64;
            assert_eq!(s.intended(k), want, "{k}");
        }
    }

    #[test]
    fn huge_rates_and_long_runs_do_not_overflow() {
        let s = all(10_000_000, 20_000, 2)[1];
        // An hour in: 3.6e10 requests.
        let k = 3_600 * 10_000_000 / 2;
        let t = s.intended(k);
        assert!((t - s.t0).abs_diff(3_600_000_000_000) < 1_000_000, "{t}");
    }
}
