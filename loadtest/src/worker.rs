//! One driver thread: its connections, its own mio `Poll`, its own histograms. It opens its
//! connections, waits at the start gate with the others, then sends on the schedule, checks
//! every answer, reports each second to the main thread and returns its totals.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use hdrhistogram::Histogram;
use mio::{Events, Interest, Poll, Token};

use crate::check::{scan, Kind, Scan, Wrong};
use crate::conn::{open, Conn, InFlight, Tls};
use crate::schedule::Schedule;
use crate::sys::Timer;
use crate::workload::Workload;

/// Nanoseconds since the start of the driver, on one clock shared by every thread.
#[derive(Clone, Copy)]
pub struct Clock(pub Instant);

impl Clock {
    pub fn now(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// Everything a thread needs to know about the run (shared, read-only).
pub struct Plan {
    pub addr: std::net::SocketAddr,
    pub tls: Option<Tls>,
    pub conns: u64,
    pub threads: u64,
    pub pipeline: usize,
    /// Requests per second over all connections; 0: as fast as the window allows.
    pub rate: u64,
    pub warmup: u64,
    pub duration: u64,
    /// How long answers still in flight at the end are waited for.
    pub drain: u64,
    pub opaque: bool,
    pub seed: u64,
    pub connect_timeout: Duration,
}

/// The start gate: every thread has opened its connections (or failed) before the clock starts.
pub struct Gate {
    pub barrier: Barrier,
    pub failed: AtomicBool,
    pub t0: AtomicU64,
    pub error: Mutex<Option<String>>,
}

impl Gate {
    pub fn new(threads: usize) -> Gate {
        Gate {
            barrier: Barrier::new(threads + 1),
            failed: AtomicBool::new(false),
            t0: AtomicU64::new(0),
            error: Mutex::new(None),
        }
    }
}

/// Latency histograms: microseconds, 1 µs to an hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

/// The per-second histogram behind the progress line: two significant digits up to a minute,
/// a fiftieth of the full one's size. It is copied to the main thread every second, which
/// shares the driver's core: copying and merging the full one there stalled sends for about a
/// millisecond each second, enough to show in p99.9.
pub fn tick_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 2).expect("histogram bounds")
}

/// A thread's report for one second of the run.
pub struct Tick {
    pub second: u64,
    pub answered: u64,
    pub errors: u64,
    /// Latency from the intended send time, over this second.
    pub latency: Histogram<u64>,
    /// How long the oldest request due and not yet sent had been waiting (0 if none).
    pub behind: u64,
}

/// One wrong answer, kept to show.
#[derive(Debug, Clone)]
pub struct Sample {
    pub wrong: Wrong,
    pub kind: Kind,
    pub request: String,
    pub answer: String,
}

/// A thread's totals (and, merged, the run's). Counts of answers, bytes and latencies cover
/// the requests whose intended send time is in the measured window; errors cover the whole run.
pub struct Stats {
    /// From the intended send time (the schedule): coordinated-omission corrected.
    pub intended: Histogram<u64>,
    /// From the actual send (service time).
    pub service: Histogram<u64>,
    /// How late the driver itself sent requests that had room in their window.
    pub driver_lag: Histogram<u64>,
    pub sent: u64,
    pub answered: [u64; 4],
    pub errors: [u64; Wrong::ALL.len()],
    pub samples: Vec<Sample>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Requests that waited for a full window, and the longest such wait (ns).
    pub held: u64,
    pub held_max: u64,
    /// Requests due in the run that were never sent (the driver or the window fell behind).
    pub unsent: u64,
    pub conns_lost: u64,
}

/// Most samples of wrong answers kept per thread.
const SAMPLES: usize = 8;

impl Stats {
    pub fn new() -> Stats {
        Stats {
            intended: histogram(),
            service: histogram(),
            driver_lag: histogram(),
            sent: 0,
            answered: [0; 4],
            errors: [0; Wrong::ALL.len()],
            samples: Vec::new(),
            bytes_in: 0,
            bytes_out: 0,
            held: 0,
            held_max: 0,
            unsent: 0,
            conns_lost: 0,
        }
    }

    pub fn merge(&mut self, o: &Stats) {
        let _ = self.intended.add(&o.intended);
        let _ = self.service.add(&o.service);
        let _ = self.driver_lag.add(&o.driver_lag);
        self.sent += o.sent;
        for i in 0..4 {
            self.answered[i] += o.answered[i];
        }
        for i in 0..self.errors.len() {
            self.errors[i] += o.errors[i];
        }
        for s in &o.samples {
            if self.samples.len() < SAMPLES {
                self.samples.push(s.clone());
            }
        }
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.held += o.held;
        self.held_max = self.held_max.max(o.held_max);
        self.unsent += o.unsent;
        self.conns_lost += o.conns_lost;
    }

