//! What a retry message is: the retry options it travels with (`delay`, `maxRetry`, `retryCount`:
//! `options`), its backoff policy (`backoff`), its payload's JSON and `msgId` (`payload`), the
//! caller's own headers (`headers`), and its id and shard (`ids`). Pure functions and types, no I/O.

pub mod backoff;
pub mod headers;
pub mod ids;
pub mod options;
pub mod payload;
