//! What the engine reports: the events a listener emits and the `Observer` that receives them, the
//! error throttle and the bounded backlog of undelivered events (`events`); the counters per
//! schedule and the `stats()`/Prometheus text (`stats`).

pub mod events;
pub mod stats;