    pub fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    pub fn answered_total(&self) -> u64 {
        self.answered.iter().sum()
    }
}

const TIMER: Token = Token(usize::MAX);
/// Closer than this to the next send, the loop polls without sleeping: waking from a sleep
/// costs about as much. In the closed loop (`--rate 0`) it never sleeps before the end either:
/// answers come back to back, and a driver asleep between them has the server pay for waking
/// it (on the 2-vCPU test machine: 165,000 context switches in a 12 s peak run instead of
/// 1,100, and 5% less throughput once the driver had become fast enough to fall asleep).
const SPIN: u64 = 20_000;
const SECOND: u64 = 1_000_000_000;

/// The state of the running loop, apart from the connections.
struct Run<'a> {
    plan: &'a Plan,
    wl: &'a Workload,
    sched: Option<Schedule>,
    measure_from: u64,
    end: u64,
    stats: Stats,
    tick_answered: u64,
    tick_errors: u64,
    tick_latency: Histogram<u64>,
}

impl Run<'_> {
    fn measured(&self, intended: u64) -> bool {
        intended >= self.measure_from && intended < self.end
    }

    fn wrong(&mut self, w: Wrong, req: &InFlight, answer: &[u8]) {
        self.stats.errors[w.index()] += 1;
        self.tick_errors += 1;
        if self.stats.samples.len() < SAMPLES {
            let line = self.wl.line(req.cmd);
            let first = answer.split(|&c| c == b'\n').next().unwrap_or(b"");
            let first = &first[..first.len().min(120)];
            self.stats.samples.push(Sample {
                wrong: w,
                kind: req.kind,
                request: String::from_utf8_lossy(line).trim_end().to_string(),
                answer: String::from_utf8_lossy(first).trim_end().to_string(),
            });
        }
    }

    /// Sends what `c` may send now: its due requests (open loop) or a full window (rate 0).
    /// `answered`: called because an answer freed the window.
    fn pump(&mut self, c: &mut Conn, i: usize, now: u64, answered: bool) {
        if c.dead {
            return;
        }
        // After the end, requests still waiting for their window are not sent (they count as
        // unsent); only the schedule's last ones, due just before the end, still go.
        let closed = answered && now >= self.end;
        let pipeline = self.plan.pipeline;
        while c.fifo.len() < pipeline && !closed {
            let intended = match self.sched {
                Some(s) => {
                    if c.due == 0 {
                        break;
                    }
                    c.due -= 1;
                    s.intended_for(i, c.sent)
                }
                None if now < self.end => now,
                None => break,
            };
            c.sent += 1;
            let (kind, cmd) = self.wl.pick(&mut c.rng);
            let line = self.wl.line(cmd);
            c.queue(line);
            c.fifo.push_back(InFlight {
                kind,
                cmd,
                intended,
                sent: now,
            });
            if self.measured(intended) {
                self.stats.sent += 1;
                self.stats.bytes_out += line.len() as u64;
                if self.sched.is_some() {
                    let late = now.saturating_sub(intended);
                    if answered {
                        self.stats.held += 1;
                        self.stats.held_max = self.stats.held_max.max(late);
                    } else {
                        self.stats.driver_lag.saturating_record(late / 1000);
                    }
                }
            }
        }
        if let Err(e) = c.flush() {
            self.kill(c, Wrong::Io, &e.to_string());
        }
    }

    /// Takes the whole answers at the front of `buf`; returns the octets used, or the error
    /// that makes the stream impossible to follow.
    fn answers(
        &mut self,
        fifo: &mut VecDeque<InFlight>,
        buf: &[u8],
        now: u64,
    ) -> Result<usize, (Wrong, usize)> {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            let Some(&req) = fifo.front() else {
                return if rest.is_empty() {
                    Ok(pos)
                } else {
                    Err((Wrong::Unsolicited, pos))
                };
            };
            match scan(rest, req.kind, self.wl.envid(req.cmd), self.plan.opaque) {
                Scan::Incomplete => return Ok(pos),
                Scan::Garbled => return Err((Wrong::Garbled, pos)),
                Scan::Answer { len, verdict } => {
                    fifo.pop_front();
                    if let Err(w) = verdict {
                        self.wrong(w, &req, &rest[..len]);
                    }
                    let latency = now.saturating_sub(req.intended) / 1000;
                    if self.measured(req.intended) {
                        self.stats.answered[req.kind.index()] += 1;
                        self.stats.bytes_in += len as u64;
                        self.stats.intended.saturating_record(latency);
                        self.stats
                            .service
                            .saturating_record(now.saturating_sub(req.sent) / 1000);
                    }
                    self.tick_answered += 1;
                    self.tick_latency.saturating_record(latency);
                    pos += len;
                }
            }
        }
    }

    /// Reads and checks what `c` has received.
    /// `closed`: the event says the peer closed (read to the end, whatever the read sizes).
    fn receive(&mut self, c: &mut Conn, scratch: &mut Vec<u8>, now: u64, closed: bool) {
        let mut failure: Option<(Wrong, Vec<u8>)> = None;
        let result = c.read(scratch, closed, |c, data| {
            if failure.is_some() {
                return data.len();
            }
            match self.answers(&mut c.fifo, data, now) {
                Ok(used) => used,
                Err((w, at)) => {
                    let rest = &data[at..];
                    failure = Some((w, rest[..rest.len().min(200)].to_vec()));
                    data.len()
                }
            }
        });
        if let Some((w, answer)) = failure {
            match c.fifo.pop_front() {
                Some(req) => self.wrong(w, &req, &answer),
                None => {
                    self.stats.errors[w.index()] += 1;
                    self.tick_errors += 1;
                }
            }
            self.kill(c, Wrong::Closed, "");
            return;
        }
        match result {
            Ok(true) => {}
            Ok(false) => {
                let idle = c.fifo.is_empty();
                if !c.rbuf.is_empty() && !idle {
                    // Closed mid-answer: the request gets a truncated answer, not silence.
                    let req = c.fifo.pop_front().expect("in flight");
                    let partial = std::mem::take(&mut c.rbuf);
                    self.wrong(Wrong::Truncated, &req, &partial);
                }
                self.kill(c, Wrong::Closed, "");
                if idle && now < self.end {
                    // Nothing was in flight, but a connection the run needs is gone.
                    self.stats.errors[Wrong::Closed.index()] += 1;
                    self.tick_errors += 1;
                }
            }
            Err(e) => self.kill(c, Wrong::Io, &e.to_string()),
        }
    }

    /// Closes `c`: every request in flight counts as `why`.
    fn kill(&mut self, c: &mut Conn, why: Wrong, detail: &str) {
        if c.dead {
            return;
        }
        c.dead = true;
        self.stats.conns_lost += 1;
        while let Some(req) = c.fifo.pop_front() {
            self.wrong(why, &req, detail.as_bytes());
        }
        // Its due requests stay counted in `due`: at the end they are reported as unsent.
        c.out.clear();
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Opens this thread's connections; None (with the gate marked failed) on the first error.
fn connect(plan: &Plan, thread: u64, gate: &Gate) -> Option<Vec<Conn>> {
    let local = Schedule::local_count(plan.conns, plan.threads, thread);
    let mut conns = Vec::with_capacity(local as usize);
    for i in 0..local {
        if gate.failed.load(Ordering::Relaxed) {
            return None;
        }
        let g = thread + i * plan.threads;
        match open(plan.addr, plan.tls.as_ref(), plan.connect_timeout) {
            Ok((s, tls)) => conns.push(Conn::new(
                s,
                tls,
                plan.pipeline,
                plan.seed ^ g.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            )),
            Err(e) => {
                let mut slot = gate.error.lock().expect("gate");
                slot.get_or_insert(format!("connection {}: {e}", g + 1));
                gate.failed.store(true, Ordering::Relaxed);
                return None;
            }
        }
    }
    Some(conns)
}

/// Runs one thread. Err only when the connections could not be opened or registered.
pub fn worker(
    plan: &Plan,
    wl: &Workload,
    thread: u64,
    clock: Clock,
    gate: &Gate,
    ticks: Sender<Tick>,
) -> Result<Stats, String> {
    let conns = connect(plan, thread, gate);
    let setup = conns.and_then(|mut conns| {
        let poll = Poll::new().ok()?;
        let timer = Timer::new().ok()?;
        for (i, c) in conns.iter_mut().enumerate() {
            poll.registry()
                .register(
                    &mut c.stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .ok()?;
        }
        poll.registry()
            .register(
                &mut mio::unix::SourceFd(&timer.raw_fd()),
                TIMER,
                Interest::READABLE,
            )
            .ok()?;
        Some((conns, poll, timer))
    });
    if setup.is_none() {
        gate.failed.store(true, Ordering::Relaxed);
    }
    gate.barrier.wait(); // everyone has connected (or failed)
    gate.barrier.wait(); // the main thread has set t0
    let Some((mut conns, mut poll, timer)) = setup else {
        return Err(gate
            .error
            .lock()
            .expect("gate")
            .clone()
            .unwrap_or_else(|| "cannot set up the event loop".into()));
    };
    if gate.failed.load(Ordering::Relaxed) {
        return Err(String::new());
    }
    let t0 = gate.t0.load(Ordering::Relaxed);
    let local = conns.len() as u64;
    let sched = (plan.rate > 0).then_some(Schedule {
        t0,
        rate: plan.rate,
        conns: plan.conns,
        threads: plan.threads,
        thread,
        local,
    });
    let measure_from = t0 + plan.warmup;
    let end = measure_from + plan.duration;
    let mut run = Run {
        plan,
        wl,
        sched,
        measure_from,
        end,
        stats: Stats::new(),
        tick_answered: 0,
        tick_errors: 0,
        tick_latency: tick_histogram(),
    };
    let mut scratch = vec![0u8; 256 * 1024];
    let mut events = Events::with_capacity(1024);
    // The next request of the schedule, and its intended time, kept from one turn of the loop to
    // the next: most turns find nothing due and need not work it out again.
    let mut k = 0u64;
    let mut due_at = sched.map_or(u64::MAX, |s| s.intended(0));
    let mut second = 0u64;
    let mut next_tick = t0 + SECOND;
    let mut touched: Vec<usize> = Vec::with_capacity(conns.len());
    let mut started = false;
    loop {
        let now = clock.now();
        if now >= next_tick {
            let behind = match sched {
                Some(s) => conns
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.due > 0 && !c.dead)
                    .map(|(i, c)| now.saturating_sub(s.intended_for(i, c.sent)))
                    .max()
                    .unwrap_or(0),
                None => 0,
            };
            let latency = run.tick_latency.clone();
            run.tick_latency.reset();
            let _ = ticks.send(Tick {
                second,
                answered: std::mem::take(&mut run.tick_answered),
                errors: std::mem::take(&mut run.tick_errors),
                latency,
                behind,
            });
            second += 1;
            next_tick += SECOND;
        }
        // What the schedule has made due by now, then send it.
        match sched {
            Some(s) => {
                while due_at <= now && due_at < end {
                    let i = s.conn(k);
                    let c = &mut conns[i];
                    // A dead connection's due requests pile up: unsent, reported at the end.
                    c.due += 1;
                    if c.due == 1 && !c.dead {
                        touched.push(i);
                    }
                    k += 1;
                    due_at = s.intended(k);
                }
            }
            None if !started => touched.extend(0..conns.len()),
            None => {}
        }
        started = true;
        for i in touched.drain(..) {
            run.pump(&mut conns[i], i, now, false);
        }
        if now >= end {
            let in_flight = conns.iter().any(|c| !c.fifo.is_empty());
            if !in_flight || now >= end + plan.drain {
                break;
            }
        }
        let mut wake = next_tick.min(if now < end { end } else { end + plan.drain });
        if due_at < end {
            wake = wake.min(due_at);
        }
        let timeout = if wake <= now + SPIN || (sched.is_none() && now < end) {
            Duration::ZERO
        } else if timer.arm_in(wake - now).is_ok() {
            Duration::from_secs(1)
        } else {
            // Without the timer, epoll's millisecond sleeps: sends may be late (and the
            // driver-lag figures will show it).
            Duration::from_nanos(wake - now)
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("poll: {e}"));
            }
        }
        let now = clock.now();
        for ev in events.iter() {
            if ev.token() == TIMER {
                timer.clear();
                continue;
            }
            let i = ev.token().0;
            let c = &mut conns[i];
            if c.dead {
                continue;
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                run.receive(c, &mut scratch, now, ev.is_read_closed() || ev.is_error());
            }
            run.pump(c, i, now, true);
        }
    }
    // What is left: unanswered, or due and never sent.
    for (i, c) in conns.iter_mut().enumerate() {
        while let Some(req) = c.fifo.pop_front() {
            run.wrong(Wrong::NoAnswer, &req, b"");
        }
        if let Some(s) = sched {
            for m in c.sent..c.sent + c.due {
                run.stats.unsent += u64::from(run.measured(s.intended_for(i, m)));
            }
        }
    }
    drop(ticks);
    Ok(run.stats)
}
