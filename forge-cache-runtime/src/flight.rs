//! Single-flight: concurrent misses of one key in one process run the
//! function once. The first caller leads; the others wait for it and decode
//! the bytes it stored.
//!
//! Errors are not shared: a leader whose result is not cacheable (an `Err`,
//! or `None` without `cache_none`) publishes nothing, and each waiter then
//! runs the function itself, because an `E` need not be `Clone` and cannot
//! be handed to several callers. A leader that is cancelled (its future
//! dropped) or panics abandons the flight; one waiter becomes the next
//! leader. Nothing is ever left waiting on a flight that will not finish.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::manager::FeatureState;

/// Counters of ended flights, by a hash of the key: enough that a miss
/// rarely shares its counter with one of the other keys whose flights end
/// while it reads (a shared counter costs one extra `GET`, nothing more).
const ENDED_SLOTS: usize = 4096;

/// The flights of one manager, by full key.
pub(crate) struct Flights {
    map: Mutex<HashMap<Box<str>, Arc<Flight>>>,
    /// Flights that ended, counted by key slot when they leave the map.
    ended: Box<[AtomicU64]>,
}

impl FeatureState for Flights {
    const SLOT: usize = 0;
}

impl Default for Flights {
    fn default() -> Self {
        Flights {
            map: Mutex::default(),
            ended: (0..ENDED_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// FNV-1a: a few cycles for a short key; the slot needs no defence against
/// chosen collisions (a collision costs one `GET`).
fn slot(key: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key.as_bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h as usize) % ENDED_SLOTS
}

/// One computation in progress.
pub(crate) struct Flight {
    state: Mutex<State>,
    cond: Condvar,
    notify: Notify,
}

/// How a flight ended, as waiters see it.
#[derive(Clone)]
pub(crate) enum State {
    Running,
    /// The leader finished: the encoded value, or `None` when its result
    /// was not cacheable.
    Done(Option<Arc<[u8]>>),
    /// The leader was cancelled or panicked.
    Abandoned,
}

pub(crate) enum Join<'a> {
    Lead(Leader<'a>),
    Wait(Arc<Flight>),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Flights {
    /// Leads the flight of `key`, or joins the one in progress.
    pub(crate) fn join(&self, key: &str) -> Join<'_> {
        let mut map = lock(&self.map);
        if let Some(f) = map.get(key) {
            return Join::Wait(f.clone());
        }
        let flight = Arc::new(Flight {
            state: Mutex::new(State::Running),
            cond: Condvar::new(),
            notify: Notify::new(),
        });
        map.insert(key.into(), flight.clone());
        Join::Lead(Leader {
            flights: self,
            key: key.into(),
            flight,
            finished: false,
        })
    }

    /// Changes whenever a flight of `key` ends (and, rarely, when one of a
    /// key sharing its slot does). A caller that read this before a cache
    /// miss and finds it changed when it becomes a leader may have missed a
    /// value stored meanwhile by the flight that just ended.
    pub(crate) fn generation(&self, key: &str) -> u64 {
        self.ended[slot(key)].load(Ordering::Acquire)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.map).len()
    }
}

impl Flight {
    /// Waits until the leader finishes or gives up.
    pub(crate) async fn wait(&self) -> State {
        loop {
            let mut notified = pin!(self.notify.notified());
            // Registered before the state is read, so no wake-up is lost.
            notified.as_mut().enable();
            let state = lock(&self.state).clone();
            if !matches!(state, State::Running) {
                return state;
            }
            notified.await;
        }
    }

    /// Blocking form of [`wait`](Self::wait).
    pub(crate) fn wait_blocking(&self) -> State {
        let mut state = lock(&self.state);
        while matches!(*state, State::Running) {
            state = self
                .cond
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.clone()
    }
}

/// The leader's side of a flight. The flight stays joinable until the
/// leader is dropped (after it has stored the value), so callers arriving
/// meanwhile get the published value instead of running the function again.
/// Dropping it unfinished abandons the flight, so a cancelled leader never
/// wedges its key.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: Box<str>,
    flight: Arc<Flight>,
    finished: bool,
}

impl Leader<'_> {
    /// Publishes the encoded value (or `None`: not cacheable) to waiters.
    pub(crate) fn finish(&mut self, value: Option<&[u8]>) {
        self.publish(State::Done(value.map(Arc::from)));
    }

    fn publish(&mut self, state: State) {
        self.finished = true;
        *lock(&self.flight.state) = state;
        self.flight.cond.notify_all();
        self.flight.notify.notify_waiters();
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        {
            let mut map = lock(&self.flights.map);
            if map
                .get(&self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                map.remove(&self.key);
                // Under the map's lock: whoever leads this key next sees it.
                self.flights.ended[slot(&self.key)].fetch_add(1, Ordering::Release);
            }
        }
        if !self.finished {
            self.publish(State::Abandoned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_leader_abandons_and_frees_the_key() {
        let flights = Flights::default();
        let Join::Lead(leader) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Join::Wait(flight) = flights.join("k") else {
            panic!("second caller waits")
        };
        drop(leader);
        assert!(matches!(flight.wait_blocking(), State::Abandoned));
        assert_eq!(flights.len(), 0);
        assert!(matches!(flights.join("k"), Join::Lead(_)));
    }

    #[test]
    fn a_late_leader_sees_that_a_flight_ended_since_its_read() {
        let flights = Flights::default();
        let before_read = flights.generation("k");
        let Join::Lead(mut first) = flights.join("k") else {
            panic!("first caller leads")
        };
        assert_eq!(flights.generation("k"), before_read, "nothing ended yet");
        first.finish(Some(b"1"));
        drop(first); // stored and gone
        let Join::Lead(_late) = flights.join("k") else {
            panic!("the key is free again")
        };
        assert_ne!(
            flights.generation("k"),
            before_read,
            "so the late leader re-reads"
        );
    }

    #[test]
    fn flights_of_other_keys_ending_do_not_make_a_leader_reread() {
        let flights = Flights::default();
        let before_read = flights.generation("mine");
        for i in 0..64 {
            let key = format!("other:{i}");
            if slot(&key) == slot("mine") {
                continue;
            }
            let Join::Lead(mut other) = flights.join(&key) else {
                panic!("distinct keys lead")
            };
            other.finish(Some(b"1"));
        }
        assert_eq!(flights.generation("mine"), before_read);
    }

    #[tokio::test]
    async fn waiters_get_the_leaders_bytes() {
        let flights = Flights::default();
        let Join::Lead(mut leader) = flights.join("k") else {
            panic!()
        };
        let Join::Wait(flight) = flights.join("k") else {
            panic!()
        };
        let waiter = tokio::spawn(async move { flight.wait().await });
        leader.finish(Some(b"42"));
        match waiter.await.unwrap() {
            State::Done(Some(b)) => assert_eq!(&*b, b"42"),
            _ => panic!("expected the leader's bytes"),
        }
        // Until the leader is dropped (it is storing), late callers get the
        // published value too.
        let Join::Wait(late) = flights.join("k") else {
            panic!("the finished flight is still joinable")
        };
        assert!(matches!(late.wait().await, State::Done(Some(_))));
        drop(leader);
        assert_eq!(flights.len(), 0);
    }
}
