//! Capacity slots shared by every process using the store: `maxParallelPerCapacity` holds across
//! workers, not just within one run.
//!
//! A slot is a row (capacity, slot number) taken with a primary-key insert, so two processes
//! never hold the same one. A run that finds nobody waiting takes a free slot at once; one that
//! finds runs waiting, or no free slot, queues (its arrival is recorded) and takes a free slot
//! only when no live run queued before it, so slots go out in order of arrival. Holders renew
//! their slot while their refresh runs; a slot or a place in the queue
//! whose holder stopped renewing (a dead worker) expires, and a slot whose holder's operation is
//! no longer running (closed by a signal or by a retry) is free at once.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::dialect::Cond;
use super::operations::running;
use super::schema::{SLOT_QUEUE, SLOTS};
use super::values::Value;
use super::{Store, now};
use crate::error::Error;

/// What a request for a slot found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// The slot taken (its number).
    Taken(i64),
    /// Every slot is held, or runs queued earlier are waiting: ask again later.
    Queued {
        /// Live runs queued before this one.
        ahead: usize,
    },
}

impl Store {
    /// Asks for one of `slots` slots of `capacity` for `holder`, renewing its place in the queue;
    /// `ttl` is how long the place or the slot lasts without renewal.
    ///
    /// A run that finds nobody waiting takes a free slot without queueing first (three or four
    /// statements in all); one that finds runs waiting, or no free slot, queues behind them. Two
    /// runs that arrive within the same few milliseconds may then pass one another once; the
    /// slot's key still gives each number to one of them only, so the limit holds.
    pub async fn take_slot(
        &self,
        capacity: &str,
        slots: usize,
        holder: i64,
        ttl: Duration,
    ) -> Result<Slot, Error> {
        let d = self.dialect();
        let cap = Cond::Eq("capacity");
        let queue_insert = d.insert(
            SLOT_QUEUE.name,
            &["capacity", "holder", "arrived_at", "expires_at"],
        );
        let queue_renew = d.update(SLOT_QUEUE.name, &["expires_at"], &[cap, Cond::Eq("holder")]);
        let queue_list = d.select(
            SLOT_QUEUE.name,
            &["holder", "arrived_at", "expires_at"],
            &[cap],
            &[("arrived_at", false), ("holder", false)],
            false,
        );
        let queue_drop = leave_queue(d);
        // Stale rows go only if still as read: a holder that renewed meanwhile keeps its own.
        let queue_drop_stale = d.delete(
            SLOT_QUEUE.name,
            &[cap, Cond::Eq("holder"), Cond::AtMost("expires_at")],
        );
        let slot_list = d.select(
            SLOTS.name,
            &["slot", "holder", "expires_at"],
            &[cap],
            &[],
            false,
        );
        let slot_drop = d.delete(
            SLOTS.name,
            &[
                cap,
                Cond::Eq("slot"),
                Cond::Eq("holder"),
                Cond::Eq("expires_at"),
            ],
        );
        let slot_insert = d.insert(
            SLOTS.name,
            &["capacity", "slot", "holder", "acquired_at", "expires_at"],
        );
        let (capacity, me) = (capacity.to_string(), holder.to_string());
        let ttl = SignedDuration::try_from(ttl).unwrap_or(SignedDuration::from_mins(2));
        let action = format!("take a slot of capacity {capacity}");
        self.call(&action, move |s| {
            let now = now();
            let expires = now.saturating_add(ttl).unwrap_or(now);
            let key = |holder: &str| [Value::text(&capacity), Value::text(holder)];
            // Who waits before this run, once the places nobody renews are gone.
            let queue = s.query(&queue_list, &[Value::text(&capacity)], |c| {
                Ok((c.required_text()?, c.required_time()?, c.required_time()?))
            })?;
            let mut ahead = 0;
            let mut queued = false;
            for (holder, _, until) in &queue {
                if holder == &me {
                    queued = true;
                    break;
                }
                if *until < now {
                    let [c, h] = key(holder);
                    s.execute(&queue_drop_stale, &[c, h, Value::Time(Some(*until))])?;
                } else {
                    ahead += 1;
                }
            }
            // Renews the place it has, or joins the queue: an insert that is sure to fail would
            // cost the database an error (and a line in its log) at every ask.
            let join = |queued: bool| {
                if queued {
                    let mut renew = vec![Value::Time(Some(expires))];
                    renew.extend(key(&me));
                    // A driver that cannot count rows is taken at its word that the place is there.
                    if s.execute_counted(&queue_renew, &renew)?
                        .is_none_or(|n| n > 0)
                    {
                        return Ok(());
                    }
                }
                let row = [
                    Value::text(&capacity),
                    Value::text(&me),
                    Value::Time(Some(now)),
                    Value::Time(Some(expires)),
                ];
                s.execute(&queue_insert, &row)
            };
            if queued || ahead > 0 {
                join(queued)?;
                queued = true;
            }
            let taken_by_me = |slot: i64| {
                if queued {
                    s.execute(&queue_drop, &key(&me))?;
                }
                Ok(Slot::Taken(slot))
            };
            // Which slots are held, once the lapsed ones are freed: a slot lapses when its holder
            // stops renewing it, or as soon as the holder's operation is no longer running (a
            // signal or a retry closed its row).
            let held = s.query(&slot_list, &[Value::text(&capacity)], |c| {
                Ok((
                    c.int()?.unwrap_or_default(),
                    c.required_text()?,
                    c.required_time()?,
                ))
            })?;
            if let Some((slot, _, _)) = held.iter().find(|(_, h, _)| *h == me) {
                return taken_by_me(*slot);
            }
            let mut holders: Vec<i64> = held
                .iter()
                .map(|(_, h, _)| h.parse().unwrap_or_default())
                .collect();
            holders.sort_unstable();
            holders.dedup();
            let live = running(s, &holders)?;
            let mut taken = Vec::new();
            for (slot, holder, until) in held {
                let id: i64 = holder.parse().unwrap_or_default();
                if until < now || !live.contains(&id) {
                    s.execute(
                        &slot_drop,
                        &[
                            Value::text(&capacity),
                            Value::Int(Some(slot)),
                            Value::text(&holder),
                            Value::Time(Some(until)),
                        ],
                    )?;
                } else {
                    taken.push(slot);
                }
            }
            let free = slots.saturating_sub(taken.len());
            if ahead < free {
                for slot in (0..slots as i64).filter(|n| !taken.contains(n)) {
                    let row = [
                        Value::text(&capacity),
                        Value::Int(Some(slot)),
                        Value::text(&me),
                        Value::Time(Some(now)),
                        Value::Time(Some(expires)),
                    ];
                    // Another process may take the same number first: the key decides.
                    if s.execute(&slot_insert, &row).is_ok() {
                        return taken_by_me(slot);
                    }
                }
            }
            if !queued {
                join(false)?;
            }
            Ok(Slot::Queued { ahead })
        })
        .await
    }

