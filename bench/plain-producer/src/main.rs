//! Baseline of the fire benchmark: a plain rdkafka `FutureProducer` with the settings of
//! kafka-redis-retry's internal producer (acks=all, linger.ms=2, bundled librdkafka) sends N messages of
//! the shape the listener re-publishes (key, JSON payload with a msgId, the four retry headers)
//! and waits for every delivery report.
//!
//! usage: plain-producer <brokers> <topic> <count> [in-flight]
//!
//! `in-flight` bounds how many sends await their delivery report at once; 0 (the default) hands
//! everything to librdkafka at once, the fastest a plain producer goes.
//!
//! The clock starts before the producer is created, as the listener benchmark's clock starts
//! before `queueListener()` creates its producer: both include connecting to the broker.
//! Prints one JSON line: {"sent":N,"failed":F,"ms":elapsed}.
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: plain-producer <brokers> <topic> <count> [in-flight]");
        std::process::exit(2);
    }
    let brokers = &args[1];
    let topic = args[2].clone();
    let count: usize = args[3].parse().expect("count must be a number");
    let in_flight: usize = args.get(4).map_or(0, |s| s.parse().expect("in-flight must be a number"));

    let start = Instant::now();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "2")
        .create()
        .expect("cannot create the producer");

    let mut set = JoinSet::new();
    let mut failed = 0usize;
    for i in 0..count {
        if in_flight > 0 && set.len() >= in_flight {
            if !matches!(set.join_next().await, Some(Ok(true))) {
                failed += 1;
            }
        }
        let producer = producer.clone();
        let topic = topic.clone();
        set.spawn(async move {
            // Same size as what the listener publishes: {"msgId":"<uuid>","n":i} + 4 headers.
            let value = format!("{{\"msgId\":\"00000000-0000-4000-8000-{i:012}\",\"n\":{i}}}");
            let headers = OwnedHeaders::new_with_capacity(4)
                .insert(Header { key: "delay", value: Some("0".as_bytes()) })
                .insert(Header { key: "maxRetry", value: Some("3".as_bytes()) })
                .insert(Header { key: "retryCount", value: Some("1".as_bytes()) })
                .insert(Header { key: "executeAt", value: Some("1700000000000".as_bytes()) });
            let record = FutureRecord::to(&topic).key("bench").payload(&value).headers(headers);
            producer.send(record, Duration::from_secs(5)).await.is_ok()
        });
    }
    while let Some(sent) = set.join_next().await {
        if !matches!(sent, Ok(true)) {
            failed += 1;
        }
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let _ = producer.flush(Duration::from_secs(10));
    println!("{{\"sent\":{count},\"failed\":{failed},\"ms\":{ms:.1}}}");
}
