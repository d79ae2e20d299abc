//! The one deadline-polling loop behind every wait (the cluster's readiness, the stack's
//! rollouts, the volumes `down` waits for, the host keys on the consoles): look, stop when
//! done, else pause a fixed interval and look again, until a deadline. It owns only the timing;
//! what a look reads, what counts as done, what to report while waiting and what a timeout
//! means are the caller's. Must not depend on `aws`, `ops`, `ui` or the reporter.

use std::time::{Duration, Instant};

/// What one look found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look<T, W> {
    Done(T),
    /// Not yet, and why: handed to `on_wait` before the pause, or returned in the [`Timeout`].
    Waiting(W),
}

/// When the deadline is checked, which decides which look is the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Before each look: the look that begins past the deadline is told it is the last (so it
    /// can afford to explain), and its answer is final; a look begun in time is never the
    /// last, however long it takes.
    BeforeLook,
    /// After each look: the first look that ends past the deadline is the last. Looks are
    /// never told (`last` is always false).
    AfterLook,
}

/// The deadline passed while the looks still waited.
#[derive(Debug)]
pub struct Timeout<W> {
    /// Why the last look was still waiting.
    pub last: W,
    pub started: Instant,
}

impl<W> Timeout<W> {
    /// Time since the wait began, read now (an error message written after more reads says
    /// how long it all took).
    pub fn waited(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Looks until one is [`Look::Done`] or the deadline (from now) passes, `interval` apart.
/// `look(last)` gets `last` as [`Check`] says; `on_wait` sees every waiting answer that is not
/// the last, right before the pause. An error of a look ends the wait at once (outer `Err`);
/// the inner `Err` is the timeout.
pub async fn poll_until<T, W, E>(
    deadline: Duration,
    interval: Duration,
    check: Check,
    look: impl AsyncFnMut(bool) -> Result<Look<T, W>, E>,
    on_wait: impl FnMut(&W),
) -> Result<Result<T, Timeout<W>>, E> {
    let started = Instant::now();
    let out = run(|| started.elapsed(), tokio::time::sleep, deadline, interval, check, look, on_wait).await?;
    Ok(out.map_err(|last| Timeout { last, started }))
}

/// The loop, with the clock and the pause passed in so that tests run it in virtual time.
async fn run<T, W, E, S: Future<Output = ()>>(
    elapsed: impl Fn() -> Duration,
    mut pause: impl FnMut(Duration) -> S,
    deadline: Duration,
    interval: Duration,
    check: Check,
    mut look: impl AsyncFnMut(bool) -> Result<Look<T, W>, E>,
    mut on_wait: impl FnMut(&W),
) -> Result<Result<T, W>, E> {
    loop {
        let last = check == Check::BeforeLook && elapsed() >= deadline;
        match look(last).await? {
            Look::Done(t) => return Ok(Ok(t)),
            Look::Waiting(w) => {
                let over = match check {
                    Check::BeforeLook => last,
                    Check::AfterLook => elapsed() >= deadline,
                };
                if over {
                    return Ok(Err(w));
                }
                on_wait(&w);
                pause(interval).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::time::Duration;

    use super::{Check, Look, run};

    const S: Duration = Duration::from_secs(1);

    /// A virtual clock: pauses and looks advance it by what they are told, nothing real.
    struct Clock(Cell<Duration>);

    impl Clock {
        fn new() -> Clock {
            Clock(Cell::new(Duration::ZERO))
        }
        fn advance(&self, d: Duration) {
            self.0.set(self.0.get() + d);
        }
    }

    /// Runs `run` to completion on a current-thread runtime (nothing in it really sleeps).
    fn block<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().expect("a runtime").block_on(f)
    }

    /// The wait's answer (look numbers: done at / waiting at the last), each look's start and
    /// whether it was told it is the last, each wait reported (look number, time).
    type Outcome = (Result<Result<usize, usize>, String>, Vec<(Duration, bool)>, Vec<(usize, Duration)>);

    /// Every look takes `look_takes`, finds "waiting" until the `done_at`-th look (1-based),
    /// and is recorded with the time it began and what it was told.
    fn scenario(
        check: Check,
        deadline: Duration,
        interval: Duration,
        look_takes: Duration,
        done_at: Option<usize>,
    ) -> Outcome {
        let clock = Clock::new();
        let looks = RefCell::new(Vec::new());
        let waits = RefCell::new(Vec::new());
        let out = block(run(
            || clock.0.get(),
            |d| {
                clock.advance(d);
                std::future::ready(())
            },
            deadline,
            interval,
            check,
            async |last| {
                looks.borrow_mut().push((clock.0.get(), last));
                clock.advance(look_takes);
                let n = looks.borrow().len();
                Ok::<_, String>(if done_at == Some(n) { Look::Done(n) } else { Look::Waiting(n) })
            },
            |w: &usize| waits.borrow_mut().push((*w, clock.0.get())),
        ));
        (out, looks.into_inner(), waits.into_inner())
    }

    #[test]
    fn done_at_once_never_pauses() {
        for check in [Check::BeforeLook, Check::AfterLook] {
            let (out, looks, waits) = scenario(check, 10 * S, 2 * S, Duration::ZERO, Some(1));
            assert_eq!(out, Ok(Ok(1)));
            assert_eq!(looks, [(Duration::ZERO, false)]);
            assert!(waits.is_empty());
        }
    }

    #[test]
    fn done_later_pauses_the_interval_between_looks_and_reports_each_wait() {
        let (out, looks, waits) = scenario(Check::AfterLook, 60 * S, 3 * S, Duration::ZERO, Some(3));
        assert_eq!(out, Ok(Ok(3)));
        assert_eq!(looks, [(Duration::ZERO, false), (3 * S, false), (6 * S, false)]);
        assert_eq!(waits, [(1, Duration::ZERO), (2, 3 * S)]);
    }

    #[test]
    fn before_look_the_look_begun_past_the_deadline_is_told_and_final() {
        // Instant looks, 2 s apart, 5 s deadline: looks at 0, 2, 4 in time; the one at 6 is last.
        let (out, looks, waits) = scenario(Check::BeforeLook, 5 * S, 2 * S, Duration::ZERO, None);
        assert_eq!(out, Ok(Err(4)));
        assert_eq!(looks, [(Duration::ZERO, false), (2 * S, false), (4 * S, false), (6 * S, true)]);
        assert_eq!(waits.iter().map(|(w, _)| *w).collect::<Vec<_>>(), [1, 2, 3], "the last is not a wait");
    }

    #[test]
    fn before_look_a_look_begun_in_time_is_not_the_last_however_long() {
        // One look of 10 s from 0 ends past the 5 s deadline: one more look, told it is the last.
        let (out, looks, _) = scenario(Check::BeforeLook, 5 * S, 2 * S, 10 * S, None);
        assert_eq!(out, Ok(Err(2)));
        assert_eq!(looks, [(Duration::ZERO, false), (12 * S, true)]);
    }

    #[test]
    fn before_look_the_last_look_can_still_be_done() {
        let (out, looks, _) = scenario(Check::BeforeLook, 5 * S, 2 * S, Duration::ZERO, Some(4));
        assert_eq!(out, Ok(Ok(4)));
        assert_eq!(looks.last(), Some(&(6 * S, true)));
    }

    #[test]
    fn after_look_the_first_look_ending_past_the_deadline_is_the_last() {
        // Looks of 1 s, 3 s apart, 5 s deadline: 0-1, 4-5 (ends at the deadline: over).
        let (out, looks, waits) = scenario(Check::AfterLook, 5 * S, 3 * S, S, None);
        assert_eq!(out, Ok(Err(2)));
        assert_eq!(looks, [(Duration::ZERO, false), (4 * S, false)]);
        assert_eq!(waits, [(1, S)]);
        // A look that ends past it ends the wait without another look.
        let (out, looks, _) = scenario(Check::AfterLook, 5 * S, 3 * S, 10 * S, None);
        assert_eq!(out, Ok(Err(1)));
        assert_eq!(looks.len(), 1);
    }

    #[test]
    fn a_zero_deadline_looks_once() {
        let (out, looks, _) = scenario(Check::BeforeLook, Duration::ZERO, 2 * S, Duration::ZERO, None);
        assert_eq!((out, looks), (Ok(Err(1)), vec![(Duration::ZERO, true)]));
        let (out, looks, _) = scenario(Check::AfterLook, Duration::ZERO, 2 * S, Duration::ZERO, None);
        assert_eq!((out, looks), (Ok(Err(1)), vec![(Duration::ZERO, false)]));
    }

    #[test]
    fn an_error_of_a_look_ends_the_wait_at_once() {
        let clock = Clock::new();
        let mut n = 0;
        let out: Result<Result<(), ()>, String> = block(run(
            || clock.0.get(),
            |d| {
                clock.advance(d);
                std::future::ready(())
            },
            60 * S,
            S,
            Check::AfterLook,
            async |_| {
                n += 1;
                if n == 2 { Err(format!("look {n} failed")) } else { Ok(Look::Waiting(())) }
            },
            |_| {},
        ));
        assert_eq!(out, Err("look 2 failed".to_string()));
        assert_eq!(clock.0.get(), S, "one pause, after the first look");
    }
}