    /// Renews a slot `holder` holds, for `ttl` more; `false` when the slot is no longer its own
    /// (its lease lapsed and another run took it, or it was freed).
    pub async fn renew_slot(
        &self,
        capacity: &str,
        slot: i64,
        holder: i64,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let sql = self.dialect().update(
            SLOTS.name,
            &["expires_at"],
            &[Cond::Eq("capacity"), Cond::Eq("slot"), Cond::Eq("holder")],
        );
        let ttl = SignedDuration::try_from(ttl).unwrap_or(SignedDuration::from_mins(2));
        let until = Timestamp::now()
            .saturating_add(ttl)
            .unwrap_or_else(|_| Timestamp::now());
        let params = vec![
            Value::Time(Some(until)),
            Value::text(capacity),
            Value::Int(Some(slot)),
            Value::text(&holder.to_string()),
        ];
        self.call(
            &format!("renew slot {slot} of capacity {capacity}"),
            // A driver that cannot count rows is taken at its word that the update ran.
            move |s| Ok(s.execute_counted(&sql, &params)?.is_none_or(|n| n > 0)),
        )
        .await
    }

    /// Gives a slot back (`Some`), or `holder`'s place in the queue (`None`: it gave up
    /// waiting). A run holding a slot has no place left (taking the slot ended it).
    pub async fn release_slot(
        &self,
        capacity: &str,
        slot: Option<i64>,
        holder: i64,
    ) -> Result<(), Error> {
        self.release(capacity, slot, None, holder).await
    }

    /// Gives back, in one call, a slot (or the place in the queue, as [`Store::release_slot`])
    /// and the claim on `claim` when given: a refresh that ended frees both at once.
    pub async fn release(
        &self,
        capacity: &str,
        slot: Option<i64>,
        claim: Option<&str>,
        holder: i64,
    ) -> Result<(), Error> {
        let d = self.dialect();
        let me = Value::text(&holder.to_string());
        let mut statements = vec![match slot {
            Some(slot) => (
                d.delete(
                    SLOTS.name,
                    &[Cond::Eq("capacity"), Cond::Eq("slot"), Cond::Eq("holder")],
                ),
                vec![Value::text(capacity), Value::Int(Some(slot)), me.clone()],
            ),
            None => (leave_queue(d), vec![Value::text(capacity), me.clone()]),
        }];
        if let Some(key) = claim {
            statements.push((super::claims::give_back(d), vec![Value::text(key), me]));
        }
        let what = match slot {
            Some(_) => format!("a slot of capacity {capacity}"),
            None => format!("the place in the queue for capacity {capacity}"),
        };
        let action = match claim {
            Some(key) => format!("give back {what} and the claim on {key}"),
            None => format!("give back {what}"),
        };
        self.call(&action, move |s| {
            statements
                .iter()
                .try_for_each(|(sql, params)| s.execute(sql, params))
        })
        .await
    }

    /// Hands the slots `from` holds over to `to` (a retry taking over from the attempt it
    /// follows), renewed for `ttl`, and returns them (capacity, slot): the refresh the earlier
    /// attempt started still runs on its capacity, so its slot must not come free.
    pub async fn hand_over_slots(
        &self,
        from: i64,
        to: i64,
        ttl: Duration,
    ) -> Result<Vec<(String, i64)>, Error> {
        let d = self.dialect();
        let hand_over = d.update(SLOTS.name, &["holder", "expires_at"], &[Cond::Eq("holder")]);
        let held = d.select(
            SLOTS.name,
            &["capacity", "slot"],
            &[Cond::Eq("holder")],
            &[],
            false,
        );
        let ttl = SignedDuration::try_from(ttl).unwrap_or(SignedDuration::from_mins(2));
        let (from, to) = (from.to_string(), to.to_string());
        self.call(
            &format!("take over the slots of operation {from}"),
            move |s| {
                let until = now().saturating_add(ttl).unwrap_or_else(|_| now());
                s.execute(
                    &hand_over,
                    &[
                        Value::text(&to),
                        Value::Time(Some(until)),
                        Value::text(&from),
                    ],
                )?;
                s.query(&held, &[Value::text(&to)], |c| {
                    Ok((c.required_text()?, c.int()?.unwrap_or_default()))
                })
            },
        )
        .await
    }
}

/// The statement that takes a holder out of a capacity's queue (parameters: the capacity, the
/// holder): when it takes a slot, and when it gives up waiting.
fn leave_queue(d: super::Dialect) -> String {
    d.delete(SLOT_QUEUE.name, &[Cond::Eq("capacity"), Cond::Eq("holder")])
}
